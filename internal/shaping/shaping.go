// Package shaping paces delivery to one destination: how many connections
// may be open, how many messages per minute may be sent (a token bucket),
// and how both adapt to what the destination says. A rate_limited reply
// (421, 4.7.28, "too many connections", ...) halves concurrency and rate,
// never below one, and pauses new sends for a cool-down; a run of
// successes raises them again by small steps toward the configured limits
// (additive increase, multiplicative decrease). Each change is reported so
// the caller can log a throttle_changed event with the reply that caused it.
//
// A Throttle is safe for concurrent use. It holds no timers: callers ask
// Take and wait as told.
package shaping

import (
	"fmt"
	"math"
	"sync"
	"time"
)

// Limits are a destination's configured ceilings. Zero RatePerMinute means
// no rate limit.
type Limits struct {
	MaxConns       int
	MaxMsgsPerConn int
	MaxRcptsPerTx  int // recipients per transaction (0: no limit)
	RatePerMinute  float64
	Cooldown       time.Duration // pause after a rate_limited reply (default 1m)
	RaiseEvery     int           // successes per step up (default 20)
}

// State is a snapshot of a throttle, for listings and events.
type State struct {
	MaxConns      int       `json:"max_connections"`
	Conns         int       `json:"connections_allowed"`
	RatePerMinute float64   `json:"rate_per_minute"` // 0: unlimited
	PausedUntil   time.Time `json:"paused_until,omitzero"`
	Throttled     bool      `json:"throttled"`          // below its configured limits
	RateCap       float64   `json:"rate_cap,omitempty"` // set by an alert's throttle action (SetCap)
	// Reason is the reply behind the last cut or pause ("" before any).
	Reason string `json:"reason,omitempty"`
}

// Throttle is one destination's adaptive limits.
type Throttle struct {
	mu        sync.Mutex
	lim       Limits
	conns     float64
	rate      float64 // per minute; 0: unlimited
	tokens    float64
	last      time.Time
	paused    time.Time
	successes int
	ceiling   float64 // the rate at which the destination last said "slow down"
	sinceCut  int     // successes since the last cut
	probes    int     // raises above the ceiling since the last cut
	pause     time.Duration
	capRate   float64 // per minute, 0: none (SetCap)
	reason    string  // the reply that caused the last cut or pause
}

// New returns a throttle at its configured limits.
func New(l Limits) *Throttle {
	if l.MaxConns < 1 {
		l.MaxConns = 1
	}
	if l.Cooldown <= 0 {
		l.Cooldown = time.Minute
	}
	if l.RaiseEvery <= 0 {
		l.RaiseEvery = 20
	}
	return &Throttle{lim: l, conns: float64(l.MaxConns), rate: l.RatePerMinute, tokens: burst(l.RatePerMinute)}
}

// burst is how many messages may go at once from a full bucket: a few
// seconds' worth, at least one.
func burst(perMin float64) float64 { return math.Max(1, perMin/20) }

// Limits returns the configured limits.
func (t *Throttle) Limits() Limits {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lim
}

// Conns is how many connections may be open now.
func (t *Throttle) Conns() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return int(t.conns)
}

// Take asks to send one message at now. It returns 0 when the message may
// go, or how long to wait first (paused, or the bucket is empty).
func (t *Throttle) Take(now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	if now.Before(t.paused) {
		return t.paused.Sub(now)
	}
	rate := t.effectiveLocked()
	if rate <= 0 {
		return 0
	}
	if !t.last.IsZero() {
		t.tokens = math.Min(burst(rate), t.tokens+now.Sub(t.last).Minutes()*rate)
	}
	t.last = now
	if t.tokens >= 1-1e-9 {
		t.tokens = math.Max(0, t.tokens-1)
		return 0
	}
	// Never 0 here: 0 means "go".
	return max(time.Millisecond, time.Duration((1-t.tokens)/rate*float64(time.Minute)))
}

// Wait is what Take would answer at now, without taking anything: 0 when a
// message may go, or how long it must wait (paused, or the bucket is
// empty). For inspection ("why is this not sent yet?").
func (t *Throttle) Wait(now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	if now.Before(t.paused) {
		return t.paused.Sub(now)
	}
	rate := t.effectiveLocked()
	if rate <= 0 {
		return 0
	}
	tokens := t.tokens
	if !t.last.IsZero() {
		tokens = math.Min(burst(rate), tokens+now.Sub(t.last).Minutes()*rate)
	}
	if tokens >= 1-1e-9 {
		return 0
	}
	return max(time.Millisecond, time.Duration((1-tokens)/rate*float64(time.Minute)))
}

// Change describes an adaptation, for the throttle_changed event.
type Change struct {
	From, To State
	Reason   string
}

func (c Change) String() string {
	return fmt.Sprintf("connections %d -> %d, rate %s -> %s (%s)", c.From.Conns, c.To.Conns, rateText(c.From.RatePerMinute),
		rateText(c.To.RatePerMinute), c.Reason)
}

func rateText(r float64) string {
	if r <= 0 {
		return "unlimited"
	}
	return fmt.Sprintf("%.0f/min", r)
}

// RateLimited records a rate_limited reply at now and returns the change.
// msgsLastMinute is how many messages the destination accepted in the
// last minute: it bounds the new rate, so a destination with no
// configured rate still gets one, and it is remembered as the ceiling the
// recovery climbs back to. A second rate_limited reply with no success
// since the last cut does not cut again (it is the same congestion,
// usually a window still full): it doubles the pause instead.
func (t *Throttle) RateLimited(now time.Time, msgsLastMinute int, reason string) Change {
	t.mu.Lock()
	defer t.mu.Unlock()
	from := t.stateLocked()
	t.reason = reason
	if t.sinceCut == 0 && !t.paused.IsZero() {
		t.pause = min(2*t.pause, 4*t.lim.Cooldown)
		t.paused = now.Add(t.pause)
		return Change{From: from, To: t.stateLocked(), Reason: reason + " (again: longer pause)"}
	}
	t.successes, t.sinceCut, t.probes = 0, 0, 0
	t.conns = math.Max(1, math.Floor(t.conns/2))
	base := t.rate
	if base <= 0 || (msgsLastMinute > 0 && float64(msgsLastMinute) < base) {
		base = float64(msgsLastMinute)
	}
	if msgsLastMinute > 0 {
		t.ceiling = float64(msgsLastMinute)
	} else if base > 0 {
		t.ceiling = base
	}
	if base > 0 {
		t.rate = math.Max(1, base/2)
		t.tokens = 0
		t.last = now
	}
	t.pause = t.lim.Cooldown
	t.paused = now.Add(t.pause)
	return Change{From: from, To: t.stateLocked(), Reason: reason}
}

// Success records a delivered message; every RaiseEvery successes the
// limits grow by one connection and a tenth of the configured rate. It
// returns a change when they grew.
func (t *Throttle) Success(now time.Time) (Change, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sinceCut++
	if !t.throttledLocked() {
		return Change{}, false
	}
	t.successes++
	if t.successes < t.lim.RaiseEvery {
		return Change{}, false
	}
	t.successes = 0
	from := t.stateLocked()
	t.conns = math.Min(float64(t.lim.MaxConns), t.conns+1)
	if t.rate > 0 {
		// Climb quickly back to 90% of the rate that last drew a "slow
		// down", then creep: most of the time is spent just under the
		// destination's real limit instead of sawing between half and all
		// of it. Above the old ceiling the probe continues, slowly.
		ref := t.ceiling
		if ref <= 0 {
			ref = math.Max(t.lim.RatePerMinute, t.rate)
		}
		switch {
		case t.rate < 0.9*ref:
			t.rate = math.Min(0.9*ref, math.Max(t.rate*2, t.rate+1)) // slow start
		case t.rate < ref:
			t.rate += math.Max(1, ref/100) // close to the ceiling: 1% steps
		default:
			// Probing above it: 0.5% steps that grow the longer no
			// "slow down" comes, so a stale ceiling is left behind fast.
			t.probes++
			t.rate += math.Max(1, t.rate/200*(1+float64(t.probes)/4))
		}
		if t.rate > t.ceiling {
			t.ceiling = t.rate
		}
		if t.lim.RatePerMinute > 0 && t.rate >= t.lim.RatePerMinute {
			t.rate = t.lim.RatePerMinute
		}
		if t.lim.RatePerMinute <= 0 && t.conns >= float64(t.lim.MaxConns) && t.rate > 1e6 {
			t.rate = 0
		}
	}
	return Change{From: from, To: t.stateLocked(), Reason: "recovering after successful deliveries"}, true
}

// State returns a snapshot.
func (t *Throttle) State() State {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.stateLocked()
}

func (t *Throttle) stateLocked() State {
	return State{MaxConns: t.lim.MaxConns, Conns: int(t.conns), RatePerMinute: t.effectiveLocked(), PausedUntil: t.paused,
		Throttled: t.throttledLocked(), RateCap: t.capRate, Reason: t.reason}
}

// SetCap caps the rate at perMinute on top of the adaptive limits, until
// SetCap(0). The adaptive rate goes on adapting underneath.
func (t *Throttle) SetCap(perMinute float64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.capRate = math.Max(0, perMinute)
	if t.capRate > 0 {
		t.tokens = math.Min(t.tokens, burst(t.capRate))
	}
}

// effectiveLocked is the rate Take enforces: the adaptive rate under the
// cap (0: unlimited).
func (t *Throttle) effectiveLocked() float64 {
	if t.capRate > 0 && (t.rate <= 0 || t.capRate < t.rate) {
		return t.capRate
	}
	return t.rate
}

func (t *Throttle) throttledLocked() bool {
	return int(t.conns) < t.lim.MaxConns || (t.rate > 0 && (t.lim.RatePerMinute <= 0 || t.rate < t.lim.RatePerMinute))
}

// PausedUntil is when new sends may start again (zero when not paused).
func (t *Throttle) PausedUntil() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.paused
}
