package shaping

import (
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestTokenBucket(t *testing.T) {
	th := New(Limits{MaxConns: 5, RatePerMinute: 60})
	sent := 0
	// Over two simulated minutes, polling every 100ms, about 60/min go.
	for now := t0; now.Before(t0.Add(2 * time.Minute)); now = now.Add(100 * time.Millisecond) {
		if th.Take(now) == 0 {
			sent++
		}
	}
	if sent < 115 || sent > 125 {
		t.Fatalf("sent %d in 2 minutes at 60/min", sent)
	}
	if w := New(Limits{MaxConns: 1}).Take(t0); w != 0 {
		t.Fatalf("unlimited throttle made us wait %s", w)
	}
}

func TestAIMD(t *testing.T) {
	th := New(Limits{MaxConns: 8, RatePerMinute: 600, Cooldown: 30 * time.Second, RaiseEvery: 5})
	c := th.RateLimited(t0, 0, "421 4.7.28 slow down")
	if c.To.Conns != 4 || c.To.RatePerMinute != 300 || !c.To.Throttled || c.From.Conns != 8 {
		t.Fatalf("first cut: %+v", c)
	}
	if w := th.Take(t0.Add(time.Second)); w < 28*time.Second {
		t.Fatalf("not paused after rate_limited: wait %s", w)
	}
	for i := 0; i < 5; i++ {
		th.RateLimited(t0, 0, "again")
	}
	if s := th.State(); s.Conns != 1 || s.RatePerMinute < 1 {
		t.Fatalf("never below one: %+v", s)
	}
	// Successes raise it step by step back to the limits, not beyond.
	steps := 0
	for i := 0; i < 1000; i++ {
		if _, ok := th.Success(t0); ok {
			steps++
		}
	}
	if s := th.State(); s.Conns != 8 || s.RatePerMinute != 600 || s.Throttled {
		t.Fatalf("after recovery: %+v", s)
	}
	if steps < 7 {
		t.Fatalf("recovered in %d steps: too fast", steps)
	}
	// Without a configured rate, the observed rate bounds the new one.
	u := New(Limits{MaxConns: 4})
	if c := u.RateLimited(t0, 100, "x"); c.To.RatePerMinute != 50 {
		t.Fatalf("observed-rate cut: %+v", c)
	}
}
