package queue

import (
	"container/heap"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/posthorn/posthorn/internal/classify"
	"github.com/posthorn/posthorn/internal/smtpproto"
	"github.com/posthorn/posthorn/internal/store"
)

// A job's last attempt is due when its lifetime ends (decide clamps the
// retry to the expiry). If its destination cannot take it then (paused
// after rate limits, or saturated), the job would wait in the ready list
// for as long as the destination stays unavailable, and each pause that
// ends lets one attempt through while the pause doubles. So every ready
// job has a deadline: its earliest recipient expiry (or the moment it
// became ready, if later) plus half of RetryMin. A job still waiting then
// is given up without another attempt, its last reply kept.

// expiryGrace is how long a ready job whose lifetime has ended may wait
// for its last attempt.
func (s *Scheduler) expiryGrace() time.Duration { return s.cfg.RetryMin / 2 }

// watch sets the deadline of j, which has just become ready. Caller holds
// s.mu.
func (s *Scheduler) watch(j *Job, now time.Time) {
	var first time.Time
	for _, r := range j.Rcpts {
		if !r.ExpiresAt.IsZero() && (first.IsZero() || r.ExpiresAt.Before(first)) {
			first = r.ExpiresAt
		}
	}
	if first.IsZero() {
		return
	}
	if now.After(first) {
		first = now
	}
	j.expireAt = first.Add(s.expiryGrace())
	heap.Push(&s.expiring, j)
	if j.eidx == 1 {
		// The timer loop only: waking the loader too sent it to the
		// store once for every message when the queue was short (a
		// fifth of the CPU at 10 SMTP sessions, bench/dkim).
		s.wakeTimer()
	}
}

// unwatch drops j's deadline as it leaves its ready list. Caller holds
// s.mu.
func (s *Scheduler) unwatch(j *Job) {
	if j.eidx > 0 {
		heap.Remove(&s.expiring, j.eidx-1)
	}
}

// expireReady gives up the recipients of ready job j whose lifetime has
// ended; the others stay ready with a new deadline. Caller holds s.mu.
func (s *Scheduler) expireReady(j *Job, now time.Time) {
	var expired, kept []Rcpt
	for _, r := range j.Rcpts {
		if !r.ExpiresAt.IsZero() && !now.Before(r.ExpiresAt) {
			expired = append(expired, r)
		} else {
			kept = append(kept, r)
		}
	}
	if len(kept) > 0 {
		j.Rcpts = kept
		s.watch(j, now)
	} else {
		j.removed = true
		j.dest.nready--
		j.where = nowhere
	}
	if len(expired) == 0 {
		return
	}
	ej := &Job{MessageID: j.MessageID, TenantID: j.TenantID, Domain: j.Domain, Lane: j.Lane, Rcpts: expired,
		Due: now, hidx: -1, where: inFlight, dest: j.dest}
	for _, r := range expired {
		s.known[r.ID] = ej
	}
	if s.stopped {
		return // the store still has them pending: the next start decides
	}
	pause := j.dest.pauseReply
	if !now.Before(j.dest.th.PausedUntil()) {
		pause = smtpproto.Reply{} // not paused: saturated
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.expire(ej, pause)
	}()
}

// expire moves j's recipients, not attempted since their lifetime ended,
// to their final state with store.Transition, which keeps their last
// reply: dead_letter, or soft_bounced when the recipient's side was the
// last to fail (mailbox full). Recipients never attempted at all (they
// arrived while the destination was paused) are given the reply that
// paused it, so the dead letter says why (like Postfix's "delivery
// temporarily suspended"); that is recorded as an attempt without a
// connection.
func (s *Scheduler) expire(j *Job, pause smtpproto.Reply) {
	now := s.now()
	if pause.Code != 0 {
		var fresh, rest []Rcpt
		for _, r := range j.Rcpts {
			if r.LastClass == "" {
				fresh = append(fresh, r)
			} else {
				rest = append(rest, r)
			}
		}
		if len(fresh) > 0 {
			s.expireUnattempted(j, fresh, pause, now)
			s.mu.Lock()
			j.Rcpts = rest
			s.mu.Unlock()
		}
	}
	groups := map[store.State][]Rcpt{}
	for _, r := range j.Rcpts {
		st := store.DeadLetter
		if classify.Class(r.LastClass).RecipientSide() {
			st = store.SoftBounced
		}
		groups[st] = append(groups[st], r)
	}
	var rcpts []Rcpt
	var outs []store.Outcome
	var retry []Rcpt
	for st, rs := range groups {
		ev, op := store.EventDeadLetter, store.OpExpire
		if st == store.SoftBounced {
			ev, op = store.EventSoftBounce, store.OpExpireSoft
		}
		ids := make([]int64, len(rs))
		for i, r := range rs {
			ids[i] = r.ID
		}
		ds, err := s.st.Transition(context.Background(), store.TransitionSpec{DeliveryIDs: ids,
			Op: op, To: st, Now: now,
			Detail: fmt.Sprintf("queue lifetime ended before another attempt could be made (destination %s unavailable); last reply kept", j.dest.key)})
		if err != nil {
			s.log.Error("expire deliveries", "message", j.MessageID, "err", err)
			retry = append(retry, rs...)
			continue
		}
		byID := map[int64]store.Delivery{}
		for _, d := range ds {
			byID[d.ID] = d
		}
		for _, r := range rs {
			d, ok := byID[r.ID]
			if !ok {
				continue // changed by an operator meanwhile
			}
			rcpts = append(rcpts, r)
			outs = append(outs, store.Outcome{DeliveryID: d.ID, State: st, Class: d.LastClass, Phase: d.LastPhase,
				Reply: d.LastReply, MX: d.LastMX, IP: d.LastIP, Provider: d.Provider, StartedAt: d.LastAttemptAt, Event: ev})
		}
	}
	s.logOutcomes(&Job{MessageID: j.MessageID, Rcpts: rcpts}, outs, false)
	s.reportFinal(&Job{MessageID: j.MessageID, TenantID: j.TenantID, Rcpts: rcpts}, outs)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range j.Rcpts {
		if s.known[r.ID] == j {
			delete(s.known, r.ID)
		}
	}
	retry = slices.DeleteFunc(retry, func(r Rcpt) bool { return j.dropped[r.ID] })
	if len(retry) > 0 {
		// Nothing changed in the store: try again a little later.
		again := &Job{MessageID: j.MessageID, TenantID: j.TenantID, Sender: j.Sender, Domain: j.Domain, Lane: j.Lane, Rcpts: retry,
			Due: now.Add(s.cfg.RetryMin), hidx: -1}
		for _, r := range retry {
			s.known[r.ID] = again
		}
		s.schedule(again, s.now())
	}
	j.where = nowhere
}

// expireUnattempted leases rs (taken over from j) and records them as
// dead letters with the reply that paused their destination.
func (s *Scheduler) expireUnattempted(j *Job, rs []Rcpt, pause smtpproto.Reply, now time.Time) {
	fj := &Job{MessageID: j.MessageID, TenantID: j.TenantID, Domain: j.Domain, Lane: j.Lane, Rcpts: rs,
		Due: now, hidx: -1, where: inFlight, dest: j.dest}
	s.mu.Lock()
	for _, r := range rs {
		if s.known[r.ID] == j {
			s.known[r.ID] = fj
		}
		if j.dropped[r.ID] {
			if fj.dropped == nil {
				fj.dropped = map[int64]bool{}
			}
			fj.dropped[r.ID] = true
		}
	}
	s.mu.Unlock()
	if !s.lease(fj) {
		return
	}
	outs := make([]store.Outcome, len(fj.Rcpts))
	for i, r := range fj.Rcpts {
		outs[i] = store.Outcome{DeliveryID: r.ID, State: store.DeadLetter, Class: string(classify.RateLimited), Phase: "queue",
			Reply: pause, Error: fmt.Sprintf("not attempted: destination %s was paused after this reply until the queue lifetime ended", j.dest.key),
			Provider: s.dl.Provider(j.Domain), StartedAt: now, Event: store.EventDeadLetter}
	}
	s.finish(fj, outs)
}
