package sqlite

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/posthorn/posthorn/internal/smtpproto"
	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/store/storetest"
)

// BenchmarkDeliveryCycle measures one message's whole life in the store:
// insert, lease, outcome, with 10 concurrent callers sharing commits.
var readBody = true

func BenchmarkDeliveryCycle(b *testing.B) { deliveryCycle(b, 1) }

// BenchmarkDeliveryCycle10 is BenchmarkDeliveryCycle with 10 recipients a
// message (leased and recorded together, as the scheduler does for one
// destination): one op is still one message.
func BenchmarkDeliveryCycle10(b *testing.B) { deliveryCycle(b, 10) }

func deliveryCycle(b *testing.B, rcpts int) {
	s, err := Open(filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	benchDrop(b, s)
	body := make([]byte, 4096)
	to := make([]string, rcpts)
	for i := range to {
		to[i] = fmt.Sprintf("user%d@one.test", i)
	}
	var wg sync.WaitGroup
	per := b.N/10 + 1
	w0, c0 := procWritten(b), cpuTime()
	b.ResetTimer()
	for w := 0; w < 10; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < per; i++ {
				// IDs as the server makes them (ULIDs, in time order): keys
				// on message_id then grow at their end, as in production.
				nm := storetest.NewTestMessage(ulid.Make().String(), to...)
				nm.Message.Body = body
				if err := s.InsertMessages(ctx, []*store.NewMessage{nm}); err != nil {
					b.Error(err)
					return
				}
				ids := make([]int64, rcpts)
				for k, d := range nm.Deliveries {
					ids[k] = d.ID
				}
				now := time.Now()
				if _, err := s.Lease(ctx, ids, now, now.Add(time.Minute)); err != nil {
					b.Error(err)
					return
				}
				if _, err := s.GetMessage(ctx, "", nm.Message.ID, readBody); err != nil {
					b.Error(err)
					return
				}
				outs := make([]store.Outcome, rcpts)
				for k, id := range ids {
					outs[k] = store.Outcome{DeliveryID: id, State: store.Delivered, Class: "delivered", StartedAt: now,
						Duration: time.Millisecond, MX: "mx.one.test", IP: "192.0.2.1",
						Reply: smtpproto.Reply{Code: 250, Enhanced: "2.0.0", Text: "ok queued"}, Event: store.EventDelivered}
				}
				if err := s.RecordOutcomes(ctx, outs); err != nil {
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
	b.ReportMetric(float64(s.execNS.Load())/float64(c)/1e3, "exec-us/commit")
	b.ReportMetric(float64(s.commitNS.Load())/float64(c)/1e3, "commit-us/commit")
	b.ReportMetric(float64((cpuTime()-c0).Nanoseconds())/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(procWritten(b)-w0)/float64(b.N), "written-B/op")
}

// BenchmarkInsertRecipients measures acceptance of one message with 100
// recipients (SMTP with many recipients): one op is one recipient.
func BenchmarkInsertRecipients(b *testing.B) {
	benchInsert(b, 1, 100)
}

// BenchmarkInsertBulk measures acceptance of 1,000 one-recipient 1 KB
// messages in one write (a bulk API request): one op is one recipient.
func BenchmarkInsertBulk(b *testing.B) {
	benchInsert(b, 1000, 1)
}

// BenchmarkInsertSpread measures acceptance as the bulk API sees it at
// scale: writes of 5,000 one-recipient 1 KB messages, each to its own
// address over 5,000 domains (bench/scale -queue). Run it long
// (-benchtime 1000000x): the random-key indexes cost more as they grow.
func BenchmarkInsertSpread(b *testing.B) {
	benchInsertTo(b, 5000, 1, func(n, i int) string { return fmt.Sprintf("r%d@d%04d.queue.test", n+i, (n+i)%5000) })
}

func benchInsert(b *testing.B, msgs, rcpts int) {
	benchInsertTo(b, msgs, rcpts, nil)
}

// benchInsertTo is benchInsert with the recipient of the i-th message of
// the write starting at op n given by rcpt (nil: the same recipients in
// every message).
func benchInsertTo(b *testing.B, msgs, rcpts int, rcpt func(n, i int) string) {
	s, err := Open(filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	benchDrop(b, s)
	body := make([]byte, 1024)
	to := make([]string, rcpts)
	for i := range to {
		to[i] = fmt.Sprintf("user%d@dom%d.test", i, i%7)
	}
	w0, c0 := procWritten(b), cpuTime()
	b.ResetTimer()
	for n := 0; n < b.N; n += msgs * rcpts {
		batch := make([]*store.NewMessage, msgs)
		for i := range batch {
			id := fmt.Sprintf("m%d-%d", n, i)
			if rcpt != nil { // ids in order, as ULIDs are
				id, to = fmt.Sprintf("m%012d", n+i), []string{rcpt(n, i)}
			}
			batch[i] = storetest.NewTestMessage(id, to...)
			batch[i].Message.Body = body
		}
		if err := s.InsertMessages(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(procWritten(b)-w0)/float64(b.N), "written-B/op")
	b.ReportMetric(float64((cpuTime()-c0).Nanoseconds())/float64(b.N), "cpu-ns/op")
}

// cpuTime is the CPU time (user and system) this process used so far: on
// a shared machine it varies less than the wall time per op.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procWritten is how many bytes this process has written (wchar of
// /proc/self/io: WAL frames and checkpoints alike).
func procWritten(b *testing.B) int64 {
	data, err := os.ReadFile("/proc/self/io")
	if err != nil {
		b.Skip("no /proc/self/io")
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "wchar: "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}

// benchDrop drops the indexes named in BENCH_DROP ("index ..."), to
// measure what they cost.
func benchDrop(b *testing.B, s *Store) {
	for _, ix := range strings.Fields(os.Getenv("BENCH_DROP")) {
		if _, err := s.w.Exec("DROP INDEX " + ix); err != nil {
			b.Fatal(err)
		}
	}
}
