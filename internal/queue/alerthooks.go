package queue

import "github.com/posthorn/posthorn/internal/store"

// Hooks for alert actions (internal/events/alerts): a cap on one
// destination's rate, and lanes held back from delivery. Both live only in
// memory; the alert evaluator applies them again after a restart while
// its alert still fires.

// alertHooks is the scheduler's part of it, guarded by Scheduler.mu.
type alertHooks struct {
	caps      map[string]float64 // destination -> messages per minute
	heldLanes [3]bool
	parked    []*Job // due jobs of held lanes
}

// parked is where a due job of a held lane waits.
const parked place = 100

// CapRate caps dest's rate at fraction of its current rate (the adapted
// rate, else the rate observed in the last minute, else the configured
// rate, else 60 a minute) until ClearRateCap. It returns the rate before
// and the cap.
func (s *Scheduler) CapRate(dest string, fraction float64) (from, capped float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	d := s.dests[dest]
	if d == nil {
		d = s.newDest(dest)
	}
	if prev, ok := s.hooks.caps[dest]; ok {
		d.th.SetCap(0) // measured without the old cap
		defer func() {
			if capped <= 0 {
				capped = prev
			}
		}()
	}
	from = d.th.State().RatePerMinute
	if from <= 0 {
		from = float64(d.rateEstimate(now))
	}
	if from <= 0 {
		from = d.th.Limits().RatePerMinute
	}
	if from <= 0 {
		from = 60
	}
	capped = max(1, from*fraction)
	if s.hooks.caps == nil {
		s.hooks.caps = map[string]float64{}
	}
	s.hooks.caps[dest] = capped
	d.th.SetCap(capped)
	return from, capped
}

// ClearRateCap lifts CapRate's cap on dest.
func (s *Scheduler) ClearRateCap(dest string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.hooks.caps, dest)
	if d := s.dests[dest]; d != nil {
		d.th.SetCap(0)
		s.kick(d)
	}
}

// applyCap gives a new destination its cap. Caller holds s.mu.
func (s *Scheduler) applyCap(d *dest) {
	if c, ok := s.hooks.caps[d.key]; ok {
		d.th.SetCap(c)
	}
}

// HoldLane stops (hold) or resumes delivery of every job in lane: due
// jobs of a held lane are parked instead of made ready, and those ready
// now are taken back. Deliveries keep their stored state (queued,
// deferred); nothing in flight is interrupted.
func (s *Scheduler) HoldLane(lane store.Lane, hold bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	li := laneIndex(lane)
	if s.hooks.heldLanes[li] == hold {
		return
	}
	s.hooks.heldLanes[li] = hold
	if hold {
		for _, d := range s.dests {
			for j := d.ready[li].pop(); j != nil; j = d.ready[li].pop() {
				d.nready--
				s.unwatch(j) // no lifetime deadline while parked
				j.where, j.dest = parked, nil
				s.hooks.parked = append(s.hooks.parked, j)
			}
		}
		return
	}
	keep := s.hooks.parked[:0]
	var resume []*Job
	for _, j := range s.hooks.parked {
		switch {
		case j.where != parked: // removed meanwhile
		case laneIndex(j.Lane) == li:
			resume = append(resume, j)
		default:
			keep = append(keep, j)
		}
	}
	s.hooks.parked = keep
	for _, j := range resume {
		s.makeReady(j, s.now())
	}
}

// HeldLanes lists the lanes held now.
func (s *Scheduler) HeldLanes() []store.Lane {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []store.Lane
	for i, l := range []store.Lane{store.LaneHigh, store.LaneNormal, store.LaneLow} {
		if s.hooks.heldLanes[i] {
			out = append(out, l)
		}
	}
	return out
}

// park keeps a due job of a held lane back; it reports whether it did.
// Caller holds s.mu.
func (s *Scheduler) park(j *Job) bool {
	if !s.hooks.heldLanes[laneIndex(j.Lane)] {
		return false
	}
	j.where, j.dest = parked, nil
	s.hooks.parked = append(s.hooks.parked, j)
	return true
}
