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
	p := &Pruner{Store: st, EventsRetention: 30 * 24 * time.Hour, Batch: 100, Pause: time.Millisecond, Share: 1, Now: func() time.Time { return now }}
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
	p := &Pruner{Store: locked, EventsRetention: 30 * 24 * time.Hour, Batch: 100, Pause: time.Millisecond, Share: 1, Retry: 5 * time.Millisecond,
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

// slowPrune is the store with every prune write taking at least delay
// longer, as it does when acceptance keeps the one writer busy and the
// prune waits for its turn; the rest is the real store.
type slowPrune struct {
	store.EventLog
	delay time.Duration
}

func (s slowPrune) PruneEvents(ctx context.Context, cutoff time.Time, limit int) (int, error) {
	time.Sleep(s.delay)
	return s.EventLog.PruneEvents(ctx, cutoff, limit)
}

// TestPrunerYieldsToABusyStore: after a write that took d the pruner
// waits d×(1/Share − 1), so the slower the store answers (the busier its
// writer), the less of its time pruning takes; Pause is the floor and
// maxLoadPause the ceiling.
func TestPrunerYieldsToABusyStore(t *testing.T) {
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
	// Three batches of 100 and the empty fourth, each write 20 ms or
	// more: with Share 0.25 each of the three pauses is 60 ms or more.
	p := &Pruner{Store: slowPrune{st, 20 * time.Millisecond}, EventsRetention: 30 * 24 * time.Hour, Batch: 100,
		Pause: time.Millisecond, Share: 0.25, Now: func() time.Time { return now }}
	t0 := time.Now()
	evs, _, err := p.RunOnce(ctx)
	if err != nil || evs != 300 {
		t.Fatalf("pruned %d: %v", evs, err)
	}
	if took, least := time.Since(t0), 4*20*time.Millisecond+3*60*time.Millisecond; took < least {
		t.Fatalf("a pass of 4 writes of 20 ms or more took %s, want %s or more (3 pauses of 3 times a write)", took, least)
	}
	for _, c := range []struct{ took, want time.Duration }{
		{0, time.Millisecond},                          // Pause is the floor
		{10 * time.Millisecond, 30 * time.Millisecond}, // 1/0.25 − 1 = 3 times
		{time.Minute, maxLoadPause},                    // and maxLoadPause the ceiling
	} {
		if got := p.pauseAfter(c.took); got != c.want {
			t.Errorf("pause after a write of %s: %s, want %s", c.took, got, c.want)
		}
	}
}
