package suppress

import (
	"context"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/store/sqlite"
)

// gatedStore holds back the address scan until gate closes and counts
// the per-address store lookups.
type gatedStore struct {
	*sqlite.Store
	gate    chan struct{}
	lookups atomic.Int64
}

func (g *gatedStore) EachSuppression(ctx context.Context, tenantID string, fn func(store.Suppression) error) error {
	select {
	case <-g.gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	return g.Store.EachSuppression(ctx, tenantID, fn)
}

func (g *gatedStore) AddressSuppressions(ctx context.Context, tenantID, folded string) ([]store.Suppression, error) {
	g.lookups.Add(1)
	return g.Store.AddressSuppressions(ctx, tenantID, folded)
}

// TestStartInBackground: Start answers before the addresses are read;
// meanwhile every address is looked up in the store (a listed one is
// suppressed, in any case), the rules apply at once, and entries added or
// removed during the load are right after it, when misses no longer ask
// the store.
func TestStartInBackground(t *testing.T) {
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	seed, err := Load(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range []string{"Listed@x.test", "gone@x.test", "blocked.test", "*@spam.test"} {
		s, _ := Parse("t1", in, Manual)
		if err := seed.Add(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	g := &gatedStore{Store: st, gate: make(chan struct{})}
	l, err := Start(ctx, g, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Stop()
	check := func(when string, want map[string]bool) {
		t.Helper()
		for addr, w := range want {
			if _, got := l.Check("t1", addr); got != w {
				t.Errorf("%s: Check(%s) = %v, want %v", when, addr, got, w)
			}
		}
	}
	check("loading", map[string]bool{"LISTED@X.TEST": true, "other@x.test": false, "a@blocked.test": true, "b@spam.test": true})
	if n := g.lookups.Load(); n < 2 {
		t.Fatalf("while loading, %d store lookups for 2 addresses not in memory", n)
	}
	select {
	case <-l.Ready():
		t.Fatal("the address load ended before the store let it read")
	default:
	}
	added, _ := Parse("t1", "new@x.test", Unsubscribe)
	if err := l.Add(ctx, added); err != nil {
		t.Fatal(err)
	}
	if ok, err := l.Remove(ctx, "t1", "gone@x.test"); !ok || err != nil {
		t.Fatalf("remove: %v %v", ok, err)
	}
	check("loading, after add and remove", map[string]bool{"new@x.test": true, "gone@x.test": false})
	close(g.gate)
	if err := l.Err(); err != nil {
		t.Fatal(err)
	}
	check("loaded", map[string]bool{"listed@x.test": true, "New@x.test": true, "gone@x.test": false, "other@x.test": false,
		"a@blocked.test": true, "b@spam.test": true})
	before := g.lookups.Load()
	check("loaded", map[string]bool{"someone@else.test": false, "other@x.test": false})
	if n := g.lookups.Load() - before; n != 0 {
		t.Errorf("loaded: %d store lookups for addresses not listed, want none", n)
	}
}
