package shaping

import (
	"math"
	"time"
)

// SetLimits replaces the configured limits (a configuration reload). A
// throttle at its old limits moves to the new ones; one that adapted
// below them keeps its adapted values, capped by the new limits, and keeps
// recovering toward them. A pause in progress runs on.
func (t *Throttle) SetLimits(l Limits) {
	if l.MaxConns < 1 {
		l.MaxConns = 1
	}
	if l.Cooldown <= 0 {
		l.Cooldown = time.Minute
	}
	if l.RaiseEvery <= 0 {
		l.RaiseEvery = 20
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	throttled := t.throttledLocked()
	t.lim = l
	if !throttled {
		t.conns, t.rate = float64(l.MaxConns), l.RatePerMinute
		t.tokens = math.Min(t.tokens, burst(t.rate))
		return
	}
	t.conns = math.Min(t.conns, float64(l.MaxConns))
	if l.RatePerMinute > 0 && (t.rate <= 0 || t.rate > l.RatePerMinute) {
		t.rate = l.RatePerMinute
	}
}
