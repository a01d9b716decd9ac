package suppress

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/store/sqlite"
)

func TestList(t *testing.T) {
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	l, err := Load(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range []string{"Bob@Example.COM", "blocked.test", "*@spam.test", "sales-*@*", "/^admin[0-9]+@/"} {
		s, err := Parse("t1", in, Manual)
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if err := l.Add(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	hold, _ := Parse("t1", "held@x.test", OnHold)
	hold.ExpiresAt = time.Now().Add(-time.Minute) // already expired
	l.Add(ctx, hold)
	for addr, want := range map[string]bool{
		"Bob@example.com": true, "bob@example.com": true, "BOB@EXAMPLE.COM": true, // case ignored
		"anyone@blocked.test": true, "x@spam.test": true, "sales-eu@corp.test": true, "admin7@corp.test": true,
		"someone@else.test": false, "held@x.test": false,
	} {
		if _, got := l.Check("t1", addr); got != want {
			t.Errorf("Check(%s) = %v, want %v", addr, got, want)
		}
	}
	if _, got := l.Check("t2", "x@spam.test"); got {
		t.Error("another tenant's list applied")
	}
	// Entries survive a reload; removal applies at once.
	l2, err := Load(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := l2.Check("t1", "x@spam.test"); !ok {
		t.Fatal("pattern lost on reload")
	}
	if ok, err := l2.Remove(ctx, "t1", "*@spam.test"); !ok || err != nil {
		t.Fatalf("remove: %v %v", ok, err)
	}
	if _, ok := l2.Check("t1", "x@spam.test"); ok {
		t.Fatal("removed pattern still applies")
	}
	for _, bad := range []string{"/[/", "not a domain!", "a@"} {
		if _, err := Parse("t1", bad, Manual); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
	if _, err := Parse("t1", "a@b.test", "whatever"); err == nil {
		t.Error("unknown reason accepted")
	}
}

// TestCase: lookups fold case in the whole address for every kind of
// entry, entries stored in any spelling (before case folding too) apply
// after a reload, and Remove in any spelling deletes every spelling.
func TestCase(t *testing.T) {
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	// As earlier versions stored them: local part as given.
	now := time.Now().UTC()
	if err := st.PutSuppressions(ctx, []store.Suppression{
		{TenantID: "t1", Kind: "address", Value: "Victim@y.test", Reason: HardBounce, CreatedAt: now},
		{TenantID: "t1", Kind: "regex", Value: "^Admin[0-9]+@", Reason: Manual, CreatedAt: now},
	}); err != nil {
		t.Fatal(err)
	}
	l, err := Load(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range []string{"lower@y.test", "*@Spam.Test", "Blocked.TEST", `/^sales\.[a-z]+@/`} {
		s, err := Parse("t1", in, Manual)
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if err := l.Add(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	for addr, want := range map[string]bool{
		"victim@y.test": true, "Victim@Y.TEST": true, "VICTIM@y.test": true,
		"lower@y.test": true, "Lower@Y.Test": true, "LOWER@y.test": true,
		"x@spam.test": true, "X@SPAM.test": true,
		"a@blocked.test": true, "A@BLOCKED.Test": true,
		"admin7@corp.test": true, "ADMIN7@corp.test": true,
		"sales.eu@corp.test": true, "Sales.EU@Corp.Test": true,
		"victim2@y.test": false, "sales@corp.test": false,
	} {
		if _, got := l.Check("t1", addr); got != want {
			t.Errorf("Check(%s) = %v, want %v", addr, got, want)
		}
	}
	// A second spelling is kept for display; removal in a third removes both.
	s, _ := Parse("t1", "VICTIM@y.test", Manual)
	if err := l.Add(ctx, s); err != nil {
		t.Fatal(err)
	}
	if ok, err := l.Remove(ctx, "t1", "victim@Y.TEST"); !ok || err != nil {
		t.Fatalf("remove: %v %v", ok, err)
	}
	if _, ok := l.Check("t1", "Victim@y.test"); ok {
		t.Fatal("removed address still applies")
	}
	all, err := st.ListSuppressions(ctx, "t1")
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range all {
		if x.Kind == "address" && x.Value != "lower@y.test" {
			t.Errorf("left in the store: %+v", x)
		}
	}
	l2, err := Load(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := l2.Check("t1", "victim@y.test"); ok {
		t.Fatal("removed address back after reload")
	}
	if _, ok := l2.Check("t1", "LOWER@Y.TEST"); !ok {
		t.Fatal("entry lost on reload")
	}
}

// TestCollision: every address hashes alike here, so the in-memory set
// says "maybe" for any address; only the entry confirmed in the store
// suppresses, in any case, and a reloaded list confirms just the same.
func TestCollision(t *testing.T) {
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	l, err := Load(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	l.hash = func(string) uint64 { return 42 }
	s, _ := Parse("t1", "Bob@x.test", HardBounce)
	if err := l.Add(ctx, s); err != nil {
		t.Fatal(err)
	}
	if x, ok := l.Check("t1", "BOB@X.TEST"); !ok || x.Reason != HardBounce || x.Value != "Bob@x.test" {
		t.Fatalf("Check(BOB@X.TEST) = %+v %v", x, ok)
	}
	for _, addr := range []string{"alice@x.test", "bob@y.test"} {
		if x, ok := l.Check("t1", addr); ok {
			t.Errorf("Check(%s) = %+v: a colliding hash suppressed it", addr, x)
		}
	}
}

// TestStoreDown: a hash hit the store cannot confirm counts as suppressed
// (the safe side); a miss needs no store at all.
func TestStoreDown(t *testing.T) {
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	l, err := Load(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := Parse("t1", "bob@x.test", Unsubscribe)
	if err := l.Add(ctx, s); err != nil {
		t.Fatal(err)
	}
	st.Close()
	if x, ok := l.Check("t1", "bob@x.test"); !ok || !strings.Contains(x.Detail, "lookup failed") {
		t.Fatalf("Check with the store closed = %+v %v, want suppressed", x, ok)
	}
	if _, ok := l.Check("t1", "alice@x.test"); ok {
		t.Fatal("an address not in the list suppressed")
	}
}

// TestHashSet checks the set against a map through adds (one and many,
// with repeats), merges and removals.
func TestHashSet(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var h hashSet
	want := map[uint64]bool{}
	for round := 0; round < 300; round++ {
		switch r.IntN(3) {
		case 0:
			x := r.Uint64N(50000)
			h.add(x)
			want[x] = true
		case 1:
			xs := make([]uint64, r.IntN(2000))
			for i := range xs {
				xs[i] = r.Uint64N(50000)
				want[xs[i]] = true
			}
			h.addMany(xs)
		case 2:
			x := r.Uint64N(50000)
			h.remove(x)
			delete(want, x)
		}
	}
	if h.len() != len(want) {
		t.Errorf("len %d, want %d", h.len(), len(want))
	}
	for x := uint64(0); x < 50000; x++ {
		if h.has(x) != want[x] {
			t.Fatalf("has(%d) = %v, want %v", x, h.has(x), want[x])
		}
	}
	if len(h.main) == 0 {
		t.Error("never merged: the test does not cover merging")
	}
}

// TestConcurrent: lookups run while entries are added (merging the hash
// set) and removed; run with -race.
func TestConcurrent(t *testing.T) {
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	l, err := Load(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	kept, _ := Parse("t1", "kept@x.test", Manual)
	if err := l.Add(ctx, kept); err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() {
		for b := 0; b < 10; b++ {
			var ss []store.Suppression
			for i := 0; i < 1000; i++ {
				s, _ := Parse("t1", fmt.Sprintf("u%d.%d@x.test", b, i), Manual)
				ss = append(ss, s)
			}
			if err := l.Add(ctx, ss...); err != nil {
				done <- err
				return
			}
			if _, err := l.Remove(ctx, "t1", fmt.Sprintf("u%d.0@x.test", b)); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for checking := true; checking; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			checking = false
		default:
			if _, ok := l.Check("t1", "KEPT@x.test"); !ok {
				t.Fatal("an entry vanished while others were added")
			}
		}
	}
	if _, ok := l.Check("t1", "u9.999@x.test"); !ok {
		t.Error("last added entry missing")
	}
	if _, ok := l.Check("t1", "u3.0@x.test"); ok {
		t.Error("removed entry still applies")
	}
}
