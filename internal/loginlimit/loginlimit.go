// Package loginlimit slows password and key guessing: at most a number of
// failed (or in-flight) logins per key (a client address, an account)
// within a window. The HTTP API and the dashboard share it.
package loginlimit

import (
	"sync"
	"time"
)

// Limiter slows password and key guessing: at most max
// failed (or in-flight) logins per client address and per account email
// within window; more are answered 429 without checking. An attempt is
// reserved before the (slow) password check, so parallel guesses cannot
// all slip under the limit; a success gives its reservation back.
type Limiter struct {
	max    int
	window time.Duration
	now    func() time.Time

	mu sync.Mutex
	m  map[string]*loginCount
}

type loginCount struct {
	n     int
	since time.Time
}

// New returns a limiter allowing max attempts per key within window;
// now is the clock (nil: time.Now).
func New(max int, window time.Duration, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{max: max, window: window, now: now, m: map[string]*loginCount{}}
}

// Reserve counts one attempt for every key ("ip:..", "user:.."); ok is
// false when one of them is over the limit (nothing is counted then).
func (l *Limiter) Reserve(keys ...string) (undo func(), ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	for _, k := range keys {
		if c := l.m[k]; c != nil {
			if now.Sub(c.since) > l.window {
				delete(l.m, k)
			} else if c.n >= l.max {
				return nil, false
			}
		}
	}
	var cs []*loginCount
	for _, k := range keys {
		c := l.m[k]
		if c == nil {
			if len(l.m) >= 100000 {
				clear(l.m) // bounded memory under a spray of addresses
			}
			c = &loginCount{since: now}
			l.m[k] = c
		}
		c.n++
		cs = append(cs, c)
	}
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		for _, c := range cs {
			c.n--
		}
	}, true
}
