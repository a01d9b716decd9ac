package events

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/store/sqlite"
)

// TestPrunerRemovesOldEventsInBatches ages data by writing events with
// old timestamps through the store, then runs one pass.
func TestPrunerRemovesOldEventsInBatches(t *testing.T) {
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "p.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	now := time.Now()
	for i := 0; i < 2500; i++ {
		at := now.Add(-40 * 24 * time.Hour)
		if i%10 == 9 {
			at = now.Add(-time.Hour) // recent ones are interleaved and stay
		}
		if err := st.RecordEvent(ctx, store.Event{At: at, Type: store.EventThrottle, TenantID: "t", MessageID: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	p := &Pruner{Store: st, EventsRetention: 30 * 24 * time.Hour, Batch: 100, Pause: time.Millisecond, Now: func() time.Time { return now }}
	evs, _, err := p.RunOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	left, _ := st.CountEvents(ctx, store.EventFilter{}, 10000)
	if evs != 2250 || left != 250 {
		t.Fatalf("pruned %d, left %d; want 2250 and 250", evs, left)
	}
}

// lockedOnce is the store with its first failures prune writes failing as
// SQLite's do when the lock is held past the busy timeout (a checkpoint
// waiting for a long reader): the busy timeout is 10 s, too long to wait
// for here, so the failure is injected and the rest is the real store.
type lockedOnce struct {
	store.EventLog
	mu       sync.Mutex
	failures int
	calls    int
}

func (s *lockedOnce) PruneEvents(ctx context.Context, cutoff time.Time, limit int) (int, error) {
	s.mu.Lock()
	s.calls++
	fail := s.calls <= s.failures
	s.mu.Unlock()
	if fail {
		return 0, errors.New("begin: database is locked")
	}
	return s.EventLog.PruneEvents(ctx, cutoff, limit)
}

// syncBuffer is a log destination safe for the pruner's goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestPrunerRetriesFailedBatchSoon: a prune write that fails (database is
// locked) is tried again after a short, growing wait, not a whole Every
// (an hour here) later; the failure is logged once, not per try.
func TestPrunerRetriesFailedBatchSoon(t *testing.T) {
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "p.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	now := time.Now()
	for i := 0; i < 300; i++ {
		if err := st.RecordEvent(ctx, store.Event{At: now.Add(-40 * 24 * time.Hour), Type: store.EventThrottle, TenantID: "t", MessageID: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	locked := &lockedOnce{EventLog: st, failures: 3}
	var logs syncBuffer
	p := &Pruner{Store: locked, EventsRetention: 30 * 24 * time.Hour, Batch: 100, Pause: time.Millisecond, Retry: 5 * time.Millisecond,
		Every: time.Hour, Log: slog.New(slog.NewTextHandler(&logs, nil))}
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer p.Stop() // a second Stop only waits
	deadline := time.Now().Add(20 * time.Second)
	for {
		left, err := st.CountEvents(ctx, store.EventFilter{}, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d events left 20s after the start (Every is an hour); log:\n%s", left, logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.Stop()
	if n := strings.Count(logs.String(), "write failed"); n != 1 {
		t.Fatalf("failure logged %d times, want once:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "tries=4") {
		t.Fatalf("recovery not logged after 4 tries:\n%s", logs.String())
	}
}
