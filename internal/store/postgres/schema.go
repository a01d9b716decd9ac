package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
)

// migrationLock is the advisory lock key held while migrating ("posthorn").
const migrationLock = 0x706f737468726e

// migrations run in order, each once, in its own transaction; the
// schema_version table records how many have run. Until the backend is
// released they may still be edited; after that, only appended to.
// Each part of the store owns one entry (schema_*.go).
var migrations = []string{
	coreSchema,         // schema_core.go: messages, deliveries, attempts, events, suppressions, idempotency
	accountsSchema,     // schema_accounts.go: tenants, users, keys, accounts, domains, webhooks, alerts, DMARC
	clusterSchema,      // schema_cluster.go: nodes, leases, shared limits
	dueSchema,          // due.go: the scheduler's due-order index
	metricsStateSchema, // observe.go: the metrics collector's saved counters
}

// SchemaVersion is the number of migrations this build knows.
func SchemaVersion() int { return len(migrations) }

// Migrate brings the database's schema up to date under an advisory lock,
// so that nodes starting together do not race. A database migrated by a
// newer build is refused.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrationLock); err != nil {
		return fmt.Errorf("migrate: lock: %w", err)
	}
	defer conn.Exec(context.Background(), "SELECT pg_advisory_unlock($1)", migrationLock)
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	var v int
	err = conn.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_version`).Scan(&v)
	if err != nil {
		return fmt.Errorf("migrate: read version: %w", err)
	}
	if v > len(migrations) {
		return fmt.Errorf("migrate: the database is at schema version %d, newer than this build's %d; run the newer posthorn", v, len(migrations))
	}
	for i := v; i < len(migrations); i++ {
		tx, err := conn.Begin(ctx)
		if err != nil {
			return fmt.Errorf("migrate %d: %w", i+1, err)
		}
		if migrations[i] != "" {
			if _, err := tx.Exec(ctx, migrations[i]); err != nil {
				tx.Rollback(ctx)
				return fmt.Errorf("migrate %d: %w", i+1, err)
			}
		}
		if _, err := tx.Exec(ctx, `DELETE FROM schema_version`); err != nil {
			tx.Rollback(ctx)
			return fmt.Errorf("migrate %d: %w", i+1, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_version VALUES ($1)`, i+1); err != nil {
			tx.Rollback(ctx)
			return fmt.Errorf("migrate %d: %w", i+1, err)
		}
		if err := tx.Commit(ctx); err != nil {
			return fmt.Errorf("migrate %d: commit: %w", i+1, err)
		}
	}
	return nil
}
