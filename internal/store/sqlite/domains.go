package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/posthorn/posthorn/internal/store"
)

// domainsMigration creates the sending domain tables. A domain name is the
// primary key, so one domain belongs to one tenant.
const domainsMigration = `CREATE TABLE domains (
		name TEXT PRIMARY KEY,
		tenant_id TEXT NOT NULL,
		status TEXT NOT NULL CHECK (status IN ('pending','verified')),
		unverified_ok INTEGER NOT NULL DEFAULT 0,
		created_at INTEGER NOT NULL,
		verified_at INTEGER NOT NULL DEFAULT 0,
		checked_at INTEGER NOT NULL DEFAULT 0,
		last_check BLOB NOT NULL DEFAULT ''
	) WITHOUT ROWID;
	CREATE INDEX domains_tenant ON domains(tenant_id);
	CREATE TABLE dkim_keys (
		domain TEXT NOT NULL,
		selector TEXT NOT NULL,
		algorithm TEXT NOT NULL CHECK (algorithm IN ('rsa','ed25519')),
		public_key TEXT NOT NULL,
		private_key BLOB NOT NULL,
		state TEXT NOT NULL CHECK (state IN ('active','pending','retired')),
		created_at INTEGER NOT NULL,
		activated_at INTEGER NOT NULL DEFAULT 0,
		PRIMARY KEY (domain, selector)
	) WITHOUT ROWID;`

// CreateDomain implements store.Domains.
func (s *Store) CreateDomain(ctx context.Context, d store.SendingDomain, k store.DKIMKey) error {
	return s.write(ctx, func(tx *sql.Tx, _ *stmts) error {
		_, err := tx.Exec(`INSERT INTO domains (name, tenant_id, status, unverified_ok, created_at, verified_at, checked_at, last_check)
			VALUES (?,?,?,?,?,?,?,?)`, d.Name, d.TenantID, d.Status, b2i(d.UnverifiedOK), ms(d.CreatedAt), ms(d.VerifiedAt), ms(d.CheckedAt), nonNil(d.LastCheck))
		if err != nil {
			return fmt.Errorf("create domain %s: %w", d.Name, uniqueErr(err))
		}
		return putKey(tx, k)
	})
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func putKey(tx *sql.Tx, k store.DKIMKey) error {
	_, err := tx.Exec(`INSERT OR REPLACE INTO dkim_keys (domain, selector, algorithm, public_key, private_key, state, created_at, activated_at)
		VALUES (?,?,?,?,?,?,?,?)`, k.Domain, k.Selector, k.Algorithm, k.PublicKey, k.PrivateKey, k.State, ms(k.CreatedAt), ms(k.ActivatedAt))
	if err != nil {
		return fmt.Errorf("put dkim key %s for %s: %w", k.Selector, k.Domain, err)
	}
	return nil
}

const domainCols = "name, tenant_id, status, unverified_ok, created_at, verified_at, checked_at, last_check"

func scanDomain(sc interface{ Scan(...any) error }) (store.SendingDomain, error) {
	var d store.SendingDomain
	var ok int
	var created, verified, checked int64
	err := sc.Scan(&d.Name, &d.TenantID, &d.Status, &ok, &created, &verified, &checked, &d.LastCheck)
	d.UnverifiedOK, d.CreatedAt, d.VerifiedAt, d.CheckedAt = ok == 1, fromMS(created), fromMS(verified), fromMS(checked)
	return d, err
}

// GetDomain implements store.Domains.
func (s *Store) GetDomain(ctx context.Context, name string) (*store.SendingDomain, error) {
	d, err := scanDomain(s.r.QueryRowContext(ctx, "SELECT "+domainCols+" FROM domains WHERE name = ?", name))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get domain %s: %w", name, err)
	}
	return &d, nil
}

// ListDomains implements store.Domains.
func (s *Store) ListDomains(ctx context.Context, tenantID string) ([]store.SendingDomain, error) {
	q := "SELECT " + domainCols + " FROM domains"
	var args []any
	if tenantID != "" {
		q += " WHERE tenant_id = ?"
		args = append(args, tenantID)
	}
	rows, err := s.r.QueryContext(ctx, q+" ORDER BY name", args...)
	if err != nil {
		return nil, fmt.Errorf("list domains: %w", err)
	}
	defer rows.Close()
	var out []store.SendingDomain
	for rows.Next() {
		d, err := scanDomain(rows)
		if err != nil {
			return nil, fmt.Errorf("list domains: %w", err)
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// UpdateDomain implements store.Domains.
func (s *Store) UpdateDomain(ctx context.Context, d store.SendingDomain) error {
	return s.write(ctx, func(tx *sql.Tx, _ *stmts) error {
		res, err := tx.Exec(`UPDATE domains SET status = ?, unverified_ok = ?, verified_at = ?, checked_at = ?, last_check = ? WHERE name = ?`,
			d.Status, b2i(d.UnverifiedOK), ms(d.VerifiedAt), ms(d.CheckedAt), nonNil(d.LastCheck), d.Name)
		if err != nil {
			return fmt.Errorf("update domain %s: %w", d.Name, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("domain %s: %w", d.Name, store.ErrNotFound)
		}
		return nil
	})
}

// DeleteDomain implements store.Domains.
func (s *Store) DeleteDomain(ctx context.Context, name string) error {
	return s.write(ctx, func(tx *sql.Tx, _ *stmts) error {
		res, err := tx.Exec("DELETE FROM domains WHERE name = ?", name)
		if err != nil {
			return fmt.Errorf("delete domain %s: %w", name, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("domain %s: %w", name, store.ErrNotFound)
		}
		if _, err := tx.Exec("DELETE FROM dkim_keys WHERE domain = ?", name); err != nil {
			return fmt.Errorf("delete keys of %s: %w", name, err)
		}
		return nil
	})
}

// PutDKIMKeys implements store.Domains.
func (s *Store) PutDKIMKeys(ctx context.Context, ks ...store.DKIMKey) error {
	return s.write(ctx, func(tx *sql.Tx, _ *stmts) error {
		for _, k := range ks {
			if err := putKey(tx, k); err != nil {
				return err
			}
		}
		return nil
	})
}

// DKIMKeys implements store.Domains.
func (s *Store) DKIMKeys(ctx context.Context, domain string) ([]store.DKIMKey, error) {
	q := "SELECT domain, selector, algorithm, public_key, private_key, state, created_at, activated_at FROM dkim_keys"
	var args []any
	if domain != "" {
		q += " WHERE domain = ?"
		args = append(args, domain)
	}
	rows, err := s.r.QueryContext(ctx, q+" ORDER BY domain, created_at, selector", args...)
	if err != nil {
		return nil, fmt.Errorf("list dkim keys: %w", err)
	}
	defer rows.Close()
	var out []store.DKIMKey
	for rows.Next() {
		var k store.DKIMKey
		var created, activated int64
		if err := rows.Scan(&k.Domain, &k.Selector, &k.Algorithm, &k.PublicKey, &k.PrivateKey, &k.State, &created, &activated); err != nil {
			return nil, fmt.Errorf("list dkim keys: %w", err)
		}
		k.CreatedAt, k.ActivatedAt = fromMS(created), fromMS(activated)
		out = append(out, k)
	}
	return out, rows.Err()
}

// DeleteDKIMKey implements store.Domains.
func (s *Store) DeleteDKIMKey(ctx context.Context, domain, selector string) error {
	return s.write(ctx, func(tx *sql.Tx, _ *stmts) error {
		res, err := tx.Exec("DELETE FROM dkim_keys WHERE domain = ? AND selector = ?", domain, selector)
		if err != nil {
			return fmt.Errorf("delete dkim key %s of %s: %w", selector, domain, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("dkim key %s of %s: %w", selector, domain, store.ErrNotFound)
		}
		return nil
	})
}
