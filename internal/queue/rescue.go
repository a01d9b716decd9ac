package queue

import (
	"context"
	"time"

	"github.com/posthorn/posthorn/internal/store"
)

// rescueLoop returns deliveries stuck in sending to the queue: those
// whose outcome could not be recorded (the store failed) and that this
// scheduler no longer holds. Their lease ended when next_attempt_at
// (pushed out at lease time) passed. RecoverLeases does the same at
// start-up; this covers a long-running process.
func (s *Scheduler) rescueLoop() {
	defer s.wg.Done()
	t := time.NewTicker(max(s.cfg.RetryMin, time.Second))
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
			if n, err := s.rescue(s.ctx); err != nil {
				s.log.Error("rescue deliveries stuck in sending", "err", err)
			} else if n > 0 {
				s.log.Warn("returned deliveries stuck in sending to the queue", "count", n)
			}
		}
	}
}

// rescue returns the stuck deliveries it finds and enqueues them; it
// reports how many.
func (s *Scheduler) rescue(ctx context.Context) (int, error) {
	if s.cfg.Cluster != nil {
		return s.clusterRescue(ctx) // only this node's own (cluster.go)
	}
	now := s.now()
	ds, err := s.st.ListDeliveries(ctx, store.DeliveryFilter{States: []store.State{store.Sending}, Limit: 10000})
	if err != nil {
		return 0, err
	}
	var ids []int64
	s.mu.Lock()
	for _, d := range ds {
		// A delivery this scheduler is sending (or recording) is not stuck,
		// however long its attempt takes.
		if !s.leased[d.ID] && !d.NextAttemptAt.After(now) {
			ids = append(ids, d.ID)
		}
	}
	s.mu.Unlock()
	if len(ids) == 0 {
		return 0, nil
	}
	back, err := s.st.RescueLeases(ctx, ids, now)
	if err != nil {
		return 0, err
	}
	s.Enqueue(back)
	return len(back), nil
}
