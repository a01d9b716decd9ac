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
	// A second 421 with no success in between only lengthens the pause.
	if c := th.RateLimited(t0, 0, "again"); c.To.Conns != 4 || !c.To.PausedUntil.After(c.From.PausedUntil) {
		t.Fatalf("repeat without success: %+v", c)
	}
	for i := 0; i < 6; i++ {
		th.Success(t0)
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

// TestConvergence simulates a provider that accepts at most n messages per
// sliding minute and answers 421 above that, fed as fast as the throttle
// allows. After convergence, fewer than 5% of attempts must be deferred
// and throughput must be at least 80% of n.
func TestConvergence(t *testing.T) {
	const n = 600
	th := New(Limits{MaxConns: 10, Cooldown: 10 * time.Second})
	var accepted, sent []time.Time // provider's window, our sends
	countSince := func(ts []time.Time, from time.Time) int {
		c := 0
		for _, x := range ts {
			if !x.Before(from) {
				c++
			}
		}
		return c
	}
	var ok, deferred int
	end := t0.Add(40 * time.Minute)
	measureFrom := t0.Add(20 * time.Minute)
	for now := t0; now.Before(end); now = now.Add(10 * time.Millisecond) {
		for th.Take(now) == 0 {
			if countSince(accepted, now.Add(-time.Minute)) < n {
				accepted = append(accepted, now)
				sent = append(sent, now)
				th.Success(now)
				if !now.Before(measureFrom) {
					ok++
				}
			} else {
				th.RateLimited(now, countSince(sent, now.Add(-time.Minute)), "421 4.7.28")
				if !now.Before(measureFrom) {
					deferred++
				}
				break
			}
		}
		if len(accepted) > 4*n {
			accepted = accepted[len(accepted)-2*n:]
		}
		if len(sent) > 4*n {
			sent = sent[len(sent)-2*n:]
		}
	}
	minutes := end.Sub(measureFrom).Minutes()
	rate := float64(ok) / minutes
	share := float64(deferred) / float64(ok+deferred)
	t.Logf("after convergence: %.0f/min of %d (%.0f%%), %.1f%% of attempts deferred", rate, n, 100*rate/n, 100*share)
	if share >= 0.05 || rate < 0.8*n {
		t.Fatalf("did not settle under the limit: %.0f/min (%.0f%% of %d), %.1f%% deferred", rate, 100*rate/n, n, 100*share)
	}
}
