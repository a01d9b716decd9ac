package shaping

import (
	"testing"
	"time"
)

// TestAdopt: another node's cut lowers connections and rate and extends
// the pause, never raises anything, and a repeat changes nothing.
func TestAdopt(t *testing.T) {
	now := time.Unix(1000, 0)
	th := New(Limits{MaxConns: 8, RatePerMinute: 600})
	ch, ok := th.Adopt(2, 100, now.Add(time.Minute), "421 slow down (seen by node b)", now)
	if !ok || ch.To.Conns != 2 || ch.To.RatePerMinute != 100 || !th.PausedUntil().Equal(now.Add(time.Minute)) || !ch.To.Throttled {
		t.Fatalf("adopt: %+v %v", ch, ok)
	}
	if w := th.Take(now.Add(time.Second)); w != 59*time.Second {
		t.Fatalf("paused for %s, want 59s", w)
	}
	if _, ok := th.Adopt(2, 100, now.Add(time.Minute), "again", now); ok {
		t.Fatal("the same cut applied twice")
	}
	if _, ok := th.Adopt(6, 500, now.Add(time.Second), "higher", now); ok || th.Conns() != 2 || th.State().RatePerMinute != 100 {
		t.Fatalf("a higher cut raised the limits: %+v", th.State())
	}
}
