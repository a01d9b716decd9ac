package tenant

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/testkit/stores"
)

func TestPasswordsArgon2idAndBcryptUpgrade(t *testing.T) {
	stores.Each(t, testPasswordsArgon2idAndBcryptUpgrade)
}

func testPasswordsArgon2idAndBcryptUpgrade(t *testing.T, st store.Store) {
	ctx := context.Background()
	m := New(st)
	tn, _ := m.CreateTenant(ctx, "acme")
	u, _, err := m.AddUser(ctx, tn.ID, "new", "s3cret-pass", store.LaneNormal)
	if err != nil || !strings.HasPrefix(u.PasswordHash, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("new users get argon2id hashes: %q %v", u.PasswordHash, err)
	}
	// A user stored by an older posthorn, with a bcrypt hash.
	old, _ := bcrypt.GenerateFromPassword([]byte("old-pass"), bcrypt.MinCost)
	if err := m.st.CreateSMTPUser(ctx, store.SMTPUser{Username: "old", TenantID: tn.ID, PasswordHash: string(old), DefaultLane: store.LaneNormal}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.CheckSMTP(ctx, "old", "wrong"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("wrong password on a bcrypt hash: %v", err)
	}
	if _, err := m.CheckSMTP(ctx, "old", "old-pass"); err != nil {
		t.Fatalf("bcrypt hash no longer verified: %v", err)
	}
	got, _ := m.st.GetSMTPUser(ctx, "old")
	if !strings.HasPrefix(got.PasswordHash, "$argon2id$") {
		t.Fatalf("bcrypt hash not replaced after a good login: %q", got.PasswordHash)
	}
	m.cache = map[string]authCacheEntry{} // check the new hash, not the cache
	if _, err := m.CheckSMTP(ctx, "old", "old-pass"); err != nil {
		t.Fatalf("rehashed password: %v", err)
	}
	// The dummy hash used for unknown users parses (so it costs a real check).
	if ok, _, err := CheckPassword(dummyHash, "x"); ok || err != nil {
		t.Fatalf("dummy hash: %v %v", ok, err)
	}
	for _, bad := range []string{"", "$argon2id$v=19$m=0,t=1,p=1$AA$AA", "$argon2i$v=19$m=8,t=1,p=1$AA$AA", "plain"} {
		if ok, _, err := CheckPassword(bad, "x"); ok || err == nil {
			t.Errorf("malformed hash %q accepted: %v %v", bad, ok, err)
		}
	}
}

func TestKeysPrefixExpiryAndLastUse(t *testing.T) { stores.Each(t, testKeysPrefixExpiryAndLastUse) }

func testKeysPrefixExpiryAndLastUse(t *testing.T, st store.Store) {
	ctx := context.Background()
	m := New(st)
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	m.now = func() time.Time { return now }
	tn, _ := m.CreateTenant(ctx, "acme")
	live, k, err := m.CreateKey(ctx, KeySpec{TenantID: tn.ID, Scopes: []string{ScopeSend}, Domains: []string{"Example.COM"}, ExpiresAt: now.Add(time.Hour)})
	if err != nil || !strings.HasPrefix(live, "ph_live_"+k.ID+"_") || k.Prefix != "ph_live_"+k.ID || k.Domains[0] != "example.com" {
		t.Fatalf("live key %q %+v %v", live, k, err)
	}
	test, tk, err := m.CreateKey(ctx, KeySpec{TenantID: tn.ID, Scopes: []string{ScopeSend}, Sandbox: true})
	if err != nil || !strings.HasPrefix(test, "ph_test_"+tk.ID+"_") {
		t.Fatalf("sandbox key %q %v", test, err)
	}
	if got, err := m.CheckAPIKey(ctx, test); err != nil || !got.Sandbox {
		t.Fatalf("sandbox key check: %+v %v", got, err)
	}
	// The marker must match the key: a live secret under ph_test_ is refused.
	if _, err := m.CheckAPIKey(ctx, strings.Replace(live, "ph_live_", "ph_test_", 1)); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("live key passed as test key: %v", err)
	}
	// The form before the marker still works.
	if _, err := m.CheckAPIKey(ctx, strings.Replace(live, "ph_live_", "ph_", 1)); err != nil {
		t.Fatalf("old key form: %v", err)
	}
	stored, _ := m.st.GetAPIKey(ctx, k.ID)
	if !stored.LastUsedAt.Equal(now) {
		t.Fatalf("last use not recorded: %v", stored.LastUsedAt)
	}
	// Within a minute, uses do not write.
	now = now.Add(30 * time.Second)
	m.CheckAPIKey(ctx, live)
	if stored, _ = m.st.GetAPIKey(ctx, k.ID); !stored.LastUsedAt.Equal(now.Add(-30 * time.Second)) {
		t.Fatalf("last use written again within a minute: %v", stored.LastUsedAt)
	}
	now = now.Add(31 * time.Second)
	m.CheckAPIKey(ctx, live)
	if stored, _ = m.st.GetAPIKey(ctx, k.ID); !stored.LastUsedAt.Equal(now) {
		t.Fatalf("last use not written after a minute: %v", stored.LastUsedAt)
	}
	now = now.Add(time.Hour)
	if _, err := m.CheckAPIKey(ctx, live); !errors.Is(err, ErrKeyExpired) {
		t.Fatalf("expired key: %v", err)
	}
	if _, _, err := m.CreateKey(ctx, KeySpec{TenantID: tn.ID, Scopes: []string{ScopeRead}, ExpiresAt: now.Add(-time.Second)}); err == nil {
		t.Fatal("a key expiring in the past was created")
	}
}

func TestAccountsRolesAndKeys(t *testing.T) { stores.Each(t, testAccountsRolesAndKeys) }

func testAccountsRolesAndKeys(t *testing.T, st store.Store) {
	ctx := context.Background()
	m := New(st)
	tn, _ := m.CreateTenant(ctx, "acme")
	if _, _, err := m.AddAccount(ctx, "ops@example.com", "", RoleAdmin, "long-password"); err == nil {
		t.Fatal("an installation account that is not an owner was created")
	}
	if _, _, err := m.AddAccount(ctx, "not an email", tn.ID, RoleViewer, "long-password"); err == nil {
		t.Fatal("bad email accepted")
	}
	if _, _, err := m.AddAccount(ctx, "v@example.com", tn.ID, "boss", "long-password"); err == nil {
		t.Fatal("unknown role accepted")
	}
	v, _, err := m.AddAccount(ctx, "Viewer@Example.com", tn.ID, RoleViewer, "long-password")
	if err != nil || v.Email != "viewer@example.com" {
		t.Fatalf("viewer: %+v %v", v, err)
	}
	if _, _, err := m.AddAccount(ctx, "viewer@example.com", tn.ID, RoleAdmin, "long-password"); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("duplicate account: %v", err)
	}
	a, err := m.CheckAccount(ctx, "VIEWER@example.com", "long-password")
	if err != nil || a.Role != RoleViewer || a.TenantID != tn.ID {
		t.Fatalf("login: %+v %v", a, err)
	}
	for _, bad := range [][2]string{{"viewer@example.com", "wrong-password"}, {"nobody@example.com", "long-password"}} {
		if _, err := m.CheckAccount(ctx, bad[0], bad[1]); !errors.Is(err, ErrBadCredentials) {
			t.Errorf("login %v: %v", bad, err)
		}
	}
	// A viewer hands out at most read.
	if _, err := AccountKeySpec(a, KeySpec{TenantID: tn.ID, Scopes: []string{ScopeSend}}); !errors.Is(err, ErrScopeTooWide) {
		t.Fatalf("viewer made a send key: %v", err)
	}
	spec, err := AccountKeySpec(a, KeySpec{TenantID: tn.ID})
	if err != nil || len(spec.Scopes) != 1 || spec.Scopes[0] != ScopeRead || spec.CreatedBy != a.Email {
		t.Fatalf("viewer's default key: %+v %v", spec, err)
	}
	if _, err := AccountKeySpec(a, KeySpec{TenantID: "tn_other"}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("key for another tenant: %v", err)
	}
	_, k, err := m.CreateKey(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SetAccountPassword(ctx, a.Email, "another-password"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.CheckAccount(ctx, a.Email, "another-password"); err != nil {
		t.Fatalf("new password: %v", err)
	}
	if err := m.RemoveAccount(ctx, "tn_other", a.Email); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("removed through another tenant: %v", err)
	}
	if err := m.RemoveAccount(ctx, tn.ID, a.Email); err != nil {
		t.Fatal(err)
	}
	if _, err := m.st.GetAPIKey(ctx, k.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the removed account's key survived: %v", err)
	}
	if err := m.RecordAuthFailure(ctx, "api", "192.0.2.9", "nobody@example.com"); err != nil {
		t.Fatal(err)
	}
	evs, _ := m.st.Events(ctx, store.EventFilter{Type: store.EventAuthFailed})
	if len(evs) != 1 || !strings.Contains(evs[0].Detail, "ip=192.0.2.9") || !strings.Contains(evs[0].Detail, `user="nobody@example.com"`) {
		t.Fatalf("auth_failed events: %+v", evs)
	}
}

// TestPasswordHashesBounded: at most cap(hashing) argon2id hashes run at
// once (each takes 19 MiB); a login waits for a slot or its context.
func TestPasswordHashesBounded(t *testing.T) { stores.Each(t, testPasswordHashesBounded) }

func testPasswordHashesBounded(t *testing.T, st store.Store) {
	ctx := context.Background()
	m := New(st)
	tn, _ := m.CreateTenant(ctx, "acme")
	if _, _, err := m.AddUser(ctx, tn.ID, "bob", "bob-password", store.LaneNormal); err != nil {
		t.Fatal(err)
	}
	for range cap(m.hashing) {
		m.hashing <- struct{}{} // every slot taken
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := m.CheckSMTP(short, "bob", "bob-password"); err == nil || errors.Is(err, ErrBadCredentials) {
		t.Fatalf("login with every hash slot taken: %v, want a context error", err)
	}
	<-m.hashing // one slot free
	if _, err := m.CheckSMTP(ctx, "bob", "bob-password"); err != nil {
		t.Fatalf("login with a free slot: %v", err)
	}
}
