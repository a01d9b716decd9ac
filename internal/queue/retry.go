package queue

import (
	"math/rand/v2"
	"time"

	"github.com/posthorn/posthorn/internal/classify"
	"github.com/posthorn/posthorn/internal/store"
)

// backoff is the wait before attempt n+1 after n failed attempts:
// RetryMin doubling up to RetryMax, with ±20% jitter so deliveries that
// failed together do not retry together.
func (s *Scheduler) backoff(n int) time.Duration {
	d := s.cfg.RetryMin
	for i := 1; i < n && d < s.cfg.RetryMax; i++ {
		d *= 2
	}
	d = min(d, s.cfg.RetryMax)
	jitter := 0.8 + 0.4*rand.Float64()
	return time.Duration(float64(d) * jitter)
}

// decide maps one attempt's class to the delivery's next state. A
// rate_limited delivery retries when its destination's pause ends (paceAt)
// instead of on its own backoff.
func (s *Scheduler) decide(r Rcpt, cls classify.Class, permanent bool, now, paceAt time.Time) (store.State, time.Time, string) {
	switch {
	case cls == classify.Delivered:
		return store.Delivered, time.Time{}, store.EventDelivered
	case permanent || cls.Permanent():
		return store.Bounced, time.Time{}, store.EventBounced
	case !now.Before(r.ExpiresAt):
		if cls.RecipientSide() {
			return store.SoftBounced, time.Time{}, store.EventSoftBounce
		}
		return store.DeadLetter, time.Time{}, store.EventDeadLetter
	}
	next := now.Add(s.backoff(r.Attempts + 1))
	if cls == classify.RateLimited {
		next = now.Add(time.Second)
		if paceAt.After(next) {
			next = paceAt
		}
	}
	if next.After(r.ExpiresAt) {
		next = r.ExpiresAt // one last try when the lifetime ends
	}
	return store.Deferred, next, store.EventDeferred
}
