package postgres

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/store/storetest"
	"github.com/posthorn/posthorn/internal/testkit/pgtest"
)

// BenchmarkDeliveryCycle measures one message's whole life in the store
// (insert, lease, read the body, outcome) with 10 concurrent callers
// sharing commits, as the SQLite store's benchmark of the same name.
func BenchmarkDeliveryCycle(b *testing.B) {
	s, err := Open(context.Background(), pgtest.NewDatabase(b))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	body := make([]byte, 4096)
	var wg sync.WaitGroup
	per := b.N/10 + 1
	b.ResetTimer()
	for w := 0; w < 10; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < per; i++ {
				nm := storetest.NewTestMessage(fmt.Sprintf("m%d-%d", w, i), "a@one.test")
				nm.Message.Body = body
				if err := s.InsertMessages(ctx, []*store.NewMessage{nm}); err != nil {
					b.Error(err)
					return
				}
				id := nm.Deliveries[0].ID
				now := time.Now()
				if _, err := s.Lease(ctx, []int64{id}, now, now.Add(time.Minute)); err != nil {
					b.Error(err)
					return
				}
				if _, err := s.GetMessage(ctx, "", nm.Message.ID, true); err != nil {
					b.Error(err)
					return
				}
				if err := s.RecordOutcomes(ctx, []store.Outcome{{DeliveryID: id, State: store.Delivered, Class: "delivered", StartedAt: now, Event: store.EventDelivered}}); err != nil {
					b.Error(err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	ws := s.WriterStats()
	c, r := ws.Commits, ws.Requests
	b.ReportMetric(float64(r)/float64(c), "reqs/commit")
	b.ReportMetric(float64(c)/float64(b.N), "commits/op")
	b.ReportMetric(float64(s.w.execNS.Load())/float64(c)/1e3, "exec-us/commit")
	b.ReportMetric(float64(s.w.commitNS.Load())/float64(c)/1e3, "commit-us/commit")
}

// BenchmarkAccept measures acceptance alone (InsertMessages of one
// message with two recipients) with 50 concurrent callers, as many SMTP
// sessions would.
func BenchmarkAccept(b *testing.B) {
	s, err := Open(context.Background(), pgtest.NewDatabase(b))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	body := make([]byte, 4096)
	const callers = 50
	var wg sync.WaitGroup
	per := b.N/callers + 1
	b.ResetTimer()
	for w := 0; w < callers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < per; i++ {
				nm := storetest.NewTestMessage(fmt.Sprintf("m%d-%d", w, i), "a@one.test", "b@two.test")
				nm.Message.Body = body
				if err := s.InsertMessages(ctx, []*store.NewMessage{nm}); err != nil {
					b.Error(err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	ws := s.WriterStats()
	c, r := ws.Commits, ws.Requests
	b.ReportMetric(float64(r)/float64(c), "reqs/commit")
	b.ReportMetric(float64(s.w.execNS.Load())/float64(c)/1e3, "exec-us/commit")
	b.ReportMetric(float64(s.w.commitNS.Load())/float64(c)/1e3, "commit-us/commit")
}
