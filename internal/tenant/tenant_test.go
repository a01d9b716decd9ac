package tenant

import (
	"context"
	"errors"
	"testing"

	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/testkit/pgtest"
	"github.com/posthorn/posthorn/internal/testkit/stores"
)

// The tests run on each store backend (testkit/stores).
func TestMain(m *testing.M) { pgtest.Main(m) }

func TestEnsureDefaultAndCredentials(t *testing.T) { stores.Each(t, testEnsureDefaultAndCredentials) }

func testEnsureDefaultAndCredentials(t *testing.T, st store.Store) {
	ctx := context.Background()
	m := New(st)
	c, err := m.EnsureDefault(ctx)
	if err != nil || c == nil || c.APIKey == "" || c.SMTPPassword == "" || c.Tenant != DefaultTenant {
		t.Fatalf("first start: %+v %v", c, err)
	}
	if again, err := m.EnsureDefault(ctx); err != nil || again != nil {
		t.Fatalf("second start created credentials again: %+v %v", again, err)
	}
	u, err := m.CheckSMTP(ctx, c.SMTPUsername, c.SMTPPassword)
	if err != nil || u.TenantID != c.TenantID {
		t.Fatalf("good login: %+v %v", u, err)
	}
	// Cached path, then wrong passwords and users.
	if _, err := m.CheckSMTP(ctx, c.SMTPUsername, c.SMTPPassword); err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][2]string{{c.SMTPUsername, "wrong"}, {"nobody", c.SMTPPassword}, {c.SMTPUsername, ""}} {
		if _, err := m.CheckSMTP(ctx, bad[0], bad[1]); !errors.Is(err, ErrBadCredentials) {
			t.Errorf("login %q/%q: %v, want ErrBadCredentials", bad[0], bad[1], err)
		}
	}
	k, err := m.CheckAPIKey(ctx, c.APIKey)
	if err != nil || !HasScope(k, ScopeSend) || !HasScope(k, ScopeAdmin) {
		t.Fatalf("api key: %+v %v", k, err)
	}
	for _, bad := range []string{"", "ph_", c.APIKey + "x", "ph_nosuchid_secret", c.APIKey[:len(c.APIKey)-1]} {
		if _, err := m.CheckAPIKey(ctx, bad); !errors.Is(err, ErrBadCredentials) {
			t.Errorf("api key %q: %v", bad, err)
		}
	}
}

func TestScopesAndUsers(t *testing.T) { stores.Each(t, testScopesAndUsers) }

func testScopesAndUsers(t *testing.T, st store.Store) {
	ctx := context.Background()
	m := New(st)
	tn, err := m.CreateTenant(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.CreateAPIKey(ctx, tn.ID, "x", []string{"bogus"}); err == nil {
		t.Fatal("unknown scope accepted")
	}
	key, err := m.CreateAPIKey(ctx, tn.ID, "reader", []string{ScopeRead})
	if err != nil {
		t.Fatal(err)
	}
	k, _ := m.CheckAPIKey(ctx, key)
	if HasScope(k, ScopeSend) || !HasScope(k, ScopeRead) {
		t.Fatalf("scopes: %v", k.Scopes)
	}
	if _, _, err := m.AddUser(ctx, tn.ID, "bob", "pw", store.LaneHigh); err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.AddUser(ctx, tn.ID, "bob", "pw2", store.LaneHigh); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("duplicate user: %v", err)
	}
	if u, err := m.CheckSMTP(ctx, "bob", "pw"); err != nil || u.DefaultLane != store.LaneHigh {
		t.Fatalf("bob: %+v %v", u, err)
	}
}
