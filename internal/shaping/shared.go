package shaping

import (
	"math"
	"time"
)

// Adopt applies a cut another node of a cluster made at the same
// destination (it saw the rate_limited reply): connections and rate no
// higher than theirs, and paused at least until theirs ends. It only ever
// lowers limits or extends the pause; recovery stays each node's own
// (Success). It reports whether anything changed.
func (t *Throttle) Adopt(conns int, ratePerMinute float64, pausedUntil time.Time, reason string, now time.Time) (Change, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	from := t.stateLocked()
	changed := false
	if c := float64(max(1, conns)); c < t.conns {
		t.conns, changed = c, true
	}
	if ratePerMinute > 0 && (t.rate <= 0 || ratePerMinute < t.rate) {
		t.rate, changed = math.Max(1, ratePerMinute), true
		t.tokens = math.Min(t.tokens, burst(t.rate))
		if t.ceiling <= 0 || t.ceiling > 2*t.rate {
			t.ceiling = 2 * t.rate
		}
	}
	if pausedUntil.After(t.paused) && pausedUntil.After(now) {
		t.paused, changed = pausedUntil, true
		t.pause = max(t.pause, pausedUntil.Sub(now))
	}
	if !changed {
		return Change{}, false
	}
	t.successes, t.sinceCut, t.probes = 0, 0, 0
	t.reason = reason
	return Change{From: from, To: t.stateLocked(), Reason: reason}, true
}
