package queue

import (
	"context"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/shaping"
	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/testkit"
)

// TestHoldLane: while a lane is held its due jobs are parked (and ready
// ones taken back), an operator may still remove them, other lanes go on,
// and releasing the lane sends what is left.
func TestHoldLane(t *testing.T) {
	mx := testkit.StartMX(t, "127.0.0.2", 0, testkit.Script{})
	e := newEnv(t, mx.Port(), nil)
	e.dns.SetA("mx.hold.test", "127.0.0.2")
	e.dns.SetMX("hold.test", testkit.MX{Pref: 10, Host: "mx.hold.test"})
	s := e.sched(Config{})
	s.HoldLane(store.LaneNormal, true)
	if got := s.HeldLanes(); len(got) != 1 || got[0] != store.LaneNormal {
		t.Fatalf("held lanes %v", got)
	}
	a := e.insert(time.Hour, "a@hold.test")
	b := e.insert(time.Hour, "b@hold.test")
	s.Enqueue(append(a, b...))
	s.mu.Lock()
	nparked := len(s.hooks.parked)
	s.mu.Unlock()
	if nparked != 2 {
		t.Fatalf("%d jobs parked, want 2", nparked)
	}
	// A high-lane job is not held.
	h := e.insert(time.Hour, "h@hold.test")
	h[0].Lane = store.LaneHigh
	s.Enqueue(h)
	e.waitState(h[0], store.Delivered)
	if d := e.get(a[0]); d.State != store.Queued || d.Attempts != 0 {
		t.Fatalf("held delivery was attempted: %+v", d)
	}
	// An operator holds b: the store first, then the scheduler (as
	// internal/queue/ops does), so that no later load brings it back.
	if _, err := e.st.Transition(context.Background(), store.TransitionSpec{Op: store.OpHold, DeliveryIDs: []int64{b[0].ID}, Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if got := s.Remove([]int64{b[0].ID}); len(got) != 1 {
		t.Fatalf("remove of a parked job: %v", got)
	}
	s.HoldLane(store.LaneNormal, false)
	e.waitState(a[0], store.Delivered)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.hooks.parked) != 0 || s.known[b[0].ID] != nil {
		t.Fatalf("after release: parked %d, removed job known %v", len(s.hooks.parked), s.known[b[0].ID] != nil)
	}
	for _, m := range mx.Messages() {
		if len(m.To) > 0 && m.To[0] == "b@hold.test" {
			t.Fatal("the removed delivery was sent")
		}
	}
}

// TestCapRate: a cap halves a destination's configured rate, survives the
// destination being forgotten and made again, and its removal restores
// the rate.
func TestCapRate(t *testing.T) {
	e := newEnv(t, 1, nil)
	s := e.sched(Config{Limits: func(string) shaping.Limits { return shaping.Limits{MaxConns: 2, RatePerMinute: 600} }})
	from, capped := s.CapRate("cap.test", 0.5)
	if from != 600 || capped != 300 {
		t.Fatalf("CapRate = %v, %v", from, capped)
	}
	rate := func() shaping.State {
		s.mu.Lock()
		defer s.mu.Unlock()
		d := s.dests["cap.test"]
		if d == nil {
			d = s.newDest("cap.test")
		}
		return d.th.State()
	}
	if st := rate(); st.RatePerMinute != 300 || st.RateCap != 300 {
		t.Fatalf("capped: %+v", st)
	}
	s.mu.Lock()
	delete(s.dests, "cap.test") // idle and forgotten
	s.mu.Unlock()
	if st := rate(); st.RatePerMinute != 300 {
		t.Fatalf("made again: %+v", st)
	}
	s.ClearRateCap("cap.test")
	if st := rate(); st.RatePerMinute != 600 || st.RateCap != 0 {
		t.Fatalf("cleared: %+v", st)
	}
}
