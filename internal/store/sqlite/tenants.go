package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mattn/go-sqlite3"

	"github.com/posthorn/posthorn/internal/store"
)

func microseconds(v int64) time.Duration { return time.Duration(v) * time.Microsecond }

func uniqueErr(err error) error {
	var se sqlite3.Error
	if errors.As(err, &se) && se.ExtendedCode == sqlite3.ErrConstraintUnique || errors.As(err, &se) && se.ExtendedCode == sqlite3.ErrConstraintPrimaryKey {
		return store.ErrConflict
	}
	return err
}

// CreateTenant implements store.Store.
func (s *Store) CreateTenant(ctx context.Context, t store.Tenant) error {
	return s.write(ctx, func(tx *sql.Tx, _ *stmts) error {
		_, err := tx.Exec("INSERT INTO tenants (id, name, created_at) VALUES (?,?,?)", t.ID, t.Name, ms(t.CreatedAt))
		if err != nil {
			return fmt.Errorf("create tenant %s: %w", t.Name, uniqueErr(err))
		}
		return nil
	})
}

// GetTenant implements store.Store: by id or by name.
func (s *Store) GetTenant(ctx context.Context, id string) (*store.Tenant, error) {
	var t store.Tenant
	var created int64
	err := s.r.QueryRowContext(ctx, "SELECT id, name, created_at FROM tenants WHERE id = ? OR name = ?", id, id).Scan(&t.ID, &t.Name, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get tenant %s: %w", id, err)
	}
	t.CreatedAt = fromMS(created)
	return &t, nil
}

// ListTenants implements store.Store.
func (s *Store) ListTenants(ctx context.Context) ([]store.Tenant, error) {
	rows, err := s.r.QueryContext(ctx, "SELECT id, name, created_at FROM tenants ORDER BY created_at, id")
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	defer rows.Close()
	var out []store.Tenant
	for rows.Next() {
		var t store.Tenant
		var created int64
		if err := rows.Scan(&t.ID, &t.Name, &created); err != nil {
			return nil, err
		}
		t.CreatedAt = fromMS(created)
		out = append(out, t)
	}
	return out, rows.Err()
}

// CreateSMTPUser implements store.Store.
func (s *Store) CreateSMTPUser(ctx context.Context, u store.SMTPUser) error {
	return s.write(ctx, func(tx *sql.Tx, _ *stmts) error {
		_, err := tx.Exec(`INSERT INTO smtp_users (username, tenant_id, password_hash, default_lane, idempotent_message_id, send_dsn, domains, created_at)
			VALUES (?,?,?,?,?,?,?,?)`, u.Username, u.TenantID, u.PasswordHash, string(u.DefaultLane), b2i(u.IdempotentMessageID), b2i(u.SendDSN),
			joinList(u.Domains), ms(u.CreatedAt))
		if err != nil {
			return fmt.Errorf("create smtp user %s: %w", u.Username, uniqueErr(err))
		}
		return nil
	})
}

// GetSMTPUser implements store.Store.
func (s *Store) GetSMTPUser(ctx context.Context, username string) (*store.SMTPUser, error) {
	var u store.SMTPUser
	var lane string
	var created int64
	var idem, dsn int
	var domains string
	err := s.r.QueryRowContext(ctx, `SELECT username, tenant_id, password_hash, default_lane, idempotent_message_id, send_dsn, domains, created_at
		FROM smtp_users WHERE username = ?`, username).Scan(&u.Username, &u.TenantID, &u.PasswordHash, &lane, &idem, &dsn, &domains, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get smtp user: %w", err)
	}
	u.DefaultLane, u.CreatedAt, u.IdempotentMessageID, u.SendDSN = store.Lane(lane), fromMS(created), idem == 1, dsn == 1
	u.Domains = splitList(domains)
	return &u, nil
}

// ListSMTPUsers implements store.Store.
func (s *Store) ListSMTPUsers(ctx context.Context, tenantID string) ([]store.SMTPUser, error) {
	q := "SELECT username, tenant_id, default_lane, idempotent_message_id, send_dsn, domains, created_at FROM smtp_users"
	var args []any
	if tenantID != "" {
		q += " WHERE tenant_id = ?"
		args = append(args, tenantID)
	}
	rows, err := s.r.QueryContext(ctx, q+" ORDER BY username", args...)
	if err != nil {
		return nil, fmt.Errorf("list smtp users: %w", err)
	}
	defer rows.Close()
	var out []store.SMTPUser
	for rows.Next() {
		var u store.SMTPUser
		var lane, domains string
		var created int64
		var idem, dsn int
		if err := rows.Scan(&u.Username, &u.TenantID, &lane, &idem, &dsn, &domains, &created); err != nil {
			return nil, err
		}
		u.DefaultLane, u.CreatedAt, u.Domains = store.Lane(lane), fromMS(created), splitList(domains)
		u.IdempotentMessageID, u.SendDSN = idem == 1, dsn == 1
		out = append(out, u)
	}
	return out, rows.Err()
}

// CreateAPIKey implements store.Store.
func (s *Store) CreateAPIKey(ctx context.Context, k store.APIKey) error {
	return s.write(ctx, func(tx *sql.Tx, _ *stmts) error {
		_, err := tx.Exec(`INSERT INTO api_keys (id, tenant_id, name, hash, scopes, created_at, domains, sandbox, expires_at, created_by)
			VALUES (?,?,?,?,?,?,?,?,?,?)`, k.ID, k.TenantID, k.Name, k.Hash, strings.Join(k.Scopes, ","), ms(k.CreatedAt),
			joinList(k.Domains), b2i(k.Sandbox), ms(k.ExpiresAt), k.CreatedBy)
		if err != nil {
			return fmt.Errorf("create api key: %w", uniqueErr(err))
		}
		return nil
	})
}

const keyColumns = "id, tenant_id, name, hash, scopes, created_at, domains, sandbox, expires_at, last_used_at, created_by"

func scanKey(sc interface{ Scan(...any) error }) (store.APIKey, error) {
	var k store.APIKey
	var scopes, domains string
	var created, expires, used int64
	var sandbox int
	err := sc.Scan(&k.ID, &k.TenantID, &k.Name, &k.Hash, &scopes, &created, &domains, &sandbox, &expires, &used, &k.CreatedBy)
	k.Scopes, k.CreatedAt, k.Domains, k.Sandbox = splitScopes(scopes), fromMS(created), splitList(domains), sandbox == 1
	k.ExpiresAt, k.LastUsedAt, k.Prefix = fromMS(expires), fromMS(used), store.APIKeyPrefix(k.ID, k.Sandbox)
	return k, err
}

// GetAPIKey implements store.Store.
func (s *Store) GetAPIKey(ctx context.Context, id string) (*store.APIKey, error) {
	k, err := scanKey(s.r.QueryRowContext(ctx, "SELECT "+keyColumns+" FROM api_keys WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get api key: %w", err)
	}
	return &k, nil
}

// ListAPIKeys implements store.Store.
func (s *Store) ListAPIKeys(ctx context.Context, tenantID string) ([]store.APIKey, error) {
	q, args := tenantClause("SELECT "+keyColumns+" FROM api_keys WHERE 1", nil, tenantID)
	rows, err := s.r.QueryContext(ctx, q+" ORDER BY created_at, id", args...)
	if err != nil {
		return nil, fmt.Errorf("list api keys: %w", err)
	}
	defer rows.Close()
	var out []store.APIKey
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, err
		}
		k.Hash = ""
		out = append(out, k)
	}
	return out, rows.Err()
}

func splitScopes(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// PutSuppressions implements store.Store. Address entries are stored with
// their folded value too (store.FoldAddress), in the key, for
// AddressSuppressions.
func (s *Store) PutSuppressions(ctx context.Context, ss []store.Suppression) error {
	return s.write(ctx, func(tx *sql.Tx, _ *stmts) error {
		rows := inKeyOrder(ss)
		// Many rows a statement: per row, a call through database/sql and
		// cgo costs about as much as SQLite's insert. What the rows of a
		// statement share is bound once (putShape): an import's rows
		// share tenant, kind and times, often reason and detail, and
		// addresses already in lower case are their own folded value.
		stmts := map[putShape]*sql.Stmt{}
		defer func() {
			for _, st := range stmts {
				st.Close()
			}
		}()
		var args []any
		for len(rows) > 0 {
			n := min(len(rows), putRows)
			sh := shapeOf(rows[:n])
			st := stmts[sh]
			if st == nil {
				var err error
				if st, err = tx.Prepare(sh.sql()); err != nil {
					return fmt.Errorf("put suppressions: %w", err)
				}
				stmts[sh] = st
			}
			args = sh.args(args[:0], rows[:n])
			if _, err := st.Exec(args...); err != nil {
				return fmt.Errorf("put suppressions (%s...): %w", rows[0].x.Value, err)
			}
			rows = rows[n:]
		}
		return nil
	})
}

// putRows is how many entries one INSERT writes (8 parameters each at
// most, far below SQLite's limit of 32766).
const putRows = 128

// putShape is the form of one INSERT of PutSuppressions: how many rows,
// and which columns all of them share (bound once, as parameters 1 to 6)
// instead of each row binding its own.
type putShape struct {
	n              int
	common         bool // tenant, kind, created and expiry (?1 to ?4)
	reason, detail bool // ?5, ?6
	foldedIsValue  bool // each row's folded column is its value parameter
}

func shapeOf(rows []keyed) putShape {
	first := rows[0].x
	sh := putShape{n: len(rows), common: true, reason: true, detail: true, foldedIsValue: true}
	for _, k := range rows {
		x := k.x
		sh.common = sh.common && x.TenantID == first.TenantID && x.Kind == first.Kind && x.CreatedAt.Equal(first.CreatedAt) && x.ExpiresAt.Equal(first.ExpiresAt)
		sh.reason = sh.reason && x.Reason == first.Reason
		sh.detail = sh.detail && x.Detail == first.Detail
		sh.foldedIsValue = sh.foldedIsValue && k.folded == x.Value
	}
	if !sh.common { // rare: entries added one by one; no sharing
		sh.reason, sh.detail = false, false
	}
	return sh
}

// args appends the statement's parameters: the shared ones, then what
// each row binds itself, in order (tenant, kind, value, reason, created,
// expiry, detail, folded, less what is shared).
func (sh putShape) args(dst []any, rows []keyed) []any {
	if sh.common {
		first := rows[0].x
		dst = append(dst, first.TenantID, first.Kind, ms(first.CreatedAt), ms(first.ExpiresAt), first.Reason, first.Detail)
	}
	for _, k := range rows {
		x := k.x
		if !sh.common {
			dst = append(dst, x.TenantID, x.Kind)
		}
		dst = append(dst, x.Value)
		if !sh.reason {
			dst = append(dst, x.Reason)
		}
		if !sh.common {
			dst = append(dst, ms(x.CreatedAt), ms(x.ExpiresAt))
		}
		if !sh.detail {
			dst = append(dst, x.Detail)
		}
		if !sh.foldedIsValue {
			dst = append(dst, k.folded)
		}
	}
	return dst
}

// sql is the INSERT of the shape; SQLite applies its rows in order, so of
// two for one entry the later wins, as with one at a time. Parameters are
// numbered: shared ones 1 to 6, then each row's in the order of args.
func (sh putShape) sql() string {
	var b strings.Builder
	b.WriteString("INSERT OR REPLACE INTO suppressions (tenant_id, kind, value, reason, created_at, expires_at, detail, folded) VALUES ")
	p := 1
	if sh.common {
		p = 7
	}
	next := func() string { p++; return fmt.Sprintf("?%d", p-1) }
	for i := range sh.n {
		if i > 0 {
			b.WriteByte(',')
		}
		var col [8]string
		if sh.common {
			col[0], col[1], col[4], col[5], col[3], col[6] = "?1", "?2", "?3", "?4", "?5", "?6"
		} else {
			col[0], col[1] = next(), next()
		}
		col[2] = next()
		if !sh.reason {
			col[3] = next()
		}
		if !sh.common {
			col[4], col[5] = next(), next()
		}
		if !sh.detail {
			col[6] = next()
		}
		if sh.foldedIsValue {
			col[7] = col[2]
		} else {
			col[7] = next()
		}
		b.WriteString("(" + strings.Join(col[:], ",") + ")")
	}
	return b.String()
}

// DeleteSuppression implements store.Store.
func (s *Store) DeleteSuppression(ctx context.Context, tenantID, kind, value string) (bool, error) {
	var n int64
	err := s.write(ctx, func(tx *sql.Tx, _ *stmts) error {
		res, err := tx.Exec("DELETE FROM suppressions WHERE tenant_id = ? AND kind = ? AND folded = ? AND value = ?", tenantID, kind, foldedKey(kind, value), value)
		if err != nil {
			return fmt.Errorf("delete suppression: %w", err)
		}
		n, _ = res.RowsAffected()
		return nil
	})
	return n > 0, err
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

// EachSuppression implements store.Store: one read transaction in the
// primary key's order (addresses case-insensitively sorted), rows handed
// over as they are read.
func (s *Store) EachSuppression(ctx context.Context, tenantID string, fn func(store.Suppression) error) error {
	q := "SELECT " + suppressionCols + " FROM suppressions"
	var args []any
	if tenantID != "" {
		q += " WHERE tenant_id = ?"
		args = append(args, tenantID)
	}
	rows, err := s.r.QueryContext(ctx, q+" ORDER BY tenant_id, kind, folded, value", args...)
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

// AddressSuppressions implements store.Store (a key range). It runs for
// every accept-time hit of the suppression list's hash set: the statement
// is prepared once (database/sql keeps it per reader connection) rather
// than parsed again for each call.
func (s *Store) AddressSuppressions(ctx context.Context, tenantID, folded string) ([]store.Suppression, error) {
	st, err := s.byFolded.get(s.r, "SELECT "+suppressionCols+" FROM suppressions WHERE tenant_id = ? AND kind = 'address' AND folded = ?")
	if err != nil {
		return nil, fmt.Errorf("address suppressions: %w", err)
	}
	rows, err := st.QueryContext(ctx, tenantID, folded)
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

func scanSuppression(rows *sql.Rows) (store.Suppression, error) {
	var x store.Suppression
	var created, expires int64
	if err := rows.Scan(&x.TenantID, &x.Kind, &x.Value, &x.Reason, &created, &expires, &x.Detail); err != nil {
		return x, err
	}
	x.CreatedAt, x.ExpiresAt = fromMS(created), fromMS(expires)
	return x, nil
}
