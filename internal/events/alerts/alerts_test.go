package alerts

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/config"
	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/testkit/pgtest"
	"github.com/posthorn/posthorn/internal/testkit/stores"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

type fakeActions struct {
	mu    sync.Mutex
	caps  map[string]float64
	held  map[store.Lane]bool
	calls []string
}

func (f *fakeActions) CapRate(dest string, fraction float64) (float64, float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.caps[dest] = 100 * fraction
	f.calls = append(f.calls, "cap "+dest)
	return 100, 100 * fraction
}
func (f *fakeActions) ClearRateCap(dest string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.caps, dest)
	f.calls = append(f.calls, "clear "+dest)
}
func (f *fakeActions) HoldLane(l store.Lane, hold bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.held[l] = hold
}

// TestRules drives the rules with a fake clock over a real store: a "*"
// deferral rule fires per destination and only with enough attempts,
// dead letters count within their window, both hold the low lane once,
// and everything resolves when the windows pass; a restart re-applies a
// firing alert's action.
func TestRules(t *testing.T) { stores.Each(t, testRules) }

func testRules(t *testing.T, st store.Store) {
	ctx := context.Background()
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	rules := []config.AlertRule{
		{Name: "defer", Kind: config.AlertDeferralRate, Destination: "*", Threshold: 50, Window: config.Duration{Duration: time.Minute},
			MinAttempts: 4, Action: config.ActionThrottle, Fraction: 0.5},
		{Name: "dead", Kind: config.AlertDeadLetters, Threshold: 2, Window: config.Duration{Duration: time.Minute},
			Action: config.ActionHoldLane, Lane: "low"},
		{Name: "dead2", Kind: config.AlertDeadLetters, Threshold: 3, Window: config.Duration{Duration: time.Minute},
			Action: config.ActionHoldLane, Lane: "low"},
	}
	act := &fakeActions{caps: map[string]float64{}, held: map[store.Lane]bool{}}
	svc := New(Config{Rules: rules, Interval: time.Second, TenantID: "t1", Now: clock, Log: slog.New(slog.DiscardHandler)}, st, act)
	if err := svc.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	ev := func(typ, rcpt string) {
		t.Helper()
		if err := st.RecordEvent(ctx, store.Event{At: now, Type: typ, TenantID: "t1", MessageID: "m", Recipient: rcpt, Attempt: 1}); err != nil {
			t.Fatal(err)
		}
	}
	firing := func() map[string]bool {
		t.Helper()
		if err := svc.Evaluate(ctx); err != nil {
			t.Fatal(err)
		}
		as, err := svc.List(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for _, a := range as {
			if a.Firing {
				out[a.Key] = true
			}
		}
		return out
	}
	// Three deferrals of three attempts to a.test: too few to judge.
	for i := 0; i < 3; i++ {
		ev("deferred", "x@a.test")
	}
	ev("delivered", "x@b.test")
	if f := firing(); len(f) != 0 {
		t.Fatalf("fired with too few attempts: %v", f)
	}
	ev("deferred", "y@a.test")
	if f := firing(); !f["defer/a.test"] || len(f) != 1 || act.caps["a.test"] != 50 {
		t.Fatalf("want defer/a.test firing and capped: %v %v", f, act.caps)
	}
	ev("dead_letter", "z@c.test")
	ev("dead_letter", "z@c.test")
	if f := firing(); !f["dead"] || f["dead2"] || !act.held["low"] {
		t.Fatalf("dead letters: %v held %v", f, act.held)
	}
	ev("dead_letter", "z@c.test")
	if f := firing(); !f["dead"] || !f["dead2"] {
		t.Fatalf("dead letters: %v", f)
	}
	// Other tenants see no alerts.
	if as, _ := svc.List(ctx, "t2"); len(as) != 0 {
		t.Fatalf("t2 sees %v", as)
	}
	// A restart: the firing alerts' actions come back.
	act2 := &fakeActions{caps: map[string]float64{}, held: map[store.Lane]bool{}}
	svc2 := New(Config{Rules: rules, Interval: time.Second, TenantID: "t1", Now: clock, Log: slog.New(slog.DiscardHandler)}, st, act2)
	if err := svc2.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	if act2.caps["a.test"] != 50 || !act2.held["low"] {
		t.Fatalf("after restart: caps %v held %v", act2.caps, act2.held)
	}
	// The windows pass: everything resolves, the lane is released once
	// both dead-letter alerts have resolved.
	now = now.Add(2 * time.Minute)
	if f := firing(); len(f) != 0 || len(act.caps) != 0 || act.held["low"] {
		t.Fatalf("after the window: %v caps %v held %v", f, act.caps, act.held)
	}
	evs, err := st.Events(ctx, store.EventFilter{TenantID: "t1"})
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, e := range evs {
		counts[e.Type]++
	}
	if counts[store.EventAlertFired] != 3 || counts[store.EventAlertResolved] != 3 {
		t.Fatalf("alert events: %v", counts)
	}
}
