package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"sync"

	"github.com/posthorn/posthorn/internal/store"
)

// suppressionsFolded rebuilds the suppressions table with each address
// entry's folded value (store.FoldAddress: Go's Unicode lower case, which
// SQLite's ASCII-only lower() is not, hence a column filled from Go rather
// than an expression index) in the primary key, before the value: the
// entries of an address in any spelling are one key range, the suppression
// list keeps only hashes in memory and confirms a hit there. In the key
// rather than in a second index because an import of random addresses
// pays one B-tree insert per entry instead of two (measured: a quarter of
// its CPU). Other kinds have folded ”.
func suppressionsFolded(tx *sql.Tx) error {
	if _, err := tx.Exec(`CREATE TABLE suppressions_folded (
		tenant_id TEXT NOT NULL,
		kind TEXT NOT NULL,
		folded TEXT NOT NULL,
		value TEXT NOT NULL,
		reason TEXT NOT NULL,
		created_at INTEGER NOT NULL,
		expires_at INTEGER NOT NULL DEFAULT 0,
		detail TEXT NOT NULL DEFAULT '',
		PRIMARY KEY (tenant_id, kind, folded, value)
	) WITHOUT ROWID;
	INSERT INTO suppressions_folded (tenant_id, kind, folded, value, reason, created_at, expires_at, detail)
		SELECT tenant_id, kind, CASE kind WHEN 'address' THEN value ELSE '' END, value, reason, created_at, expires_at, detail
		FROM suppressions;
	DROP TABLE suppressions;
	ALTER TABLE suppressions_folded RENAME TO suppressions;`); err != nil {
		return err
	}
	// Only the entries that are not already in lower case need Go.
	rows, err := tx.Query(`SELECT tenant_id, value FROM suppressions WHERE kind = 'address'`)
	if err != nil {
		return err
	}
	type key struct{ tenant, value string }
	var mixed []key
	for rows.Next() {
		var k key
		if err := rows.Scan(&k.tenant, &k.value); err != nil {
			rows.Close()
			return err
		}
		if store.FoldAddress(k.value) != k.value {
			mixed = append(mixed, k)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, k := range mixed {
		if _, err := tx.Exec(`UPDATE suppressions SET folded = ? WHERE tenant_id = ? AND kind = 'address' AND folded = ? AND value = ?`,
			store.FoldAddress(k.value), k.tenant, k.value, k.value); err != nil {
			return fmt.Errorf("fold %s: %w", k.value, err)
		}
	}
	return nil
}

// foldedKey is an entry's folded key column.
func foldedKey(kind, value string) string {
	if kind == "address" {
		return store.FoldAddress(value)
	}
	return ""
}

// keyed is an entry of a batch with its folded key column.
type keyed struct {
	x      *store.Suppression
	folded string
}

// inKeyOrder returns a batch's entries with their folded key, sorted by
// the table's key (stable: of two writes of one entry the later still
// wins; the caller's slice is left as it is). Inserted in that order, a
// batch of random addresses walks the B-tree's pages once, in order,
// instead of jumping between them: measured, it cut the CPU of an import
// of 500,000 by 40%.
func inKeyOrder(ss []store.Suppression) []keyed {
	out := make([]keyed, len(ss))
	for i := range ss {
		out[i] = keyed{&ss[i], foldedKey(ss[i].Kind, ss[i].Value)}
	}
	slices.SortStableFunc(out, func(a, b keyed) int {
		return cmp.Or(cmp.Compare(a.x.TenantID, b.x.TenantID), cmp.Compare(a.x.Kind, b.x.Kind),
			cmp.Compare(a.folded, b.folded), cmp.Compare(a.x.Value, b.x.Value))
	})
	return out
}

// lazyStmt is a statement prepared on first use.
type lazyStmt struct {
	once sync.Once
	st   *sql.Stmt
	err  error
}

func (l *lazyStmt) get(db *sql.DB, q string) (*sql.Stmt, error) {
	l.once.Do(func() { l.st, l.err = db.Prepare(q) })
	return l.st, l.err
}

// EachSuppressionRule implements suppress.RuleReader: every tenant's
// domain, glob and regex entries, without reading the addresses. The
// tenants are found by skipping through the primary key (one probe per
// tenant, not a scan of millions of addresses), then each tenant's rules
// are the key range after its addresses ('address' sorts first).
func (s *Store) EachSuppressionRule(ctx context.Context, fn func(store.Suppression) error) error {
	rows, err := s.r.QueryContext(ctx, `WITH RECURSIVE t(id) AS (
			SELECT min(tenant_id) FROM suppressions
			UNION ALL
			SELECT (SELECT min(tenant_id) FROM suppressions WHERE tenant_id > t.id) FROM t WHERE t.id IS NOT NULL)
		SELECT `+suppressionCols+` FROM t JOIN suppressions s ON s.tenant_id = t.id AND s.kind > 'address'
		ORDER BY s.tenant_id, s.kind, s.folded, s.value`)
	if err != nil {
		return fmt.Errorf("suppression rules: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		x, err := scanSuppression(rows)
		if err != nil {
			return fmt.Errorf("suppression rules: %w", err)
		}
		if err := fn(x); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("suppression rules: %w", err)
	}
	return nil
}
