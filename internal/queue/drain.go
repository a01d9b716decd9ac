package queue

import (
	"context"
	"time"
)

// Drain is the first half of a graceful shutdown: no connection worker
// starts any more and workers take no further job, while the jobs they
// hold run to their end and their outcomes are recorded. It returns when
// no worker is left, or with ctx's error when ctx ends first; Stop then
// cancels what is still in progress (recorded as interrupted, deferred).
// Deliveries that come due meanwhile stay pending in the store for the
// next start. Drain cannot be undone.
func (s *Scheduler) Drain(ctx context.Context) error {
	s.mu.Lock()
	if s.drainCh == nil {
		s.drainCh = make(chan struct{})
		close(s.drainCh) // wakes idle workers and those waiting for a token
	}
	s.mu.Unlock()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		s.mu.Lock()
		n := s.conns
		s.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// draining reports whether Drain was called. Caller holds s.mu.
func (s *Scheduler) draining() bool { return s.drainCh != nil }
