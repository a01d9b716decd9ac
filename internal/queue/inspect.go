package queue

import (
	"time"

	"github.com/posthorn/posthorn/internal/shaping"
)

// This file is the scheduler's read-only side for operators and metrics:
// where one delivery stands and why it is not being sent this second
// (Inspect), and light per-destination figures (DestinationGauges). Both
// run under s.mu and change nothing; Inspect costs at most one pass over
// the destinations' ready lists of the deliveries asked about.

// Place says where the scheduler holds a delivery.
type Place string

const (
	PlaceUnknown Place = ""        // not held by the scheduler (held, final, or not loaded)
	PlaceWaiting Place = "waiting" // in the timer heap until Due
	PlaceReady   Place = "ready"   // due, in its destination's ready list
	PlaceSending Place = "sending" // taken by a connection worker
)

// Inspection is the scheduler's view of one delivery.
type Inspection struct {
	Place       Place     `json:"place,omitempty"`
	Due         time.Time `json:"due,omitzero"`
	Destination string    `json:"destination"`
	// The destination's throttle and connections (when it has state).
	Throttle    shaping.State `json:"throttle"`
	Manual      *ManualPause  `json:"manual_pause,omitempty"` // an operator's pause of the destination
	Connections int           `json:"connections"`            // open to this destination now
	Idle        int           `json:"idle"`                   // of them, waiting for work
	SentLastMin int           `json:"sent_last_minute"`
	// RateWait is how long the token bucket makes the next send wait (0:
	// a send may go now).
	RateWait time.Duration `json:"rate_wait_ns,omitempty"`
	// For a ready delivery: ready deliveries of higher lanes at its
	// destination, and ready deliveries ahead of it in its own lane.
	AheadHigher int `json:"ahead_higher_lanes"`
	AheadInLane int `json:"ahead_in_lane"`
	// All destinations together.
	TotalConnections int `json:"total_connections"`
	MaxConnections   int `json:"max_connections"`
}

// Inspect returns the scheduler's view of each delivery id (deliveries it
// does not hold get PlaceUnknown, with the destination's state when it has
// one for domains[id]). domains gives each delivery's recipient domain.
func (s *Scheduler) Inspect(domains map[int64]string) map[int64]Inspection {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	out := make(map[int64]Inspection, len(domains))
	for id, domain := range domains {
		in := Inspection{Destination: s.dl.Destination(domain), TotalConnections: s.conns, MaxConnections: s.cfg.MaxConnections}
		d := s.dests[in.Destination]
		if d != nil {
			in.Throttle = d.th.State()
			in.Connections, in.Idle, in.SentLastMin = d.active, d.idle, d.recentCount(now)
			in.RateWait = d.th.Wait(now)
		} else {
			in.Throttle = shaping.New(s.limits(in.Destination)).State()
		}
		if p, ok := s.manual[in.Destination]; ok && p.active(now) {
			in.Manual = &p
		}
		j := s.known[id]
		if j == nil {
			out[id] = in
			continue
		}
		in.Due = j.Due
		switch j.where {
		case inHeap:
			in.Place = PlaceWaiting
		case inFlight:
			in.Place = PlaceSending
		case inReady:
			in.Place = PlaceReady
			in.AheadHigher, in.AheadInLane = aheadOf(j.dest, j)
		}
		out[id] = in
	}
	return out
}

// aheadOf counts the ready deliveries d serves before j: those in higher
// lanes, and those before j in its own lane: its tenant's earlier jobs,
// and the jobs of the other tenants that the round-robin serves before j
// (one per turn; a tenant before j's in the ring order gets one turn
// more). Lower lanes' guaranteed share is left out. Caller holds s.mu.
func aheadOf(d *dest, j *Job) (higher, inLane int) {
	li := laneIndex(j.Lane)
	for l := 0; l < li; l++ {
		for _, f := range d.ready[l].byTenant {
			higher += f.count()
		}
	}
	q := &d.ready[li]
	pos := 0 // jobs of j's tenant before j
	if f := q.byTenant[j.TenantID]; f != nil {
		for _, x := range f.items[f.head:] {
			if x == j {
				break
			}
			if !x.removed {
				pos++
				inLane += len(x.Rcpts)
			}
		}
	}
	// Offsets in the ring from the tenant served next.
	offset := func(t string) int {
		for i, r := range q.ring {
			if r == t {
				return (i - q.next + len(q.ring)) % len(q.ring)
			}
		}
		return len(q.ring)
	}
	mine := offset(j.TenantID)
	for t, f := range q.byTenant {
		if t == j.TenantID {
			continue
		}
		turns := pos
		if offset(t) < mine {
			turns++
		}
		n := 0
		for _, x := range f.items[f.head:] {
			if n >= turns {
				break
			}
			if !x.removed {
				inLane += len(x.Rcpts)
				n++
			}
		}
	}
	return higher, inLane
}

// count is the number of deliveries (recipients) in f.
func (f *fifo) count() int {
	n := 0
	for _, x := range f.items[f.head:] {
		if !x.removed {
			n += len(x.Rcpts)
		}
	}
	return n
}

// limits is a destination's configured limits. Caller may hold s.mu.
func (s *Scheduler) limits(key string) shaping.Limits {
	if s.cfg.Limits != nil {
		return s.cfg.Limits(key)
	}
	return shaping.Limits{MaxConns: s.cfg.MaxConnsPerDest, MaxMsgsPerConn: s.cfg.MaxMsgsPerConn,
		RatePerMinute: s.cfg.RatePerMinute, Cooldown: s.cfg.Cooldown}
}

// Destination is the destination key (domain, provider:NAME or
// relay:HOST) that deliveries to domain are queued under.
func (s *Scheduler) Destination(domain string) string { return s.dl.Destination(domain) }

// DestinationGauge is one destination's live figures, for metrics.
type DestinationGauge struct {
	Key           string
	Connections   int
	Ready         int
	SentLastMin   int
	RatePerMinute float64 // allowed now; 0: unlimited
	Paused        bool
}

// DestinationGauges returns the figures of every destination the
// scheduler holds state for, without walking the timer heap (cheap with a
// million waiting deliveries).
func (s *Scheduler) DestinationGauges() []DestinationGauge {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	out := make([]DestinationGauge, 0, len(s.dests))
	for _, d := range s.dests {
		st := d.th.State()
		out = append(out, DestinationGauge{Key: d.key, Connections: d.active, Ready: d.nready, SentLastMin: d.recentCount(now),
			RatePerMinute: st.RatePerMinute, Paused: now.Before(st.PausedUntil)})
	}
	return out
}
