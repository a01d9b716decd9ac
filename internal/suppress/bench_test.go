package suppress

import (
	"context"
	"fmt"
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
