package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/store/storetest"
)

// BenchmarkAcceptBulk is the acceptance hot path the events indexes and
// report rollups add to: 4 concurrent callers each inserting messages of
// one recipient (one event each) 100 at a time, as the bulk API does,
// over 50 domains with a tag. Compare with the commit before the event
// log changes to see their cost (docs/events.md).
func BenchmarkAcceptBulk(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	body := make([]byte, 4096)
	var wg sync.WaitGroup
	per := b.N/4/100 + 1
	b.ResetTimer()
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < per; i++ {
				batch := make([]*store.NewMessage, 100)
				for j := range batch {
					nm := storetest.NewTestMessage(fmt.Sprintf("m%d-%d-%d", w, i, j), fmt.Sprintf("u%d@d%d.test", j, j%50))
					nm.Message.Body, nm.Message.Tags = body, []string{"bulk"}
					batch[j] = nm
				}
				if err := s.InsertMessages(context.Background(), batch); err != nil {
					b.Error(err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
}
