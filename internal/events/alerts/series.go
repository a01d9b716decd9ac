package alerts

import (
	"context"
	"strings"
	"time"

	"github.com/posthorn/posthorn/internal/store"
)

// bucket counts one second's results.
type bucket struct {
	sec             int64
	total, deferred int
}

// series is a run of per-second buckets, oldest first.
type series struct{ b []bucket }

func (s *series) add(at time.Time, deferred bool) {
	sec := at.Unix()
	n := len(s.b)
	if n == 0 || s.b[n-1].sec < sec {
		s.b = append(s.b, bucket{sec: sec})
		n++
	}
	// Events arrive nearly in time order; a late one joins the newest
	// bucket that is not after it.
	i := n - 1
	for i > 0 && s.b[i].sec > sec {
		i--
	}
	s.b[i].total++
	if deferred {
		s.b[i].deferred++
	}
}

// trim drops buckets before since.
func (s *series) trim(since time.Time) {
	cut := 0
	for cut < len(s.b) && s.b[cut].sec < since.Unix() {
		cut++
	}
	s.b = s.b[cut:]
}

func (s *series) count(since time.Time) (total, deferred int) {
	for i := len(s.b) - 1; i >= 0 && s.b[i].sec >= since.Unix(); i-- {
		total += s.b[i].total
		deferred += s.b[i].deferred
	}
	return total, deferred
}

// outcomeTypes are the events that end an attempt.
var outcomeTypes = map[string]bool{store.EventDeferred: true, store.EventDelivered: true, store.EventBounced: true,
	store.EventSoftBounce: true, store.EventDeadLetter: true}

// readEvents adds the events written since the last call to the series.
// Caller holds s.mu.
func (s *Service) readEvents(ctx context.Context, now time.Time) error {
	oldest := now.Add(-s.span)
	for {
		evs, err := s.st.Events(ctx, store.EventFilter{AfterID: s.cursor, Limit: 5000})
		if err != nil {
			return err
		}
		for _, e := range evs {
			s.cursor = e.ID
			if e.At.Before(oldest) {
				continue
			}
			if e.Type == store.EventDeadLetter {
				s.dead.add(e.At, false)
			}
			if !outcomeTypes[e.Type] || e.Attempt == 0 {
				continue
			}
			dest := domainOf(e.Recipient)
			if s.cfg.Destination != nil {
				dest = s.cfg.Destination(dest)
			}
			ser := s.dests[dest]
			if ser == nil {
				ser = &series{}
				s.dests[dest] = ser
			}
			ser.add(e.At, e.Type == store.EventDeferred)
		}
		if len(evs) < 5000 {
			break
		}
	}
	s.dead.trim(oldest)
	for dest, ser := range s.dests {
		ser.trim(oldest)
		if len(ser.b) == 0 {
			delete(s.dests, dest)
		}
	}
	return nil
}

func domainOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return strings.ToLower(addr[i+1:])
	}
	return strings.ToLower(addr)
}
