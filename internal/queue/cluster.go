package queue

import (
	"context"
	"time"

	"github.com/posthorn/posthorn/internal/store"
)

// Cluster is a store shared by several posthorn nodes (the PostgreSQL
// store's postgres.Cluster). With Config.Cluster set, the scheduler holds
// only the deliveries this node owns: the ones it accepted, and the ones
// its claimer takes from the unowned pool (a dead node's, or work a
// restart released). It loads nothing at start, rescues only its own
// stuck deliveries, opens a connection only with a slot of the
// destination's cluster-wide budget, and shares and applies throttle
// cuts. Without a Cluster (the embedded SQLite store) none of this runs
// and nothing changes.
type Cluster interface {
	Join(ctx context.Context) error
	Leave(ctx context.Context) error
	// Claim takes up to n unowned deliveries due at now.
	Claim(ctx context.Context, now time.Time, n int) ([]store.Delivery, error)
	// NextDue is when the earliest unowned delivery is due.
	NextDue(ctx context.Context) (time.Time, bool, error)
	// Wake is signalled when unowned work may be waiting.
	Wake() <-chan struct{}
	// OwnStuck lists this node's deliveries in sending whose lease ended.
	OwnStuck(ctx context.Context, now time.Time) ([]int64, error)
	// AcquireSlot takes one of the cluster's n connections to dest.
	AcquireSlot(ctx context.Context, dest string, n int) (release func(), ok bool, err error)
	// Contended reports whether another node found every slot of dest
	// taken within the last within.
	Contended(ctx context.Context, dest string, within time.Duration) (bool, error)
	PublishThrottle(ctx context.Context, t store.SharedThrottle) error
	Throttles(ctx context.Context, since time.Time) ([]store.SharedThrottle, error)
}

// Cluster timing.
const (
	claimBatch     = 200                    // deliveries per claim
	claimPoll      = 5 * time.Second        // fallback when no NOTIFY comes
	slotRetry      = 250 * time.Millisecond // a destination whose cluster budget is used up asks again after this
	throttlePoll   = time.Second            // how often other nodes' cuts are read
	throttleMargin = 5 * time.Second        // re-read window (commits land out of order)
	clusterIdle    = 100 * time.Millisecond // an idle connection's wait for more work
	slotHold       = 2 * time.Second        // a connection gives its slot up after this if another node waits, so that every node gets its turn
)

// yieldSlot reports whether a worker holding its slot since *held
// should give it up now: in a cluster, after slotHold, when another node
// has been waiting for one of the destination's few connections (this
// node then asks again only after slotRetry, giving it the time to).
// Uncontended, the worker keeps its slot and asks again slotHold later.
func (s *Scheduler) yieldSlot(d *dest, held *time.Time) bool {
	if s.cfg.Cluster == nil || s.now().Sub(*held) < slotHold {
		return false
	}
	*held = s.now()
	waiting, err := s.cfg.Cluster.Contended(s.ctx, d.key, slotHold+slotRetry)
	if err != nil {
		s.log.Warn("connection slot waiters", "dest", d.key, "err", err)
		waiting = true // the fair choice when unsure
	}
	if !waiting {
		return false
	}
	s.mu.Lock()
	d.slotWait = s.now().Add(slotRetry)
	s.mu.Unlock()
	return true
}

// idleTimeout is how long an idle connection waits for more work. In a
// cluster its slot is one of the destination's few cluster-wide
// connections, which another node may have work for: it is given up
// soon.
func (s *Scheduler) idleTimeout() time.Duration {
	if s.cfg.Cluster != nil {
		return min(s.cfg.IdleTimeout, clusterIdle)
	}
	return s.cfg.IdleTimeout
}

// clusterStart joins the cluster and starts the claimer and the
// throttle reader instead of loading every pending delivery.
func (s *Scheduler) clusterStart(ctx context.Context) error {
	if err := s.cfg.Cluster.Join(ctx); err != nil {
		return err
	}
	s.log.Info("scheduler started in cluster mode")
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return nil
	}
	s.wg.Add(4)
	go s.timerLoop()
	go s.rescueLoop()
	go s.claimLoop()
	go s.throttleLoop()
	return nil
}

// claimBacklog is how much ready work this node holds before it stops
// claiming more, leaving the rest to idle nodes.
func (s *Scheduler) claimBacklog() int { return max(claimBatch, 4*s.cfg.MaxConnections) }

// claimLoop takes unowned due work while this node has room for it, then
// waits for a NOTIFY, the next unowned delivery's due time, or the
// fallback poll.
func (s *Scheduler) claimLoop() {
	defer s.wg.Done()
	cl := s.cfg.Cluster
	for {
		wait := claimPoll
		if s.Stats().Ready < s.claimBacklog() && !s.draining() {
			ds, err := cl.Claim(s.ctx, s.now(), claimBatch)
			if err != nil && s.ctx.Err() == nil {
				s.log.Error("claim deliveries", "err", err)
			}
			if len(ds) > 0 {
				s.Enqueue(ds)
			}
			if len(ds) == claimBatch {
				continue // more may be waiting
			}
			if next, ok, err := cl.NextDue(s.ctx); err == nil && ok {
				wait = min(wait, max(10*time.Millisecond, next.Sub(s.now())))
			}
		} else {
			wait = 200 * time.Millisecond // busy: look again when some work is done
		}
		t := time.NewTimer(wait)
		select {
		case <-s.ctx.Done():
			t.Stop()
			return
		case <-cl.Wake():
		case <-t.C:
		}
		t.Stop()
	}
}

// clusterRescue returns this node's own deliveries stuck in sending (a
// failed outcome write, or a previous run's attempts) to the queue; a
// dead node's are the cluster's to return (postgres.Cluster reaps them).
func (s *Scheduler) clusterRescue(ctx context.Context) (int, error) {
	now := s.now()
	stuck, err := s.cfg.Cluster.OwnStuck(ctx, now)
	if err != nil {
		return 0, err
	}
	var ids []int64
	s.mu.Lock()
	for _, id := range stuck {
		if !s.leased[id] {
			ids = append(ids, id)
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

// takeSlot asks the cluster for a connection to d; false when the
// destination's cluster-wide budget is used up (d is kicked again
// shortly). The slot is released by the returned func.
func (s *Scheduler) takeSlot(d *dest) (func(), bool) {
	cl := s.cfg.Cluster
	if cl == nil {
		return func() {}, true
	}
	rel, ok, err := cl.AcquireSlot(s.ctx, baseDest(d.key), d.th.Conns())
	if err != nil && s.ctx.Err() == nil {
		s.log.Error("take a connection slot", "dest", d.key, "err", err)
	}
	if ok {
		// A kick after a wait for slots starts one worker: let it start
		// the next, until the slots or the work run out.
		s.mu.Lock()
		s.kick(d)
		s.mu.Unlock()
		return rel, true
	}
	s.mu.Lock()
	d.slotWait = s.now().Add(slotRetry)
	s.mu.Unlock()
	return nil, false
}

// publishCut tells the other nodes about a cut this node made.
func (s *Scheduler) publishCut(d *dest, reason string) {
	if s.cfg.Cluster == nil {
		return
	}
	st := d.th.State()
	err := s.cfg.Cluster.PublishThrottle(context.Background(), store.SharedThrottle{Destination: baseDest(d.key), Conns: st.Conns,
		RatePerMinute: st.RatePerMinute, PausedUntil: st.PausedUntil, Reason: reason})
	if err != nil {
		s.log.Error("share throttle", "dest", d.key, "err", err)
	}
}

// throttleLoop applies the cuts other nodes made to this node's
// destinations, each once (and remembers them for destinations it has no
// state for yet: newDest takes their pause).
func (s *Scheduler) throttleLoop() {
	defer s.wg.Done()
	t := time.NewTicker(throttlePoll)
	defer t.Stop()
	var since time.Time
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		cuts, err := s.cfg.Cluster.Throttles(s.ctx, since.Add(-throttleMargin))
		if err != nil {
			if s.ctx.Err() == nil {
				s.log.Error("read shared throttles", "err", err)
			}
			continue
		}
		for _, c := range cuts {
			if c.UpdatedAt.After(since) {
				since = c.UpdatedAt
			}
			s.adoptCut(c)
		}
	}
}

// adoptCut applies one shared cut to this node's state for its destination.
func (s *Scheduler) adoptCut(c store.SharedThrottle) {
	now := s.now()
	s.mu.Lock()
	if prev, ok := s.sharedCuts[c.Destination]; ok && !c.UpdatedAt.After(prev.UpdatedAt) {
		s.mu.Unlock()
		return // read again in the re-read window: applied already
	}
	s.sharedCuts[c.Destination] = c
	var ds []*dest
	for _, d := range s.dests {
		if baseDest(d.key) == c.Destination {
			ds = append(ds, d)
		}
	}
	s.mu.Unlock()
	for _, d := range ds {
		s.applyCut(d, c, now)
	}
}

// applyCut applies another node's cut to d as if this node had seen the
// reply itself: connections halved, the rate cut from this node's own
// recent rate (another node's rate says little about this one's), paused
// for the cool-down (longer when already paused with no success since).
// It is logged as this node's throttle_changed event.
func (s *Scheduler) applyCut(d *dest, c store.SharedThrottle, now time.Time) {
	reason := c.Reason + " (seen by node " + c.Node + ")"
	s.mu.Lock()
	recent := d.rateEstimate(now)
	s.mu.Unlock()
	ch := d.th.RateLimited(now, recent, reason)
	s.log.Warn("throttle changed by another node", "dest", d.key, "node", c.Node, "change", ch.String())
	ev := store.Event{At: now, Type: store.EventThrottle, MX: d.key, Detail: d.key + ": " + ch.String()}
	if err := s.st.RecordEvent(context.Background(), ev); err != nil {
		s.log.Error("record throttle event", "err", err)
	}
}
