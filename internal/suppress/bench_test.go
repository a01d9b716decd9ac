package suppress

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/store/sqlite"
)

// BenchmarkCheck is the accept-time lookup over a list of 100,000
// addresses (bench/scale measures 10,000,000): a miss is the in-memory
// hash set alone, a hit adds the store's confirmation.
func BenchmarkCheck(b *testing.B) {
	st, err := sqlite.Open(filepath.Join(b.TempDir(), "db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	const n = 100_000
	ss := make([]store.Suppression, n)
	for i := range ss {
		ss[i] = store.Suppression{TenantID: "t1", Kind: "address", Value: fmt.Sprintf("user%d@example.com", i), Reason: HardBounce}
	}
	l, err := Load(ctx, st)
	if err != nil {
		b.Fatal(err)
	}
	if err := l.Add(ctx, ss...); err != nil {
		b.Fatal(err)
	}
	b.Run("miss", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			if _, ok := l.Check("t1", fmt.Sprintf("other%d@example.com", i%n)); ok {
				b.Fatal("suppressed")
			}
		}
	})
	b.Run("hit", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			if _, ok := l.Check("t1", strings.ToUpper(ss[i%n].Value)); !ok {
				b.Fatal("not suppressed")
			}
		}
	})
}

// BenchmarkAddMany: an import's batches of 20,000 hashes into a tenant's
// set of 10,000,000 (ns/op is per hash).
func BenchmarkAddMany(b *testing.B) {
	r := rand.New(rand.NewPCG(3, 3))
	main := make([]uint64, 10_000_000)
	for i := range main {
		main[i] = r.Uint64()
	}
	h := hashSet{main: sortedSet(main)}
	batch := make([]uint64, 0, 20000)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		batch = append(batch, r.Uint64())
		if len(batch) == cap(batch) || i == b.N-1 {
			h.addMany(batch)
			batch = make([]uint64, 0, 20000)
		}
	}
}
