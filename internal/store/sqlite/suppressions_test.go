package sqlite

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/store"
)

// TestEachSuppressionRule: the rules of every tenant (the first, the last,
// one with rules only, one with addresses only), none of the addresses.
func TestEachSuppressionRule(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	now := time.Now()
	var ss []store.Suppression
	add := func(tenant, kind, value string) {
		ss = append(ss, store.Suppression{TenantID: tenant, Kind: kind, Value: value, Reason: "manual", CreatedAt: now})
	}
	add("a", "address", "x@a.test")
	add("a", "domain", "a.test")
	add("b", "address", "y@b.test")
	add("c", "pattern", "*@c.test")
	add("c", "regex", "^c")
	add("d", "address", "z@d.test")
	add("e", "domain", "e.test")
	add("e", "address", "w@e.test")
	if err := s.PutSuppressions(ctx, ss); err != nil {
		t.Fatal(err)
	}
	var got []string
	if err := s.EachSuppressionRule(ctx, func(x store.Suppression) error {
		got = append(got, x.TenantID+" "+x.Kind+" "+x.Value)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := []string{"a domain a.test", "c pattern *@c.test", "c regex ^c", "e domain e.test"}
	if !slices.Equal(got, want) {
		t.Fatalf("rules = %q, want %q", got, want)
	}
}
