package sqlite

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
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

// TestPutSuppressionsShapes: batches whose statements share all, some or
// none of the columns (putShape) store every column of every row, and of
// two rows for one entry the later wins.
func TestPutSuppressionsShapes(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	now := time.UnixMilli(time.Now().UnixMilli())
	r := rand.New(rand.NewPCG(2, 2))
	want := map[string]store.Suppression{}
	for round := range 6 {
		var batch []store.Suppression
		for i := range 300 {
			x := store.Suppression{TenantID: "t1", Kind: "address", Reason: "manual", CreatedAt: now,
				Value: fmt.Sprintf("u%d@r.test", r.IntN(400))}
			if round&1 == 1 && i%7 == 0 {
				x.Reason, x.Detail = "complaint", fmt.Sprintf("d%d", i)
			}
			if round&2 == 2 && i%11 == 0 {
				x.Value = strings.ToUpper(x.Value)
			}
			if round == 5 && i%13 == 0 {
				x.TenantID, x.ExpiresAt = "t2", now.Add(time.Hour)
			}
			batch = append(batch, x)
			want[x.TenantID+" "+x.Value] = x
		}
		if err := s.PutSuppressions(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	got := 0
	for _, tenant := range []string{"t1", "t2"} {
		ss, err := s.ListSuppressions(ctx, tenant)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range ss {
			got++
			w := want[x.TenantID+" "+x.Value]
			if x.Kind != w.Kind || x.Reason != w.Reason || x.Detail != w.Detail || !x.CreatedAt.Equal(w.CreatedAt) || !x.ExpiresAt.Equal(w.ExpiresAt) {
				t.Fatalf("stored %+v, want %+v", x, w)
			}
		}
		if n := len(ss); n > 0 {
			folded, err := s.AddressSuppressions(ctx, tenant, strings.ToLower(ss[0].Value))
			if err != nil || !slices.ContainsFunc(folded, func(x store.Suppression) bool { return x.Value == ss[0].Value }) {
				t.Fatalf("AddressSuppressions(%s): %v %v", ss[0].Value, folded, err)
			}
		}
	}
	if got != len(want) {
		t.Fatalf("%d rows, want %d", got, len(want))
	}
}

// BenchmarkPutSuppressions: an import's batches of 20,000 random
// addresses (one tenant, sorted as the CLI sends them) into a growing
// table; ns/op is per entry.
func BenchmarkPutSuppressions(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	now := time.Now()
	r := rand.New(rand.NewPCG(1, 1))
	batch := make([]store.Suppression, 0, 20000)
	cpu0 := cpuTime()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		batch = append(batch, store.Suppression{TenantID: "tn_BENCH", Kind: "address", Reason: "unsubscribe", CreatedAt: now,
			Value: fmt.Sprintf("u%016x@d%03d.example.com", r.Uint64(), i%500)})
		if len(batch) == cap(batch) || i == b.N-1 {
			slices.SortFunc(batch, func(x, y store.Suppression) int { return strings.Compare(x.Value, y.Value) })
			if err := s.PutSuppressions(ctx, batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op") // the machine may be shared: CPU, not wall time
}
