package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/posthorn/posthorn/internal/store"
)

// credentialsMigration adds accounts (people with a role in a tenant),
// per-domain restrictions of SMTP users and API keys, sandbox keys and
// messages, key expiry, last use and creator.
const credentialsMigration = `ALTER TABLE smtp_users ADD COLUMN domains TEXT NOT NULL DEFAULT '';
	ALTER TABLE api_keys ADD COLUMN domains TEXT NOT NULL DEFAULT '';
	ALTER TABLE api_keys ADD COLUMN sandbox INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE api_keys ADD COLUMN expires_at INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE api_keys ADD COLUMN last_used_at INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE api_keys ADD COLUMN created_by TEXT NOT NULL DEFAULT '';
	ALTER TABLE messages ADD COLUMN sandbox INTEGER NOT NULL DEFAULT 0;
	CREATE TABLE accounts (
		email TEXT PRIMARY KEY,
		tenant_id TEXT NOT NULL,
		role TEXT NOT NULL CHECK (role IN ('owner','admin','sender','viewer')),
		password_hash TEXT NOT NULL,
		created_at INTEGER NOT NULL
	) WITHOUT ROWID;
	CREATE INDEX accounts_tenant ON accounts(tenant_id);`

// exec runs one statement in a write and maps "no row changed" to
// ErrNotFound.
func (s *Store) execOne(ctx context.Context, what, q string, args ...any) error {
	return s.write(ctx, func(tx *sql.Tx, _ *stmts) error {
		res, err := tx.Exec(q, args...)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%s: %w", what, store.ErrNotFound)
		}
		return nil
	})
}

// tenantClause adds "AND tenant_id = ?" when tenantID is set.
func tenantClause(q string, args []any, tenantID string) (string, []any) {
	if tenantID != "" {
		return q + " AND tenant_id = ?", append(args, tenantID)
	}
	return q, args
}

// DeleteSMTPUser implements store.Credentials.
func (s *Store) DeleteSMTPUser(ctx context.Context, tenantID, username string) error {
	q, args := tenantClause("DELETE FROM smtp_users WHERE username = ?", []any{username}, tenantID)
	return s.execOne(ctx, "delete smtp user "+username, q, args...)
}

// SetSMTPUserPassword implements store.Credentials.
func (s *Store) SetSMTPUserPassword(ctx context.Context, username, hash string) error {
	return s.execOne(ctx, "set password of "+username, "UPDATE smtp_users SET password_hash = ? WHERE username = ?", hash, username)
}

// DeleteAPIKey implements store.Credentials.
func (s *Store) DeleteAPIKey(ctx context.Context, tenantID, id string) error {
	q, args := tenantClause("DELETE FROM api_keys WHERE id = ?", []any{id}, tenantID)
	return s.execOne(ctx, "delete api key "+id, q, args...)
}

// DeleteTenant implements store.Credentials.
func (s *Store) DeleteTenant(ctx context.Context, id string) error {
	return s.write(ctx, func(tx *sql.Tx, _ *stmts) error {
		for _, table := range []string{"smtp_users", "api_keys", "accounts"} {
			if _, err := tx.Exec("DELETE FROM "+table+" WHERE tenant_id = ?", id); err != nil {
				return fmt.Errorf("delete tenant %s: %s: %w", id, table, err)
			}
		}
		res, err := tx.Exec("DELETE FROM tenants WHERE id = ?", id)
		if err != nil {
			return fmt.Errorf("delete tenant %s: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("delete tenant %s: %w", id, store.ErrNotFound)
		}
		return nil
	})
}

// TouchAPIKey implements store.Credentials.
func (s *Store) TouchAPIKey(ctx context.Context, id string, at time.Time) error {
	return s.execOne(ctx, "touch api key "+id, "UPDATE api_keys SET last_used_at = ? WHERE id = ?", ms(at), id)
}

// CreateAccount implements store.Credentials.
func (s *Store) CreateAccount(ctx context.Context, a store.Account) error {
	return s.write(ctx, func(tx *sql.Tx, _ *stmts) error {
		_, err := tx.Exec("INSERT INTO accounts (email, tenant_id, role, password_hash, created_at) VALUES (?,?,?,?,?)",
			strings.ToLower(a.Email), a.TenantID, a.Role, a.PasswordHash, ms(a.CreatedAt))
		if err != nil {
			return fmt.Errorf("create account %s: %w", a.Email, uniqueErr(err))
		}
		return nil
	})
}

const accountColumns = "email, tenant_id, role, password_hash, created_at"

func scanAccount(sc interface{ Scan(...any) error }) (store.Account, error) {
	var a store.Account
	var created int64
	err := sc.Scan(&a.Email, &a.TenantID, &a.Role, &a.PasswordHash, &created)
	a.CreatedAt = fromMS(created)
	return a, err
}

// GetAccount implements store.Credentials.
func (s *Store) GetAccount(ctx context.Context, email string) (*store.Account, error) {
	a, err := scanAccount(s.r.QueryRowContext(ctx, "SELECT "+accountColumns+" FROM accounts WHERE email = ?", strings.ToLower(email)))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get account: %w", err)
	}
	return &a, nil
}

// ListAccounts implements store.Credentials.
func (s *Store) ListAccounts(ctx context.Context, tenantID string) ([]store.Account, error) {
	q, args := tenantClause("SELECT "+accountColumns+" FROM accounts WHERE 1", nil, tenantID)
	rows, err := s.r.QueryContext(ctx, q+" ORDER BY email", args...)
	if err != nil {
		return nil, fmt.Errorf("list accounts: %w", err)
	}
	defer rows.Close()
	var out []store.Account
	for rows.Next() {
		a, err := scanAccount(rows)
		if err != nil {
			return nil, err
		}
		a.PasswordHash = ""
		out = append(out, a)
	}
	return out, rows.Err()
}

// DeleteAccount implements store.Credentials.
func (s *Store) DeleteAccount(ctx context.Context, email string) error {
	email = strings.ToLower(email)
	return s.write(ctx, func(tx *sql.Tx, _ *stmts) error {
		res, err := tx.Exec("DELETE FROM accounts WHERE email = ?", email)
		if err != nil {
			return fmt.Errorf("delete account %s: %w", email, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("delete account %s: %w", email, store.ErrNotFound)
		}
		if _, err := tx.Exec("DELETE FROM api_keys WHERE created_by = ?", email); err != nil {
			return fmt.Errorf("delete keys of account %s: %w", email, err)
		}
		return nil
	})
}

// SetAccountPassword implements store.Credentials.
func (s *Store) SetAccountPassword(ctx context.Context, email, hash string) error {
	return s.execOne(ctx, "set password of "+email, "UPDATE accounts SET password_hash = ? WHERE email = ?", hash, strings.ToLower(email))
}

func joinList(l []string) string { return strings.Join(l, ",") }

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}
