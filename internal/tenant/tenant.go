// Package tenant manages tenants, SMTP users, API keys and accounts
// (people with a role), and checks credentials. Secrets are generated
// here, shown once, and stored only as hashes: argon2id for passwords
// (password.go; older bcrypt hashes are verified and replaced on the next
// good login), SHA-256 for API keys (they are long random strings, so a
// fast hash is safe and keeps API calls cheap).
//
// API keys read "ph_live_<id>_<secret>" ("ph_test_" for sandbox keys);
// the "ph_live_<id>" prefix is stored in clear and shown in listings. Keys
// made before the live/test marker ("ph_<id>_<secret>") still work. A key
// may expire; its last use is written at most once per minute per key
// (touchEvery), not on every request.
//
// SMTP users and API keys may be restricted to some sender domains
// (Domains): internal/accept refuses other envelope and From domains.
package tenant

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/posthorn/posthorn/internal/store"
)

// DefaultTenant is the name of the tenant created on first start.
const DefaultTenant = "default"

// Scopes an API key may hold.
const (
	ScopeSend  = "send"
	ScopeRead  = "read"
	ScopeAdmin = "admin"
)

// ErrBadCredentials is returned for any failed login, whatever the cause,
// so callers cannot tell a wrong user from a wrong password.
var ErrBadCredentials = errors.New("invalid credentials")

// Manager creates and checks tenants' credentials.
type Manager struct {
	st  store.Store
	now func() time.Time

	mu      sync.Mutex
	cache   map[string]authCacheEntry // username -> last good password digest
	touched map[string]time.Time      // API key id -> when last_used_at was written
	hashing chan struct{}             // bounds password hashes in flight (password.go)
}

type authCacheEntry struct {
	digest [32]byte
	user   store.SMTPUser
	until  time.Time
}

// New returns a Manager over st.
func New(st store.Store) *Manager {
	return &Manager{st: st, now: time.Now, cache: map[string]authCacheEntry{}, touched: map[string]time.Time{},
		hashing: make(chan struct{}, max(4, 2*runtime.GOMAXPROCS(0)))}
}

// Credentials are what first start prints once.
type Credentials struct {
	Tenant       string `json:"tenant"`
	TenantID     string `json:"tenant_id"`
	APIKey       string `json:"api_key"`
	SMTPUsername string `json:"smtp_username"`
	SMTPPassword string `json:"smtp_password"`
}

// EnsureDefault creates the default tenant with an admin API key and one
// SMTP user when the store has no tenant yet. It returns nil credentials
// when the store was already initialised.
func (m *Manager) EnsureDefault(ctx context.Context) (*Credentials, error) {
	ts, err := m.st.ListTenants(ctx)
	if err != nil {
		return nil, err
	}
	if len(ts) > 0 {
		return nil, nil
	}
	t, err := m.CreateTenant(ctx, DefaultTenant)
	if err != nil {
		return nil, err
	}
	key, err := m.CreateAPIKey(ctx, t.ID, "admin", []string{ScopeSend, ScopeRead, ScopeAdmin})
	if err != nil {
		return nil, err
	}
	user, pass, err := m.AddUser(ctx, t.ID, "posthorn", "", store.LaneNormal)
	if err != nil {
		return nil, err
	}
	return &Credentials{Tenant: t.Name, TenantID: t.ID, APIKey: key, SMTPUsername: user.Username, SMTPPassword: pass}, nil
}

// CreateTenant adds a tenant with a new id.
func (m *Manager) CreateTenant(ctx context.Context, name string) (*store.Tenant, error) {
	if name == "" || strings.ContainsAny(name, " \t\r\n") {
		return nil, fmt.Errorf("tenant name %q: must be non-empty without spaces", name)
	}
	t := store.Tenant{ID: "tn_" + randomToken(10), Name: name, CreatedAt: m.now().UTC()}
	if err := m.st.CreateTenant(ctx, t); err != nil {
		return nil, err
	}
	return &t, nil
}

// Resolve finds a tenant by id or name.
func (m *Manager) Resolve(ctx context.Context, idOrName string) (*store.Tenant, error) {
	if idOrName == "" {
		idOrName = DefaultTenant
	}
	t, err := m.st.GetTenant(ctx, idOrName)
	if err != nil {
		return nil, fmt.Errorf("tenant %q: %w", idOrName, err)
	}
	return t, nil
}

// AddUser creates an SMTP user; an empty password generates one. It
// returns the password in clear once.
func (m *Manager) AddUser(ctx context.Context, tenantID, username, password string, lane store.Lane, opts ...UserOption) (*store.SMTPUser, string, error) {
	if username == "" || strings.ContainsAny(username, " \t\r\n\x00") {
		return nil, "", fmt.Errorf("username %q: must be non-empty without spaces", username)
	}
	if password == "" {
		password = randomToken(20)
	}
	hash, err := m.hashPassword(ctx, password)
	if err != nil {
		return nil, "", err
	}
	u := store.SMTPUser{Username: username, TenantID: tenantID, PasswordHash: hash, DefaultLane: lane, CreatedAt: m.now().UTC()}
	for _, o := range opts {
		o(&u)
	}
	if u.Domains, err = NormalizeDomains(u.Domains); err != nil {
		return nil, "", err
	}
	if err := m.st.CreateSMTPUser(ctx, u); err != nil {
		return nil, "", err
	}
	return &u, password, nil
}

// UserOption sets an optional property of a new SMTP user.
type UserOption func(*store.SMTPUser)

// WithMessageIDIdempotency makes the user's Message-ID headers idempotency
// keys.
func WithMessageIDIdempotency(on bool) UserOption {
	return func(u *store.SMTPUser) { u.IdempotentMessageID = on }
}

// WithDSN makes posthorn send the user's envelope senders a DSN when
// their mail finally fails.
func WithDSN(on bool) UserOption {
	return func(u *store.SMTPUser) { u.SendDSN = on }
}

// WithDomains restricts the user to these sender domains.
func WithDomains(domains []string) UserOption {
	return func(u *store.SMTPUser) { u.Domains = domains }
}

// CheckSMTP verifies a submission login. Successful logins are cached
// briefly (by a digest of the password) so busy clients that log in on
// every connection do not pay for the password hash each time.
func (m *Manager) CheckSMTP(ctx context.Context, username, password string) (*store.SMTPUser, error) {
	digest := sha256.Sum256([]byte(username + "\x00" + password))
	now := m.now()
	m.mu.Lock()
	e, ok := m.cache[username]
	m.mu.Unlock()
	if ok && now.Before(e.until) && subtle.ConstantTimeCompare(e.digest[:], digest[:]) == 1 {
		u := e.user
		return &u, nil
	}
	u, err := m.st.GetSMTPUser(ctx, username)
	if errors.Is(err, store.ErrNotFound) {
		// Spend the same time as a real check.
		m.checkPassword(ctx, dummyHash, password)
		return nil, ErrBadCredentials
	}
	if err != nil {
		return nil, err
	}
	ok, rehash, err := m.checkPassword(ctx, u.PasswordHash, password)
	if err != nil {
		return nil, fmt.Errorf("check password of %s: %w", username, err)
	}
	if !ok {
		return nil, ErrBadCredentials
	}
	if rehash {
		if h, err := m.hashPassword(ctx, password); err == nil {
			// Best effort: the login stands even if the upgrade fails.
			if m.st.SetSMTPUserPassword(ctx, username, h) == nil {
				u.PasswordHash = h
			}
		}
	}
	m.mu.Lock()
	if len(m.cache) > 10000 {
		clear(m.cache)
	}
	m.cache[username] = authCacheEntry{digest: digest, user: *u, until: now.Add(5 * time.Minute)}
	m.mu.Unlock()
	return u, nil
}

// dummyHash is checked against when a login names nobody, so that costs
// what a real check costs. (A constant: computing it needs no state.)
const dummyHash = "$argon2id$v=19$m=19456,t=2,p=1$cG9zdGhvcm4tZHVtbXk$8Hq7R9Ew8bYcJg2mJmM9n3vV2cSg0Qb7j0xk9Ck3Z1E"

// HasScope reports whether k holds scope (admin holds every scope).
func HasScope(k *store.APIKey, scope string) bool {
	for _, s := range k.Scopes {
		if s == scope || s == ScopeAdmin {
			return true
		}
	}
	return false
}

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// randomToken returns n random bytes in base32 (letters and digits only,
// so tokens survive copy and paste and SMTP AUTH).
func randomToken(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return b32.EncodeToString(b)
}
