package tenant

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/posthorn/posthorn/internal/smtpproto"
	"github.com/posthorn/posthorn/internal/store"
)

// ErrKeyExpired is returned for a key whose secret is right but whose
// expiry has passed.
var ErrKeyExpired = errors.New("API key expired")

// touchEvery bounds how often a key's last_used_at is written.
const touchEvery = time.Minute

// KeySpec describes a new API key.
type KeySpec struct {
	TenantID  string
	Name      string
	Scopes    []string
	Domains   []string  // sender domains the key is restricted to (none: any of the tenant's)
	Sandbox   bool      // mail is stored and shown delivered, never sent
	ExpiresAt time.Time // zero: never
	CreatedBy string    // the account that made it
}

// CreateAPIKey makes a key for the tenant and returns its secret form,
// shown once.
func (m *Manager) CreateAPIKey(ctx context.Context, tenantID, name string, scopes []string) (string, error) {
	secret, _, err := m.CreateKey(ctx, KeySpec{TenantID: tenantID, Name: name, Scopes: scopes})
	return secret, err
}

// CreateKey makes a key from spec and returns its secret form
// ("ph_live_<id>_<secret>" or "ph_test_..."), shown once, and the key.
func (m *Manager) CreateKey(ctx context.Context, spec KeySpec) (string, *store.APIKey, error) {
	for _, s := range spec.Scopes {
		if s != ScopeSend && s != ScopeRead && s != ScopeAdmin {
			return "", nil, fmt.Errorf("unknown scope %q (want send, read or admin)", s)
		}
	}
	if len(spec.Scopes) == 0 {
		return "", nil, errors.New("an API key needs at least one scope")
	}
	domains, err := NormalizeDomains(spec.Domains)
	if err != nil {
		return "", nil, err
	}
	now := m.now().UTC()
	if !spec.ExpiresAt.IsZero() && !spec.ExpiresAt.After(now) {
		return "", nil, errors.New("the expiry is in the past")
	}
	id, secret := strings.ToLower(randomToken(8)), randomToken(24)
	sum := sha256.Sum256([]byte(secret))
	k := store.APIKey{ID: id, TenantID: spec.TenantID, Name: spec.Name, Hash: hex.EncodeToString(sum[:]), Scopes: spec.Scopes,
		CreatedAt: now, Domains: domains, Sandbox: spec.Sandbox, ExpiresAt: spec.ExpiresAt.UTC(), CreatedBy: spec.CreatedBy,
		Prefix: store.APIKeyPrefix(id, spec.Sandbox)}
	if err := m.st.CreateAPIKey(ctx, k); err != nil {
		return "", nil, err
	}
	k.Hash = ""
	return k.Prefix + "_" + secret, &k, nil
}

// CheckAPIKey verifies a key's secret form and returns the key. A key
// past its expiry is ErrKeyExpired.
func (m *Manager) CheckAPIKey(ctx context.Context, token string) (*store.APIKey, error) {
	rest, ok := strings.CutPrefix(token, "ph_")
	if !ok {
		return nil, ErrBadCredentials
	}
	mode := ""
	if before, after, ok := strings.Cut(rest, "_"); ok && (before == "live" || before == "test") {
		mode, rest = before, after
	}
	id, secret, ok := strings.Cut(rest, "_")
	if !ok {
		return nil, ErrBadCredentials
	}
	k, err := m.st.GetAPIKey(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrBadCredentials
	}
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256([]byte(secret))
	if subtle.ConstantTimeCompare([]byte(hex.EncodeToString(sum[:])), []byte(k.Hash)) != 1 {
		return nil, ErrBadCredentials
	}
	if mode != "" && (mode == "test") != k.Sandbox {
		return nil, ErrBadCredentials // a live key's secret passed off as a test key's, or the reverse
	}
	now := m.now()
	if !k.ExpiresAt.IsZero() && !now.Before(k.ExpiresAt) {
		return nil, ErrKeyExpired
	}
	m.touch(ctx, k.ID, now)
	return k, nil
}

// touch writes a key's last use, at most once per touchEvery per key. A
// failed write is retried on a later use; it never fails the request.
func (m *Manager) touch(ctx context.Context, id string, now time.Time) {
	m.mu.Lock()
	last, seen := m.touched[id]
	due := !seen || now.Sub(last) >= touchEvery
	if due {
		if len(m.touched) > 100000 {
			clear(m.touched)
		}
		m.touched[id] = now
	}
	m.mu.Unlock()
	if !due {
		return
	}
	if err := m.st.TouchAPIKey(ctx, id, now.UTC()); err != nil && !errors.Is(err, store.ErrNotFound) {
		m.mu.Lock()
		delete(m.touched, id)
		m.mu.Unlock()
	}
}

// RemoveKey deletes a key of tenantID ("" any tenant).
func (m *Manager) RemoveKey(ctx context.Context, tenantID, id string) error {
	k, err := m.st.GetAPIKey(ctx, id)
	if err != nil {
		return fmt.Errorf("api key %s: %w", id, err)
	}
	if err := m.st.DeleteAPIKey(ctx, tenantID, id); err != nil {
		return fmt.Errorf("api key %s: %w", id, err)
	}
	return m.credentialEvent(ctx, store.EventCredentialRevoked, k.TenantID, fmt.Sprintf("api key %s (%s) %q", k.ID, k.Prefix, k.Name))
}

// credentialEvent records who lost or changed a credential: an event of
// no message, in the credential's tenant.
func (m *Manager) credentialEvent(ctx context.Context, typ, tenantID, detail string) error {
	if err := m.st.RecordEvent(ctx, store.Event{At: m.now().UTC(), Type: typ, TenantID: tenantID, Detail: detail}); err != nil {
		return fmt.Errorf("record %s event: %w", typ, err)
	}
	return nil
}

// SetUserPassword replaces an SMTP user's password (of tenantID; "" any
// tenant); an empty password generates one, returned in clear once.
func (m *Manager) SetUserPassword(ctx context.Context, tenantID, username, password string) (string, error) {
	u, err := m.st.GetSMTPUser(ctx, username)
	if err == nil && tenantID != "" && u.TenantID != tenantID {
		err = store.ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("smtp user %s: %w", username, err)
	}
	if password == "" {
		password = randomToken(20)
	}
	hash, err := m.hashPassword(ctx, password)
	if err != nil {
		return "", err
	}
	if err := m.st.SetSMTPUserPassword(ctx, username, hash); err != nil {
		return "", fmt.Errorf("smtp user %s: %w", username, err)
	}
	m.mu.Lock()
	delete(m.cache, username) // the old password must stop working now
	m.mu.Unlock()
	return password, m.credentialEvent(ctx, store.EventPasswordChanged, u.TenantID, "smtp user "+username)
}

// RemoveUser deletes an SMTP user of tenantID ("" any tenant) and
// forgets its cached login.
func (m *Manager) RemoveUser(ctx context.Context, tenantID, username string) error {
	u, err := m.st.GetSMTPUser(ctx, username)
	if err != nil {
		return fmt.Errorf("smtp user %s: %w", username, err)
	}
	if err := m.st.DeleteSMTPUser(ctx, tenantID, username); err != nil {
		return fmt.Errorf("smtp user %s: %w", username, err)
	}
	m.mu.Lock()
	delete(m.cache, username)
	m.mu.Unlock()
	return m.credentialEvent(ctx, store.EventCredentialRevoked, u.TenantID, "smtp user "+username)
}

// NormalizeDomains lower-cases and checks a list of sender domains,
// dropping duplicates.
func NormalizeDomains(ds []string) ([]string, error) {
	var out []string
	for _, d := range ds {
		d = strings.TrimSpace(d)
		if d == "" {
			continue
		}
		n, err := smtpproto.NormalizeDomain(d, true)
		if err != nil {
			return nil, fmt.Errorf("domain %q: %w", d, err)
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

// DomainAllowed reports whether domain may be used as a sender domain
// under the restriction list (an empty list allows every domain).
func DomainAllowed(list []string, domain string) bool {
	if len(list) == 0 {
		return true
	}
	d, err := smtpproto.NormalizeDomain(domain, true)
	if err != nil {
		d = strings.ToLower(domain)
	}
	return slices.Contains(list, d)
}

// RemoveTenant removes tenant t with its SMTP users, API keys and
// accounts (its mail and events stay as history) and records a
// tenant_removed event with note (what was cancelled). The default
// tenant stays: the installation's defaults (sendmail, alerts) use it.
func (m *Manager) RemoveTenant(ctx context.Context, t *store.Tenant, note string) error {
	if t.Name == DefaultTenant {
		return fmt.Errorf("the %s tenant cannot be removed", DefaultTenant)
	}
	users, err := m.st.ListSMTPUsers(ctx, t.ID)
	if err != nil {
		return err
	}
	if err := m.st.DeleteTenant(ctx, t.ID); err != nil {
		return err
	}
	m.mu.Lock()
	for _, u := range users {
		delete(m.cache, u.Username) // their passwords must stop working now
	}
	m.mu.Unlock()
	return m.credentialEvent(ctx, store.EventTenantRemoved, t.ID, fmt.Sprintf("tenant %s (%s) with %d smtp users, its api keys and accounts%s", t.Name, t.ID, len(users), note))
}
