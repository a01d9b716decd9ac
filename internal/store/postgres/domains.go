package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/posthorn/posthorn/internal/store"
)

// CreateDomain implements store.Domains: the domain and its first key in
// one transaction; a name taken by any tenant is ErrConflict.
func (s *Store) CreateDomain(ctx context.Context, d store.SendingDomain, k store.DKIMKey) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO domains (name, tenant_id, status, unverified_ok, created_at, verified_at, checked_at, last_check)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, d.Name, d.TenantID, d.Status, d.UnverifiedOK, ms(d.CreatedAt), ms(d.VerifiedAt),
			ms(d.CheckedAt), nonNilBytes(d.LastCheck))
		if err != nil {
			return fmt.Errorf("create domain %s: %w", d.Name, asConflict(err))
		}
		return putKey(ctx, tx, k)
	})
}

func nonNilBytes(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func putKey(ctx context.Context, tx pgx.Tx, k store.DKIMKey) error {
	_, err := tx.Exec(ctx, `INSERT INTO dkim_keys (domain, selector, algorithm, public_key, private_key, state, created_at, activated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (domain, selector) DO UPDATE SET algorithm = excluded.algorithm, public_key = excluded.public_key,
			private_key = excluded.private_key, state = excluded.state, created_at = excluded.created_at, activated_at = excluded.activated_at`,
		k.Domain, k.Selector, k.Algorithm, k.PublicKey, nonNilBytes(k.PrivateKey), k.State, ms(k.CreatedAt), ms(k.ActivatedAt))
	if err != nil {
		return fmt.Errorf("put dkim key %s for %s: %w", k.Selector, k.Domain, err)
	}
	return nil
}

const domainCols = "name, tenant_id, status, unverified_ok, created_at, verified_at, checked_at, last_check"

func scanDomain(row pgx.Row) (store.SendingDomain, error) {
	var d store.SendingDomain
	var created, verified, checked int64
	err := row.Scan(&d.Name, &d.TenantID, &d.Status, &d.UnverifiedOK, &created, &verified, &checked, &d.LastCheck)
	d.CreatedAt, d.VerifiedAt, d.CheckedAt = fromMS(created), fromMS(verified), fromMS(checked)
	return d, err
}

// GetDomain implements store.Domains.
func (s *Store) GetDomain(ctx context.Context, name string) (*store.SendingDomain, error) {
	d, err := scanDomain(s.pool.QueryRow(ctx, "SELECT "+domainCols+" FROM domains WHERE name = $1", name))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get domain %s: %w", name, err)
	}
	return &d, nil
}

// ListDomains implements store.Domains.
func (s *Store) ListDomains(ctx context.Context, tenantID string) ([]store.SendingDomain, error) {
	rows, _ := s.pool.Query(ctx, "SELECT "+domainCols+" FROM domains WHERE ($1 = '' OR tenant_id = $1) ORDER BY name", tenantID)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.SendingDomain, error) { return scanDomain(r) })
	if err != nil {
		return nil, fmt.Errorf("list domains: %w", err)
	}
	return out, nil
}

// UpdateDomain implements store.Domains.
func (s *Store) UpdateDomain(ctx context.Context, d store.SendingDomain) error {
	return s.execOne(ctx, "update domain "+d.Name, `UPDATE domains SET status = $1, unverified_ok = $2, verified_at = $3, checked_at = $4,
		last_check = $5 WHERE name = $6`, d.Status, d.UnverifiedOK, ms(d.VerifiedAt), ms(d.CheckedAt), nonNilBytes(d.LastCheck), d.Name)
}

// DeleteDomain implements store.Domains: the domain and its keys.
func (s *Store) DeleteDomain(ctx context.Context, name string) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, "DELETE FROM domains WHERE name = $1", name)
		if err != nil {
			return fmt.Errorf("delete domain %s: %w", name, err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("domain %s: %w", name, store.ErrNotFound)
		}
		if _, err := tx.Exec(ctx, "DELETE FROM dkim_keys WHERE domain = $1", name); err != nil {
			return fmt.Errorf("delete keys of %s: %w", name, err)
		}
		return nil
	})
}

// PutDKIMKeys implements store.Domains.
func (s *Store) PutDKIMKeys(ctx context.Context, ks ...store.DKIMKey) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		for _, k := range ks {
			if err := putKey(ctx, tx, k); err != nil {
				return err
			}
		}
		return nil
	})
}

// DKIMKeys implements store.Domains.
func (s *Store) DKIMKeys(ctx context.Context, domain string) ([]store.DKIMKey, error) {
	rows, _ := s.pool.Query(ctx, `SELECT domain, selector, algorithm, public_key, private_key, state, created_at, activated_at FROM dkim_keys
		WHERE ($1 = '' OR domain = $1) ORDER BY domain, created_at, selector`, domain)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.DKIMKey, error) {
		var k store.DKIMKey
		var created, activated int64
		err := r.Scan(&k.Domain, &k.Selector, &k.Algorithm, &k.PublicKey, &k.PrivateKey, &k.State, &created, &activated)
		k.CreatedAt, k.ActivatedAt = fromMS(created), fromMS(activated)
		return k, err
	})
	if err != nil {
		return nil, fmt.Errorf("list dkim keys: %w", err)
	}
	return out, nil
}

// DeleteDKIMKey implements store.Domains.
func (s *Store) DeleteDKIMKey(ctx context.Context, domain, selector string) error {
	return s.execOne(ctx, fmt.Sprintf("dkim key %s of %s", selector, domain), "DELETE FROM dkim_keys WHERE domain = $1 AND selector = $2",
		domain, selector)
}
