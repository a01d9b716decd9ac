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

// PutSuppressions implements store.Store.
func (s *Store) PutSuppressions(ctx context.Context, ss []store.Suppression) error {
	return s.write(ctx, func(tx *sql.Tx, _ *stmts) error {
		st, err := tx.Prepare(`INSERT OR REPLACE INTO suppressions (tenant_id, kind, value, reason, created_at, expires_at, detail)
			VALUES (?,?,?,?,?,?,?)`)
		if err != nil {
			return fmt.Errorf("put suppressions: %w", err)
		}
		defer st.Close()
		for _, x := range ss {
			if _, err := st.Exec(x.TenantID, x.Kind, x.Value, x.Reason, ms(x.CreatedAt), ms(x.ExpiresAt), x.Detail); err != nil {
				return fmt.Errorf("put suppression %s: %w", x.Value, err)
			}
		}
		return nil
	})
}

// DeleteSuppression implements store.Store.
func (s *Store) DeleteSuppression(ctx context.Context, tenantID, kind, value string) (bool, error) {
	var n int64
	err := s.write(ctx, func(tx *sql.Tx, _ *stmts) error {
		res, err := tx.Exec("DELETE FROM suppressions WHERE tenant_id = ? AND kind = ? AND value = ?", tenantID, kind, value)
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
	q := "SELECT tenant_id, kind, value, reason, created_at, expires_at, detail FROM suppressions"
	var args []any
	if tenantID != "" {
		q += " WHERE tenant_id = ?"
		args = append(args, tenantID)
	}
	rows, err := s.r.QueryContext(ctx, q+" ORDER BY tenant_id, kind, value", args...)
	if err != nil {
		return nil, fmt.Errorf("list suppressions: %w", err)
	}
	defer rows.Close()
	var out []store.Suppression
	for rows.Next() {
		var x store.Suppression
		var created, expires int64
		if err := rows.Scan(&x.TenantID, &x.Kind, &x.Value, &x.Reason, &created, &expires, &x.Detail); err != nil {
			return nil, err
		}
		x.CreatedAt, x.ExpiresAt = fromMS(created), fromMS(expires)
		out = append(out, x)
	}
	return out, rows.Err()
}
