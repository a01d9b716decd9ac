package queue

import (
	"sync/atomic"
	"time"

	"github.com/posthorn/posthorn/internal/classify"
)

// live holds the settings a configuration reload may change while workers
// run; each is read atomically, so a worker sees the old or the new value,
// never a mix. Unset values fall back to Config.
type live struct {
	classifier atomic.Pointer[classify.Classifier]
	onHold     atomic.Pointer[onHoldSettings]
}

type onHoldSettings struct {
	after          int
	window, holdAs time.Duration
}

// classifier is the reply classifier in force.
func (s *Scheduler) classifier() *classify.Classifier {
	if c := s.live.classifier.Load(); c != nil {
		return c
	}
	return s.cfg.Classifier
}

// onHoldSettings are the soft-bounce hold settings in force.
func (s *Scheduler) onHoldSettings() (int, time.Duration, time.Duration) {
	if h := s.live.onHold.Load(); h != nil {
		return h.after, h.window, h.holdAs
	}
	return s.cfg.OnHoldAfter, s.cfg.OnHoldWindow, s.cfg.OnHoldFor
}

// SetClassifier replaces the reply classifier (reloaded rules); attempts
// classified from now on use it.
func (s *Scheduler) SetClassifier(c *classify.Classifier) {
	if c != nil {
		s.live.classifier.Store(c)
	}
}

// SetOnHold replaces the soft-bounce hold settings (see Config.OnHoldAfter).
func (s *Scheduler) SetOnHold(after int, window, hold time.Duration) {
	s.live.onHold.Store(&onHoldSettings{after: after, window: window, holdAs: hold})
}

// ReloadLimits applies changed delivery limits: maxConns (all
// destinations together; 0 keeps it) and, through Config.Limits, each
// known destination's own. Destinations met later read Config.Limits when
// they are created, so the caller changes what that function returns
// first. Destinations allowed more connections get workers at once.
func (s *Scheduler) ReloadLimits(maxConns int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if maxConns > 0 {
		s.cfg.MaxConnections = maxConns
	}
	if s.cfg.Limits == nil {
		return
	}
	for key, d := range s.dests {
		d.th.SetLimits(s.cfg.Limits(key))
		s.kick(d)
	}
}
