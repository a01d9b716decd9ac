package store

import (
	"context"
	"time"
)

// Domains is the store of tenants' sending domains and their DKIM keys.
// A domain name is unique across all tenants: CreateDomain of a name that
// exists (for any tenant) is ErrConflict.
type Domains interface {
	// CreateDomain adds a domain with its first DKIM key, atomically.
	CreateDomain(ctx context.Context, d SendingDomain, k DKIMKey) error
	// GetDomain returns a domain by name, whatever its tenant.
	GetDomain(ctx context.Context, name string) (*SendingDomain, error)
	// ListDomains returns a tenant's domains ("" lists every tenant's).
	ListDomains(ctx context.Context, tenantID string) ([]SendingDomain, error)
	// UpdateDomain stores a domain's status and last check.
	UpdateDomain(ctx context.Context, d SendingDomain) error
	// DeleteDomain removes a domain and its keys; ErrNotFound if absent.
	DeleteDomain(ctx context.Context, name string) error
	// PutDKIMKeys inserts or replaces keys (by domain and selector) in one
	// transaction, so a rotation's two changes land together.
	PutDKIMKeys(ctx context.Context, ks ...DKIMKey) error
	// DKIMKeys returns a domain's keys, oldest first ("" returns every key).
	DKIMKeys(ctx context.Context, domain string) ([]DKIMKey, error)
	// DeleteDKIMKey removes one key; ErrNotFound if absent.
	DeleteDKIMKey(ctx context.Context, domain, selector string) error
}

// Domain status: pending until its active DKIM key is seen in DNS.
const (
	DomainPending  = "pending"
	DomainVerified = "verified"
)

// DKIM key states: the active key signs; a pending key (from a rotation)
// waits to be seen in DNS, then becomes active and the old one retired.
const (
	KeyActive  = "active"
	KeyPending = "pending"
	KeyRetired = "retired"
)

// SendingDomain is a domain a tenant sends from.
type SendingDomain struct {
	Name         string    `json:"domain"`
	TenantID     string    `json:"tenant"`
	Status       string    `json:"status"`
	UnverifiedOK bool      `json:"unverified_ok"`
	CreatedAt    time.Time `json:"created_at"`
	VerifiedAt   time.Time `json:"verified_at,omitzero"`
	CheckedAt    time.Time `json:"checked_at,omitzero"`
	// LastCheck is the last DNS check's per-record report (JSON).
	LastCheck []byte `json:"-"`
}

// DKIMKey is one signing key of a domain. PrivateKey is sealed (encrypted
// by the domain package) and never leaves the server.
type DKIMKey struct {
	Domain      string    `json:"-"`
	Selector    string    `json:"selector"`
	Algorithm   string    `json:"algorithm"` // rsa or ed25519
	PublicKey   string    `json:"public_key"`
	PrivateKey  []byte    `json:"-"`
	State       string    `json:"state"`
	CreatedAt   time.Time `json:"created_at"`
	ActivatedAt time.Time `json:"activated_at,omitzero"`
}
