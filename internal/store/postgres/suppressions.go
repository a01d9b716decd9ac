package postgres

// Suppressions use the SQLite store's folded-key model: an address
// entry's key holds its value folded (store.FoldAddress, from Go, since
// PostgreSQL's lower() depends on the locale) before the value itself.
// Writes log no events and imports reach millions of rows, so they run in
// their own transaction on the pool rather than in the group commit.

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/posthorn/posthorn/internal/store"
)

// foldedKey is an entry's folded key column.
func foldedKey(kind, value string) string {
	if kind == "address" {
		return store.FoldAddress(value)
	}
	return ""
}

// putChunk is how many entries one upsert statement carries.
const putChunk = 5000

const putSuppressionsSQL = `INSERT INTO suppressions (tenant_id, kind, folded, value, reason, created_at, expires_at, detail)
	SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[], $8::text[])
	ON CONFLICT (tenant_id, kind, folded, value) DO UPDATE SET reason = excluded.reason, created_at = excluded.created_at,
		expires_at = excluded.expires_at, detail = excluded.detail`

// PutSuppressions implements store.Store. Entries are written in key
// order (an import walks the index once, and concurrent imports lock rows
// in one order); of two for one entry, the later wins.
func (s *Store) PutSuppressions(ctx context.Context, ss []store.Suppression) error {
	if len(ss) == 0 {
		return nil
	}
	type keyed struct {
		x      *store.Suppression
		folded string
		i      int
	}
	rows := make([]keyed, len(ss))
	for i := range ss {
		rows[i] = keyed{&ss[i], foldedKey(ss[i].Kind, ss[i].Value), i}
	}
	key := func(a, b keyed) int {
		return cmp.Or(cmp.Compare(a.x.TenantID, b.x.TenantID), cmp.Compare(a.x.Kind, b.x.Kind),
			cmp.Compare(a.folded, b.folded), cmp.Compare(a.x.Value, b.x.Value))
	}
	slices.SortStableFunc(rows, key)
	// One statement may not change a row twice: keep each key's last.
	dedup := rows[:0]
	for i, r := range rows {
		if i+1 < len(rows) && key(r, rows[i+1]) == 0 {
			continue
		}
		dedup = append(dedup, r)
	}
	rows = dedup
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		for len(rows) > 0 {
			n := min(len(rows), putChunk)
			var ten, kind, folded, value, reason, detail []string
			var created, expires []int64
			for _, r := range rows[:n] {
				x := r.x
				ten, kind, folded, value = append(ten, x.TenantID), append(kind, x.Kind), append(folded, r.folded), append(value, x.Value)
				reason, detail = append(reason, x.Reason), append(detail, x.Detail)
				created, expires = append(created, ms(x.CreatedAt)), append(expires, ms(x.ExpiresAt))
			}
			if _, err := tx.Exec(ctx, putSuppressionsSQL, ten, kind, folded, value, reason, created, expires, detail); err != nil {
				return fmt.Errorf("put suppressions (%s...): %w", rows[0].x.Value, err)
			}
			rows = rows[n:]
		}
		return nil
	})
}

// DeleteSuppression implements store.Store.
func (s *Store) DeleteSuppression(ctx context.Context, tenantID, kind, value string) (bool, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM suppressions WHERE tenant_id = $1 AND kind = $2 AND folded = $3 AND value = $4`,
		tenantID, kind, foldedKey(kind, value), value)
	if err != nil {
		return false, fmt.Errorf("delete suppression: %w", err)
	}
	return tag.RowsAffected() > 0, nil
}

// ListSuppressions implements store.Store.
func (s *Store) ListSuppressions(ctx context.Context, tenantID string) ([]store.Suppression, error) {
	var out []store.Suppression
	err := s.EachSuppression(ctx, tenantID, func(x store.Suppression) error {
		out = append(out, x)
		return nil
	})
	return out, err
}

const suppressionCols = "tenant_id, kind, value, reason, created_at, expires_at, detail"

// EachSuppression implements store.Store: one query in key order, its
// rows handed over as they arrive (pgx reads them from the connection as
// they are asked for; nothing is collected).
func (s *Store) EachSuppression(ctx context.Context, tenantID string, fn func(store.Suppression) error) error {
	q := "SELECT " + suppressionCols + " FROM suppressions"
	var a args
	if tenantID != "" {
		q += " WHERE tenant_id = " + a.add(tenantID)
	}
	rows, err := s.pool.Query(ctx, q+" ORDER BY tenant_id, kind, folded, value", a...)
	if err != nil {
		return fmt.Errorf("list suppressions: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		x, err := scanSuppression(rows)
		if err != nil {
			return fmt.Errorf("list suppressions: %w", err)
		}
		if err := fn(x); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("list suppressions: %w", err)
	}
	return nil
}

// AddressSuppressions implements store.Store (one key range).
func (s *Store) AddressSuppressions(ctx context.Context, tenantID, folded string) ([]store.Suppression, error) {
	rows, err := s.pool.Query(ctx, "SELECT "+suppressionCols+" FROM suppressions WHERE tenant_id = $1 AND kind = 'address' AND folded = $2 ORDER BY value",
		tenantID, folded)
	if err != nil {
		return nil, fmt.Errorf("address suppressions: %w", err)
	}
	defer rows.Close()
	var out []store.Suppression
	for rows.Next() {
		x, err := scanSuppression(rows)
		if err != nil {
			return nil, fmt.Errorf("address suppressions: %w", err)
		}
		out = append(out, x)
	}
	return out, rows.Err()
}

func scanSuppression(rows pgx.Rows) (store.Suppression, error) {
	var x store.Suppression
	var created, expires int64
	if err := rows.Scan(&x.TenantID, &x.Kind, &x.Value, &x.Reason, &created, &expires, &x.Detail); err != nil {
		return x, err
	}
	x.CreatedAt, x.ExpiresAt = fromMS(created), fromMS(expires)
	return x, nil
}
