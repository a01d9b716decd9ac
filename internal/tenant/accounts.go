package tenant

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"strings"

	"github.com/posthorn/posthorn/internal/store"
)

// Accounts are people who use the API (and later the dashboard): an email
// and a password, one role in one tenant. An account of tenant "" must be
// an owner: it owns the installation and may act for every tenant. A
// person with a role in two tenants has two accounts.
//
// An account acts through the API with its email and password (HTTP basic
// auth) only to manage API keys; a key it creates holds at most its role's
// scopes (RoleScopes) and is removed with the account.

// AddAccount creates an account; an empty password generates one, which
// is returned in clear once.
func (m *Manager) AddAccount(ctx context.Context, email, tenantID, role, password string) (*store.Account, string, error) {
	addr, err := mail.ParseAddress(email)
	if err != nil || addr.Address != email || !strings.Contains(email, "@") {
		return nil, "", fmt.Errorf("account email %q: want a plain address such as ops@example.com", email)
	}
	if role, err = ParseRole(role); err != nil {
		return nil, "", err
	}
	if tenantID == "" && role != RoleOwner {
		return nil, "", errors.New("an account without a tenant owns the installation: its role must be owner")
	}
	if password == "" {
		password = randomToken(20)
	}
	if len(password) < 8 {
		return nil, "", errors.New("a password needs at least 8 characters")
	}
	hash, err := m.hashPassword(ctx, password)
	if err != nil {
		return nil, "", err
	}
	a := store.Account{Email: strings.ToLower(email), TenantID: tenantID, Role: role, PasswordHash: hash, CreatedAt: m.now().UTC()}
	if err := m.st.CreateAccount(ctx, a); err != nil {
		return nil, "", err
	}
	a.PasswordHash = ""
	return &a, password, nil
}

// CheckAccount verifies an account's email and password. Any failure is
// ErrBadCredentials, at the cost of a real check.
func (m *Manager) CheckAccount(ctx context.Context, email, password string) (*store.Account, error) {
	a, err := m.st.GetAccount(ctx, email)
	if errors.Is(err, store.ErrNotFound) {
		m.checkPassword(ctx, dummyHash, password)
		return nil, ErrBadCredentials
	}
	if err != nil {
		return nil, err
	}
	ok, rehash, err := m.checkPassword(ctx, a.PasswordHash, password)
	if err != nil {
		return nil, fmt.Errorf("check password of %s: %w", a.Email, err)
	}
	if !ok {
		return nil, ErrBadCredentials
	}
	if rehash {
		if h, err := m.hashPassword(ctx, password); err == nil {
			m.st.SetAccountPassword(ctx, a.Email, h) // best effort, like CheckSMTP
		}
	}
	a.PasswordHash = ""
	return a, nil
}

// SetAccountPassword replaces an account's password.
func (m *Manager) SetAccountPassword(ctx context.Context, email, password string) error {
	if len(password) < 8 {
		return errors.New("a password needs at least 8 characters")
	}
	hash, err := m.hashPassword(ctx, password)
	if err != nil {
		return err
	}
	if err := m.st.SetAccountPassword(ctx, email, hash); err != nil {
		return err
	}
	tenantID := ""
	if a, err := m.st.GetAccount(ctx, email); err == nil {
		tenantID = a.TenantID
	}
	return m.credentialEvent(ctx, store.EventPasswordChanged, tenantID, "account "+email)
}

// RemoveAccount deletes an account of tenantID ("" any) and the API keys
// it created.
func (m *Manager) RemoveAccount(ctx context.Context, tenantID, email string) error {
	a, err := m.st.GetAccount(ctx, email)
	if err != nil {
		return err
	}
	if tenantID != "" && a.TenantID != tenantID {
		return fmt.Errorf("account %s: %w", email, store.ErrNotFound)
	}
	if err := m.st.DeleteAccount(ctx, a.Email); err != nil {
		return err
	}
	return m.credentialEvent(ctx, store.EventCredentialRevoked, a.TenantID, "account "+a.Email+" and the api keys it created")
}

// AccountKeySpec checks that account a may create a key with spec's
// scopes in spec's tenant, and marks the key as a's. An empty scope list
// takes the role's scopes.
func AccountKeySpec(a *store.Account, spec KeySpec) (KeySpec, error) {
	have := RoleScopes(a.Role)
	if len(spec.Scopes) == 0 {
		spec.Scopes = have
	}
	if !ScopesWithin(spec.Scopes, have) {
		return spec, fmt.Errorf("%w: role %s grants at most %s", ErrScopeTooWide, a.Role, strings.Join(have, ","))
	}
	if a.TenantID != "" && spec.TenantID != a.TenantID {
		return spec, fmt.Errorf("tenant: %w", store.ErrNotFound)
	}
	spec.CreatedBy = a.Email
	return spec, nil
}

// ErrScopeTooWide refuses a key with more scopes than its creator holds.
var ErrScopeTooWide = errors.New("scopes beyond the creator's")

// RecordAuthFailure writes an auth_failed event: proto ("smtp", "api"),
// the client's address and the name it tried. The event belongs to the
// tenant of the user or account when the name exists, else to no tenant
// (visible to the installation's operators only).
func (m *Manager) RecordAuthFailure(ctx context.Context, proto, ip, name string) error {
	tenantID := ""
	if proto == "smtp" {
		if u, err := m.st.GetSMTPUser(ctx, name); err == nil {
			tenantID = u.TenantID
		}
	} else if a, err := m.st.GetAccount(ctx, name); err == nil {
		tenantID = a.TenantID
	}
	if len(name) > 64 {
		name = name[:64]
	}
	return m.st.RecordEvent(ctx, store.Event{At: m.now().UTC(), Type: store.EventAuthFailed, TenantID: tenantID,
		Detail: fmt.Sprintf("protocol=%s ip=%s user=%q", proto, ip, name)})
}
