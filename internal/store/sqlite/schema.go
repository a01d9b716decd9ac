package sqlite

import (
	"database/sql"
	"fmt"
	"regexp"
	"strings"

	"github.com/posthorn/posthorn/internal/store"
)

// migration is one schema change; it runs inside the transaction that
// also records the new schema version.
type migration func(tx *sql.Tx) error

// sqlMigration is a migration that is plain SQL.
func sqlMigration(q string) migration {
	return func(tx *sql.Tx) error {
		_, err := tx.Exec(q)
		return err
	}
}

// migrations are applied in order, each once; user_version records how
// many have run. Never edit a released migration: add a new one.
var migrations = []migration{
	sqlMigration(`CREATE TABLE tenants (
		id TEXT PRIMARY KEY,
		name TEXT NOT NULL UNIQUE,
		created_at INTEGER NOT NULL
	);
	CREATE TABLE smtp_users (
		username TEXT PRIMARY KEY,
		tenant_id TEXT NOT NULL,
		password_hash TEXT NOT NULL,
		default_lane TEXT NOT NULL DEFAULT 'normal',
		idempotent_message_id INTEGER NOT NULL DEFAULT 0,
		send_dsn INTEGER NOT NULL DEFAULT 0,
		created_at INTEGER NOT NULL
	);
	CREATE TABLE api_keys (
		id TEXT PRIMARY KEY,
		tenant_id TEXT NOT NULL,
		name TEXT NOT NULL,
		hash TEXT NOT NULL,
		scopes TEXT NOT NULL,
		created_at INTEGER NOT NULL
	);
	CREATE TABLE messages (
		id TEXT PRIMARY KEY,
		tenant_id TEXT NOT NULL,
		sender TEXT NOT NULL,
		lane TEXT NOT NULL,
		source TEXT NOT NULL,
		smtp_user TEXT NOT NULL DEFAULT '',
		client_ip TEXT NOT NULL DEFAULT '',
		size INTEGER NOT NULL,
		message_id_hdr TEXT NOT NULL DEFAULT '',
		subject TEXT NOT NULL DEFAULT '',
		created_at INTEGER NOT NULL,
		send_at INTEGER NOT NULL DEFAULT 0,
		smtputf8 INTEGER NOT NULL DEFAULT 0,
		eightbit INTEGER NOT NULL DEFAULT 0,
		tags TEXT NOT NULL DEFAULT '',
		metadata TEXT NOT NULL DEFAULT '',
		body BLOB NOT NULL
	);
	CREATE INDEX messages_tenant_created ON messages(tenant_id, created_at);
	CREATE TABLE idempotency_keys (
		tenant_id TEXT NOT NULL,
		key TEXT NOT NULL,
		request_hash TEXT NOT NULL,
		message_id TEXT NOT NULL,
		response BLOB NOT NULL,
		created_at INTEGER NOT NULL,
		expires_at INTEGER NOT NULL,
		PRIMARY KEY (tenant_id, key)
	) WITHOUT ROWID;
	CREATE INDEX idempotency_expiry ON idempotency_keys(expires_at);
	CREATE TABLE deliveries (
		id INTEGER PRIMARY KEY,
		message_id TEXT NOT NULL,
		tenant_id TEXT NOT NULL,
		recipient TEXT NOT NULL,
		domain TEXT NOT NULL,
		lane TEXT NOT NULL,
		state TEXT NOT NULL,
		attempts INTEGER NOT NULL DEFAULT 0,
		created_at INTEGER NOT NULL,
		first_attempt_at INTEGER NOT NULL DEFAULT 0,
		last_attempt_at INTEGER NOT NULL DEFAULT 0,
		next_attempt_at INTEGER NOT NULL DEFAULT 0,
		expires_at INTEGER NOT NULL,
		last_code INTEGER NOT NULL DEFAULT 0,
		last_enhanced TEXT NOT NULL DEFAULT '',
		last_text TEXT NOT NULL DEFAULT '',
		last_class TEXT NOT NULL DEFAULT '',
		last_phase TEXT NOT NULL DEFAULT '',
		last_mx TEXT NOT NULL DEFAULT '',
		last_ip TEXT NOT NULL DEFAULT '',
		provider TEXT NOT NULL DEFAULT '',
		updated_at INTEGER NOT NULL
	);
	CREATE INDEX deliveries_pending ON deliveries(state) WHERE state IN ('scheduled','queued','sending','deferred','held');
	CREATE INDEX deliveries_message ON deliveries(message_id);
	CREATE INDEX deliveries_domain ON deliveries(domain);
	CREATE INDEX deliveries_recipient ON deliveries(recipient);
	CREATE TABLE attempts (
		id INTEGER PRIMARY KEY,
		delivery_id INTEGER NOT NULL,
		message_id TEXT NOT NULL,
		n INTEGER NOT NULL,
		started_at INTEGER NOT NULL,
		duration_us INTEGER NOT NULL,
		mx TEXT NOT NULL DEFAULT '',
		ip TEXT NOT NULL DEFAULT '',
		tls INTEGER NOT NULL DEFAULT 0,
		code INTEGER NOT NULL DEFAULT 0,
		enhanced TEXT NOT NULL DEFAULT '',
		text TEXT NOT NULL DEFAULT '',
		class TEXT NOT NULL,
		phase TEXT NOT NULL DEFAULT '',
		error TEXT NOT NULL DEFAULT ''
	);
	CREATE INDEX attempts_message ON attempts(message_id);
	CREATE TABLE events (
		id INTEGER PRIMARY KEY,
		at INTEGER NOT NULL,
		type TEXT NOT NULL,
		tenant_id TEXT NOT NULL,
		message_id TEXT NOT NULL,
		delivery_id INTEGER NOT NULL DEFAULT 0,
		recipient TEXT NOT NULL DEFAULT '',
		attempt INTEGER NOT NULL DEFAULT 0,
		mx TEXT NOT NULL DEFAULT '',
		code INTEGER NOT NULL DEFAULT 0,
		enhanced TEXT NOT NULL DEFAULT '',
		text TEXT NOT NULL DEFAULT '',
		detail TEXT NOT NULL DEFAULT ''
	);
	CREATE INDEX events_message ON events(message_id);
	CREATE INDEX events_tenant_type ON events(tenant_id, type, id);`),
	sqlMigration(`CREATE TABLE suppressions (
		tenant_id TEXT NOT NULL,
		kind TEXT NOT NULL,
		value TEXT NOT NULL,
		reason TEXT NOT NULL,
		created_at INTEGER NOT NULL,
		expires_at INTEGER NOT NULL DEFAULT 0,
		detail TEXT NOT NULL DEFAULT '',
		PRIMARY KEY (tenant_id, kind, value)
	) WITHOUT ROWID;`),
	deliveryChecks,
	// Sending domains and their DKIM keys (see internal/domain).
	sqlMigration(domainsMigration),
	shapeIndex, // observe.go
	// Accounts and roles; per-domain, sandbox and expiring credentials
	// (see internal/tenant).
	sqlMigration(credentialsMigration),
	// Webhook endpoints, outbox and attempts; alert states (webhooks.go).
	sqlMigration(webhookSchema),
	// The TLS session of each attempt: version, cipher, the policy that
	// applied (MTA-STS, DANE, tls_policy) and the certificate check
	// (index tlsColumnsMigration).
	sqlMigration(`ALTER TABLE attempts ADD COLUMN tls_version TEXT NOT NULL DEFAULT '';
	ALTER TABLE attempts ADD COLUMN tls_cipher TEXT NOT NULL DEFAULT '';
	ALTER TABLE attempts ADD COLUMN tls_policy TEXT NOT NULL DEFAULT '';
	ALTER TABLE attempts ADD COLUMN tls_result TEXT NOT NULL DEFAULT '';`),
	// Event log filters (domain, destination), report rollups, body
	// retention (events.go).
	eventLogMigration,
	// Sender reputation: the source address of each attempt, DMARC
	// aggregate reports (see reputation.go).
	sqlMigration(reputationMigration),
	suppressionsFolded, // suppressions.go
	// The scheduler pages through pending deliveries in due order
	// (PendingDue): the pending index gains next_attempt_at.
	sqlMigration(`DROP INDEX deliveries_pending;
	CREATE INDEX deliveries_pending ON deliveries(state, next_attempt_at) WHERE state IN (` + pendingIndexStates + `);`),
	sqlMigration(eventsByType), // events.go
	// DKIM signatures computed after the message was stored (dkim.go).
	sqlMigration(dkimMigration),
	// Recipient lookups by a 64-bit key instead of the address (rcptkey.go;
	// index rcptKeysMigration).
	rcptKeys,
	// One index of the queue instead of two over the same rows:
	// deliveries_pending (state, next_attempt_at) served the scheduler's
	// due order, deliveries_shape (state, lane, created_at) the queue
	// shape. deliveries_queue serves both (PendingDue, QueueShape): one
	// B-tree fewer to update at acceptance, lease and outcome.
	sqlMigration(`DROP INDEX deliveries_pending;
	DROP INDEX deliveries_shape;
	CREATE INDEX deliveries_queue ON deliveries(state, next_attempt_at, id, lane, created_at)
		WHERE state IN ('scheduled','queued','sending','deferred','held','dead_letter');`),
	sqlMigration(metricsStateMigration), // observe.go
	// Deliveries by recipient and by domain through late indexes, merged
	// in bulk (lateindex.go).
	sqlMigration(lateIndexTables),
	orListsMigration,
}

// pendingIndexStates was the IN list of the deliveries_pending index (a
// released migration uses it).
const pendingIndexStates = `'scheduled','queued','sending','deferred','held'`

// queueIndexCond is the WHERE of the deliveries_queue index (the pending
// states and dead_letter, an OR chain: orListsMigration); a query that
// repeats it literally may use the index.
var queueIndexCond = anyOf("state", queueIndexStates...)

// queueIndexStates are the states deliveries_queue holds.
var queueIndexStates = []store.State{store.Scheduled, store.Queued, store.Sending, store.Deferred, store.Held, store.DeadLetter}

// anyOf is "(col='a' OR col='b' ...)": what the hot statements and the
// schema say instead of "col IN ('a','b',...)". SQLite codes an IN list of
// more than two constants as a lookup in an ephemeral table that every
// execution of the statement builds and frees (an in-memory B-tree:
// malloc, inserts, free), and CHECK constraints and a partial index's
// WHERE are part of every INSERT and UPDATE of their table. With the
// lists, a 10-recipient message built about 35 of them (each lease is ten
// one-row UPDATEs); the writer's time per message fell by a tenth without
// them (docs/performance.md, session 7).
func anyOf(col string, states ...store.State) string {
	// store.SQLList quotes (and checks) the states: 'a','b'.
	return "(" + col + "=" + strings.ReplaceAll(store.SQLList(states), ",", " OR "+col+"=") + ")"
}

// orListsMigration rewrites the IN lists of the deliveries table's CHECK
// constraints and of the deliveries_queue index as OR chains (anyOf). The
// constraints are changed in place in sqlite_schema (PRAGMA
// writable_schema, as SQLite's documentation describes for constraint
// changes that every row already satisfies: the two are equivalent); the
// index is dropped and built again. The connection that ran it parses the
// new definitions (TestORListsMigration checks it on the writer's).
func orListsMigration(tx *sql.Tx) error {
	var def string
	if err := tx.QueryRow(`SELECT sql FROM sqlite_schema WHERE type='table' AND name='deliveries'`).Scan(&def); err != nil {
		return fmt.Errorf("read the deliveries table's definition: %w", err)
	}
	// Every CHECK IN list found (posthorn's two: state and lane). One
	// written differently by hand is left as it is: only slower.
	def = checkIn.ReplaceAllStringFunc(def, func(c string) string {
		m := checkIn.FindStringSubmatch(c)
		var eq []string
		for _, v := range strings.Split(m[2], ",") {
			eq = append(eq, m[1]+"="+strings.TrimSpace(v))
		}
		return "CHECK (" + strings.Join(eq, " OR ") + ")"
	})
	var version int
	if err := tx.QueryRow(`PRAGMA schema_version`).Scan(&version); err != nil {
		return fmt.Errorf("read the schema version: %w", err)
	}
	for _, q := range []string{
		`PRAGMA writable_schema=ON`,
		`UPDATE sqlite_schema SET sql=` + quote(def) + ` WHERE type='table' AND name='deliveries'`,
		fmt.Sprintf(`PRAGMA schema_version=%d`, version+1),
		`PRAGMA writable_schema=OFF`,
		`DROP INDEX deliveries_queue`,
		`CREATE INDEX deliveries_queue ON deliveries(state, next_attempt_at, id, lane, created_at) WHERE ` + queueIndexCond,
	} {
		if _, err := tx.Exec(q); err != nil {
			return fmt.Errorf("%.40s: %w", q, err)
		}
	}
	return nil
}

// checkIn matches a CHECK constraint "CHECK (col IN ('a','b'))".
var checkIn = regexp.MustCompile(`CHECK \((\w+) IN \(('[a-z_]+'(?:, ?'[a-z_]+')*)\)\)`)

// quote is s as an SQL string literal.
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// tlsColumnsMigration is the index in migrations of the one adding the
// attempts' TLS columns (renumber it with the list).
const tlsColumnsMigration = 7

// rcptKeysMigration is the index in migrations of rcptKeys (renumber it
// with the list).
const rcptKeysMigration = 14

func migrate(db *sql.DB) error { return migrateWith(db, migrations) }

// migrateWith brings db up to len(ms) (tests stop at older versions).
func migrateWith(db *sql.DB, migrations []migration) error {
	var version int
	if err := db.QueryRow("PRAGMA user_version").Scan(&version); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if version > len(migrations) {
		return schemaTooNew(version)
	}
	for i := version; i < len(migrations); i++ {
		tx, err := db.Begin()
		if err != nil {
			return err
		}
		if err := migrations[i](tx); err != nil {
			tx.Rollback()
			return fmt.Errorf("migration %d: %w", i+1, err)
		}
		if _, err := tx.Exec(fmt.Sprintf("PRAGMA user_version = %d", i+1)); err != nil {
			tx.Rollback()
			return fmt.Errorf("migration %d: set version: %w", i+1, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("migration %d: commit: %w", i+1, err)
		}
	}
	return nil
}
