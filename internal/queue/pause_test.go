package queue

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/testkit"
)

// TestManualPause: a destination an operator paused gets no attempt
// while paused (its mail stays ready, the pause says who and until when),
// and delivers once resumed; a timed pause ends by itself.
func TestManualPause(t *testing.T) {
	mx := testkit.StartMX(t, "127.0.0.2", 0, testkit.Script{})
	e := newEnv(t, mx.Port(), nil)
	e.dns.SetMX("x.test", testkit.MX{Pref: 10, Host: "mx.x.test"})
	e.dns.SetA("mx.x.test", "127.0.0.2")
	s := e.sched(Config{})
	if _, err := s.PauseDestination("x.test", time.Time{}, "alice"); err != nil {
		t.Fatal(err)
	}
	d := e.insert(time.Hour, "a@x.test")[0]
	s.Enqueue([]store.Delivery{d})
	// Enqueue starts a connection worker at once (under the lock) for
	// a destination that may have one: a paused one has none.
	in := s.Inspect(map[int64]string{d.ID: "x.test"})[d.ID]
	if in.Place != PlaceReady || in.Connections != 0 || in.Manual == nil || in.Manual.By != "alice" {
		t.Fatalf("paused destination: %+v", in)
	}
	if got := e.get(d); got.State != store.Queued || got.Attempts != 0 {
		t.Fatalf("paused destination was attempted: %+v", got)
	}
	if n := len(mx.Messages()); n != 0 {
		t.Fatalf("MX got %d messages while paused", n)
	}
	var info *DestinationInfo
	for _, di := range s.Destinations() {
		if di.Key == "x.test" {
			info = &di
		}
	}
	if info == nil || !info.Paused || info.Manual == nil || !strings.Contains(info.Manual.String(), "paused by operator alice until resumed") {
		t.Fatalf("destinations: %+v", info)
	}
	if !s.ResumeDestination("x.test", "alice") {
		t.Fatal("resume: no pause found")
	}
	e.waitState(d, store.Delivered)

	// A timed pause ends by itself, and not before its end.
	until := time.Now().Add(300 * time.Millisecond)
	if _, err := s.PauseDestination("x.test", until, "bob"); err != nil {
		t.Fatal(err)
	}
	var leasedAt time.Time
	e.st.mu.Lock()
	e.st.beforeLease = func([]int64) { leasedAt = time.Now() }
	e.st.mu.Unlock()
	d2 := e.insert(time.Hour, "b@x.test")[0]
	s.Enqueue([]store.Delivery{d2})
	if in := s.Inspect(map[int64]string{d2.ID: "x.test"})[d2.ID]; in.Manual == nil {
		t.Fatalf("timed pause not in force: %+v", in)
	}
	e.waitState(d2, store.Delivered)
	if leasedAt.Before(until) {
		t.Errorf("leased at %s, before the pause ended at %s", leasedAt, until)
	}
	evs, err := e.st.Events(context.Background(), store.EventFilter{Type: store.EventDestinationPaused})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 {
		t.Errorf("%d destination_paused events, want 2", len(evs))
	}
}
