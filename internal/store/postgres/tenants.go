package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/posthorn/posthorn/internal/store"
)

// asConflict turns a unique violation into store.ErrConflict.
func asConflict(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" {
		return store.ErrConflict
	}
	return err
}

// textList is a list as a text[] parameter: never NULL.
func textList(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

// listOrNil reads a text[] back as the SQLite store does: nil when empty.
func listOrNil(l []string) []string {
	if len(l) == 0 {
		return nil
	}
	return l
}

// execOne runs one statement and maps "no row changed" to ErrNotFound.
func (s *Store) execOne(ctx context.Context, what, q string, args ...any) error {
	tag, err := s.pool.Exec(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	return nil
}

// CreateTenant implements store.Store.
func (s *Store) CreateTenant(ctx context.Context, t store.Tenant) error {
	_, err := s.pool.Exec(ctx, "INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)", t.ID, t.Name, ms(t.CreatedAt))
	if err != nil {
		return fmt.Errorf("create tenant %s: %w", t.Name, asConflict(err))
	}
	return nil
}

// GetTenant implements store.Store: by id or by name (the id first).
func (s *Store) GetTenant(ctx context.Context, id string) (*store.Tenant, error) {
	var t store.Tenant
	var created int64
	err := s.pool.QueryRow(ctx, "SELECT id, name, created_at FROM tenants WHERE id = $1 OR name = $1 ORDER BY id = $1 DESC LIMIT 1", id).
		Scan(&t.ID, &t.Name, &created)
	if errors.Is(err, pgx.ErrNoRows) {
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
	rows, _ := s.pool.Query(ctx, "SELECT id, name, created_at FROM tenants ORDER BY created_at, id")
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Tenant, error) {
		var t store.Tenant
		var created int64
		err := r.Scan(&t.ID, &t.Name, &created)
		t.CreatedAt = fromMS(created)
		return t, err
	})
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	return out, nil
}

// DeleteTenant implements store.Credentials.
func (s *Store) DeleteTenant(ctx context.Context, id string) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		for _, table := range []string{"smtp_users", "api_keys", "accounts"} {
			if _, err := tx.Exec(ctx, "DELETE FROM "+table+" WHERE tenant_id = $1", id); err != nil {
				return fmt.Errorf("delete tenant %s: %s: %w", id, table, err)
			}
		}
		tag, err := tx.Exec(ctx, "DELETE FROM tenants WHERE id = $1", id)
		if err != nil {
			return fmt.Errorf("delete tenant %s: %w", id, err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("delete tenant %s: %w", id, store.ErrNotFound)
		}
		return nil
	})
}

// CreateSMTPUser implements store.Store.
func (s *Store) CreateSMTPUser(ctx context.Context, u store.SMTPUser) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO smtp_users (username, tenant_id, password_hash, default_lane, idempotent_message_id, send_dsn,
		domains, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, u.Username, u.TenantID, u.PasswordHash, string(u.DefaultLane),
		u.IdempotentMessageID, u.SendDSN, textList(u.Domains), ms(u.CreatedAt))
	if err != nil {
		return fmt.Errorf("create smtp user %s: %w", u.Username, asConflict(err))
	}
	return nil
}

const smtpUserCols = "username, tenant_id, password_hash, default_lane, idempotent_message_id, send_dsn, domains, created_at"

func scanSMTPUser(row pgx.Row) (store.SMTPUser, error) {
	var u store.SMTPUser
	var lane string
	var created int64
	err := row.Scan(&u.Username, &u.TenantID, &u.PasswordHash, &lane, &u.IdempotentMessageID, &u.SendDSN, &u.Domains, &created)
	u.DefaultLane, u.Domains, u.CreatedAt = store.Lane(lane), listOrNil(u.Domains), fromMS(created)
	return u, err
}

// GetSMTPUser implements store.Store.
func (s *Store) GetSMTPUser(ctx context.Context, username string) (*store.SMTPUser, error) {
	u, err := scanSMTPUser(s.pool.QueryRow(ctx, "SELECT "+smtpUserCols+" FROM smtp_users WHERE username = $1", username))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get smtp user: %w", err)
	}
	return &u, nil
}

// ListSMTPUsers implements store.Store (without password hashes).
func (s *Store) ListSMTPUsers(ctx context.Context, tenantID string) ([]store.SMTPUser, error) {
	rows, _ := s.pool.Query(ctx, "SELECT "+smtpUserCols+" FROM smtp_users WHERE ($1 = '' OR tenant_id = $1) ORDER BY username", tenantID)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.SMTPUser, error) {
		u, err := scanSMTPUser(r)
		u.PasswordHash = ""
		return u, err
	})
	if err != nil {
		return nil, fmt.Errorf("list smtp users: %w", err)
	}
	return out, nil
}

// DeleteSMTPUser implements store.Credentials.
func (s *Store) DeleteSMTPUser(ctx context.Context, tenantID, username string) error {
	return s.execOne(ctx, "delete smtp user "+username, "DELETE FROM smtp_users WHERE username = $1 AND ($2 = '' OR tenant_id = $2)",
		username, tenantID)
}

// SetSMTPUserPassword implements store.Credentials.
func (s *Store) SetSMTPUserPassword(ctx context.Context, username, hash string) error {
	return s.execOne(ctx, "set password of "+username, "UPDATE smtp_users SET password_hash = $1 WHERE username = $2", hash, username)
}

// CreateAPIKey implements store.Store.
func (s *Store) CreateAPIKey(ctx context.Context, k store.APIKey) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO api_keys (id, tenant_id, name, hash, scopes, created_at, domains, sandbox, expires_at, created_by)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`, k.ID, k.TenantID, k.Name, k.Hash, textList(k.Scopes), ms(k.CreatedAt),
		textList(k.Domains), k.Sandbox, ms(k.ExpiresAt), k.CreatedBy)
	if err != nil {
		return fmt.Errorf("create api key: %w", asConflict(err))
	}
	return nil
}

const keyCols = "id, tenant_id, name, hash, scopes, created_at, domains, sandbox, expires_at, last_used_at, created_by"

func scanKey(row pgx.Row) (store.APIKey, error) {
	var k store.APIKey
	var created, expires, used int64
	err := row.Scan(&k.ID, &k.TenantID, &k.Name, &k.Hash, &k.Scopes, &created, &k.Domains, &k.Sandbox, &expires, &used, &k.CreatedBy)
	k.Scopes, k.Domains, k.CreatedAt = listOrNil(k.Scopes), listOrNil(k.Domains), fromMS(created)
	k.ExpiresAt, k.LastUsedAt, k.Prefix = fromMS(expires), fromMS(used), store.APIKeyPrefix(k.ID, k.Sandbox)
	return k, err
}

// GetAPIKey implements store.Store.
func (s *Store) GetAPIKey(ctx context.Context, id string) (*store.APIKey, error) {
	k, err := scanKey(s.pool.QueryRow(ctx, "SELECT "+keyCols+" FROM api_keys WHERE id = $1", id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get api key: %w", err)
	}
	return &k, nil
}

// ListAPIKeys implements store.Store (without hashes).
func (s *Store) ListAPIKeys(ctx context.Context, tenantID string) ([]store.APIKey, error) {
	rows, _ := s.pool.Query(ctx, "SELECT "+keyCols+" FROM api_keys WHERE ($1 = '' OR tenant_id = $1) ORDER BY created_at, id", tenantID)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.APIKey, error) {
		k, err := scanKey(r)
		k.Hash = ""
		return k, err
	})
	if err != nil {
		return nil, fmt.Errorf("list api keys: %w", err)
	}
	return out, nil
}

// DeleteAPIKey implements store.Credentials.
func (s *Store) DeleteAPIKey(ctx context.Context, tenantID, id string) error {
	return s.execOne(ctx, "delete api key "+id, "DELETE FROM api_keys WHERE id = $1 AND ($2 = '' OR tenant_id = $2)", id, tenantID)
}

// TouchAPIKey implements store.Credentials.
func (s *Store) TouchAPIKey(ctx context.Context, id string, at time.Time) error {
	return s.execOne(ctx, "touch api key "+id, "UPDATE api_keys SET last_used_at = $1 WHERE id = $2", ms(at), id)
}

// CreateAccount implements store.Credentials; the email is stored lower case.
func (s *Store) CreateAccount(ctx context.Context, a store.Account) error {
	_, err := s.pool.Exec(ctx, "INSERT INTO accounts (email, tenant_id, role, password_hash, created_at) VALUES ($1, $2, $3, $4, $5)",
		strings.ToLower(a.Email), a.TenantID, a.Role, a.PasswordHash, ms(a.CreatedAt))
	if err != nil {
		return fmt.Errorf("create account %s: %w", a.Email, asConflict(err))
	}
	return nil
}

const accountCols = "email, tenant_id, role, password_hash, created_at"

func scanAccount(row pgx.Row) (store.Account, error) {
	var a store.Account
	var created int64
	err := row.Scan(&a.Email, &a.TenantID, &a.Role, &a.PasswordHash, &created)
	a.CreatedAt = fromMS(created)
	return a, err
}

// GetAccount implements store.Credentials.
func (s *Store) GetAccount(ctx context.Context, email string) (*store.Account, error) {
	a, err := scanAccount(s.pool.QueryRow(ctx, "SELECT "+accountCols+" FROM accounts WHERE email = $1", strings.ToLower(email)))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get account: %w", err)
	}
	return &a, nil
}

// ListAccounts implements store.Credentials (without password hashes).
func (s *Store) ListAccounts(ctx context.Context, tenantID string) ([]store.Account, error) {
	rows, _ := s.pool.Query(ctx, "SELECT "+accountCols+" FROM accounts WHERE ($1 = '' OR tenant_id = $1) ORDER BY email", tenantID)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Account, error) {
		a, err := scanAccount(r)
		a.PasswordHash = ""
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("list accounts: %w", err)
	}
	return out, nil
}

// DeleteAccount implements store.Credentials: the account and the API
// keys it made, in one transaction.
func (s *Store) DeleteAccount(ctx context.Context, email string) error {
	email = strings.ToLower(email)
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, "DELETE FROM accounts WHERE email = $1", email)
		if err != nil {
			return fmt.Errorf("delete account %s: %w", email, err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("delete account %s: %w", email, store.ErrNotFound)
		}
		if _, err := tx.Exec(ctx, "DELETE FROM api_keys WHERE created_by = $1", email); err != nil {
			return fmt.Errorf("delete keys of account %s: %w", email, err)
		}
		return nil
	})
}

// SetAccountPassword implements store.Credentials.
func (s *Store) SetAccountPassword(ctx context.Context, email, hash string) error {
	return s.execOne(ctx, "set password of "+email, "UPDATE accounts SET password_hash = $1 WHERE email = $2", hash, strings.ToLower(email))
}
