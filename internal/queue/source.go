package queue

import (
	"context"
	"strings"
	"time"

	"github.com/posthorn/posthorn/internal/classify"
	"github.com/posthorn/posthorn/internal/delivery"
	"github.com/posthorn/posthorn/internal/store"
)

// SourceQuery is what Config.Source chooses a source address from: the
// job's lane, tenant, envelope sender and destination, and how many
// messages it holds.
type SourceQuery struct {
	Lane     store.Lane
	TenantID string
	Sender   string
	Dest     string
	N        int
	Now      time.Time
}

// sourceSep joins a destination and a source address into the key of a
// destination as seen from that address: limits and the adaptive
// throttle are kept per destination AND source IP, so a 421 against one
// address slows that address only.
const sourceSep = "|"

// destKey is the destination j goes to and the source it leaves from.
// With Config.Source set and every source at its warm-up cap, wait is
// when to try again (the job waits in the timer heap until then).
func (s *Scheduler) destKey(j *Job, now time.Time) (key string, src delivery.Source, wait time.Time) {
	key = s.dl.Destination(j.Domain)
	if s.cfg.Source == nil {
		return key, src, time.Time{}
	}
	src, wait, ok := s.cfg.Source(SourceQuery{Lane: j.Lane, TenantID: j.TenantID, Sender: j.Sender, Dest: key, N: len(j.Rcpts), Now: now})
	if !ok {
		return "", src, wait
	}
	if src.IP.IsValid() {
		key += sourceSep + src.IP.String()
	}
	return key, src, time.Time{}
}

// baseDest is a destination key without its source address.
func baseDest(key string) string {
	base, _, _ := strings.Cut(key, sourceSep)
	return base
}

// sourceOf is the source address of the destination j was taken from.
func sourceOf(j *Job) string {
	if j.dest == nil || !j.dest.src.IP.IsValid() {
		return ""
	}
	return j.dest.src.IP.String()
}

// fillSenders sets the envelope sender of deliveries that lack it (the
// store's pending rows do not carry it), when a source pool may select
// by sending domain: from the body cache, else the store, once per
// message. Called without s.mu held.
func (s *Scheduler) fillSenders(ds []store.Delivery) {
	if s.cfg.Source == nil {
		return
	}
	known := map[string]string{}
	for i := range ds {
		d := &ds[i]
		if d.Sender != "" {
			continue
		}
		sender, ok := known[d.MessageID]
		if !ok {
			if m := s.Bodies.Get(d.MessageID); m != nil {
				sender = m.Sender
			} else if m, err := s.st.GetMessage(context.Background(), "", d.MessageID, false); err == nil {
				sender = m.Sender
			}
			known[d.MessageID] = sender
		}
		d.Sender = sender
	}
}

// waitForSource puts j back in the timer heap until wait (every source
// address of its pool is at its warm-up cap for the destination), or, when
// its recipients' lifetime ends first, until then; once it has ended, j is
// given up without an attempt. Caller holds s.mu.
func (s *Scheduler) waitForSource(j *Job, wait, now time.Time) {
	var last time.Time
	for _, r := range j.Rcpts {
		if r.ExpiresAt.IsZero() {
			last = time.Time{}
			break
		}
		if r.ExpiresAt.After(last) {
			last = r.ExpiresAt
		}
	}
	if !last.IsZero() && !now.Before(last) {
		s.giveUpWaiting(j, now)
		return
	}
	if !last.IsZero() && last.Before(wait) {
		wait = last
	}
	j.Due = wait
	s.schedule(j, now)
}

// giveUpWaiting records j's recipients as dead letters: their lifetime
// ended while every source address was at its warm-up cap. Caller holds
// s.mu; the store is written in the background.
func (s *Scheduler) giveUpWaiting(j *Job, now time.Time) {
	j.where = inFlight
	if s.stopped {
		return // still pending in the store: the next start decides
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if !s.lease(j) {
			return
		}
		outs := make([]store.Outcome, len(j.Rcpts))
		for i, r := range j.Rcpts {
			outs[i] = store.Outcome{DeliveryID: r.ID, State: store.DeadLetter, Class: string(classify.RateLimited), Phase: "queue",
				Error:    "not attempted: every source address of its pool was at its warm-up cap for this destination until the queue lifetime ended",
				Provider: s.dl.Provider(j.Domain), StartedAt: now, Event: store.EventDeadLetter}
		}
		s.finish(j, outs)
	}()
}
