package ops

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/posthorn/posthorn/internal/classify"
	"github.com/posthorn/posthorn/internal/queue"
	"github.com/posthorn/posthorn/internal/store"
)

// This file answers "why is it still queued?" (queue why, GET
// /v1/messages/{id}/why) and the queue's shape by destination and age
// (queue summary, like Postfix's qshape). Both only read: the store for
// each delivery's state, last reply and hold event, and the scheduler's
// Inspect for where it holds the delivery and its destination's throttle.

// Inspector is the scheduler's read-only view (queue.Scheduler).
type Inspector interface {
	Inspect(domains map[int64]string) map[int64]queue.Inspection
	Destination(domain string) string
}

// Why reasons, one per pending delivery: the first that applies.
const (
	WhyFinal           = "final"             // not pending: nothing will be sent
	WhyHeld            = "held"              // held by an operator
	WhyScheduled       = "scheduled"         // send_at in the future
	WhySending         = "sending"           // a connection is sending it now
	WhyBackoff         = "backoff"           // waiting for its next attempt after a temporary failure
	WhyPaused          = "paused"            // its destination is paused after a rate-limit reply
	WhyRateLimit       = "rate_limit"        // the destination's messages-per-minute limit is reached
	WhyConnectionLimit = "connection_limit"  // the destination's (or all) connections are in use
	WhyBehindHigher    = "behind_high_lanes" // higher-priority deliveries to its destination go first
	WhyBehindInLane    = "behind_in_lane"    // earlier deliveries in its lane go first
	WhyReady           = "ready"             // due: the next free connection takes it
	WhyWaiting         = "waiting"           // pending, not (yet) in the scheduler: due at next_attempt_at
)

// WhyResponse explains each delivery of one message.
type WhyResponse struct {
	MessageID  string    `json:"message_id"`
	At         time.Time `json:"at"`
	Recipients []WhyItem `json:"recipients"`
}

// WhyItem is one delivery: Reason is a code (the Why* constants), Detail
// says it in words with the figures, the other fields give them.
type WhyItem struct {
	DeliveryID    int64       `json:"delivery_id"`
	Recipient     string      `json:"recipient"`
	State         store.State `json:"state"`
	Lane          store.Lane  `json:"lane"`
	Destination   string      `json:"destination"`
	Reason        string      `json:"reason"`
	Detail        string      `json:"detail"`
	NextAttemptAt time.Time   `json:"next_attempt_at,omitzero"`
	Attempts      int         `json:"attempts"`
	LastReply     string      `json:"last_reply,omitempty"`
	LastClass     string      `json:"last_class,omitempty"`
	PausedUntil   time.Time   `json:"paused_until,omitzero"`
	PauseReply    string      `json:"pause_reply,omitempty"`
	Limit         float64     `json:"limit,omitempty"`   // the limit reached (connections, or messages per minute)
	Current       float64     `json:"current,omitempty"` // its current value
	Ahead         int         `json:"ahead,omitempty"`   // deliveries served first
	HeldAt        time.Time   `json:"held_at,omitzero"`
	HeldBy        string      `json:"held_by,omitempty"`
}

// Why explains why each delivery of message id (of tenantID; "" any) is
// not being sent this second.
func (q *QueueOps) Why(ctx context.Context, tenantID, id string) (*WhyResponse, error) {
	if _, err := q.Store.GetMessage(ctx, tenantID, id, false); err != nil {
		return nil, err
	}
	ds, err := q.Store.MessageDeliveries(ctx, id)
	if err != nil {
		return nil, err
	}
	holds := map[int64]store.Event{}
	evs, err := q.Store.Events(ctx, store.EventFilter{MessageID: id, Type: store.EventHeld})
	if err != nil {
		return nil, err
	}
	for _, e := range evs {
		holds[e.DeliveryID] = e // the latest hold wins
	}
	domains := map[int64]string{}
	for _, d := range ds {
		if !d.State.Final() {
			domains[d.ID] = d.Domain
		}
	}
	var ins map[int64]queue.Inspection
	if q.Inspect != nil {
		ins = q.Inspect.Inspect(domains)
	}
	now := q.Now()
	out := &WhyResponse{MessageID: id, At: now.UTC(), Recipients: []WhyItem{}}
	for _, d := range ds {
		out.Recipients = append(out.Recipients, explain(d, ins[d.ID], holds[d.ID], now))
	}
	return out, nil
}

// explain gives one delivery's reason: the store's state first (held,
// scheduled, final), then where the scheduler holds it and what its
// destination allows right now.
func explain(d store.Delivery, in queue.Inspection, hold store.Event, now time.Time) WhyItem {
	it := WhyItem{DeliveryID: d.ID, Recipient: d.Recipient, State: d.State, Lane: d.Lane, Destination: in.Destination,
		NextAttemptAt: d.NextAttemptAt, Attempts: d.Attempts, LastClass: d.LastClass}
	if it.Destination == "" {
		it.Destination = d.Domain
	}
	if d.LastReply.Code != 0 {
		it.LastReply = d.LastReply.String()
	}
	last := it.LastReply
	if last == "" {
		last = d.LastClass
	}
	dest := it.Destination
	set := func(reason, format string, a ...any) WhyItem {
		it.Reason, it.Detail = reason, fmt.Sprintf(format, a...)
		return it
	}
	switch {
	case d.State.Final():
		it.NextAttemptAt = time.Time{}
		return set(WhyFinal, "%s: nothing more will be sent", d.State)
	case d.State == store.Held:
		it.HeldAt, it.HeldBy = hold.At, hold.Detail
		if it.HeldBy == "" {
			it.HeldBy = "operator (queue hold)"
		}
		if hold.At.IsZero() {
			return set(WhyHeld, "held by an operator until released (posthorn queue release)")
		}
		return set(WhyHeld, "held by %s since %s until released (posthorn queue release)", it.HeldBy, fmtAt(hold.At))
	case in.Place == queue.PlaceSending || d.State == store.Sending:
		return set(WhySending, "being sent right now to %s (attempt %d)", dest, d.Attempts+1)
	case d.State == store.Scheduled && in.Place != queue.PlaceReady:
		return set(WhyScheduled, "scheduled: send_at %s (in %s)", fmtAt(d.NextAttemptAt), until(now, d.NextAttemptAt))
	case in.Place == queue.PlaceWaiting || (in.Place == queue.PlaceUnknown && d.NextAttemptAt.After(now)):
		next := d.NextAttemptAt
		if in.Place == queue.PlaceWaiting {
			next = in.Due.Truncate(time.Millisecond) // the store's precision
		}
		it.NextAttemptAt = next
		if d.LastClass == string(classify.RateLimited) {
			it.PausedUntil, it.PauseReply = next, last
			return set(WhyPaused, "%s paused after reply %q: next attempt at %s (in %s)", dest, last, fmtAt(next), until(now, next))
		}
		if d.Attempts > 0 {
			return set(WhyBackoff, "next attempt at %s (in %s): backoff after attempt %d, reply %q", fmtAt(next), until(now, next), d.Attempts, last)
		}
		return set(WhyWaiting, "next attempt at %s (in %s)", fmtAt(next), until(now, next))
	case in.Place == queue.PlaceReady:
		th := in.Throttle
		switch {
		case in.Manual != nil:
			it.PausedUntil, it.PauseReply = in.Manual.Until, ""
			return set(WhyPaused, "%s %s", dest, in.Manual)
		case now.Before(th.PausedUntil):
			it.PausedUntil, it.PauseReply = th.PausedUntil, th.Reason
			return set(WhyPaused, "%s paused until %s (in %s) after reply %q", dest, fmtAt(th.PausedUntil), until(now, th.PausedUntil), th.Reason)
		case in.RateWait > 0:
			it.Limit, it.Current = th.RatePerMinute, float64(in.SentLastMin)
			return set(WhyRateLimit, "rate limit of %.0f messages/minute reached at %s (%d sent in the last minute): next send in %s",
				th.RatePerMinute, dest, in.SentLastMin, in.RateWait.Round(time.Millisecond))
		case in.Connections >= th.Conns && in.Idle == 0:
			it.Limit, it.Current = float64(th.Conns), float64(in.Connections)
			return set(WhyConnectionLimit, "connection limit reached at %s: %d of %d connections open and busy", dest, in.Connections, th.Conns)
		case in.TotalConnections >= in.MaxConnections && in.Idle == 0:
			it.Limit, it.Current = float64(in.MaxConnections), float64(in.TotalConnections)
			return set(WhyConnectionLimit, "connection limit reached for all destinations: %d of %d open", in.TotalConnections, in.MaxConnections)
		case in.AheadHigher > 0:
			it.Ahead = in.AheadHigher
			return set(WhyBehindHigher, "lane %s behind %d higher-priority deliveries to %s", d.Lane, in.AheadHigher, dest)
		case in.AheadInLane > 0:
			it.Ahead = in.AheadInLane
			return set(WhyBehindInLane, "%d deliveries ahead of it in lane %s to %s", in.AheadInLane, d.Lane, dest)
		}
		return set(WhyReady, "due now: the next free connection to %s takes it", dest)
	}
	return set(WhyWaiting, "due now; the scheduler is picking it up")
}

func fmtAt(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func until(now, t time.Time) string {
	if !t.After(now) {
		return "0s"
	}
	return t.Sub(now).Round(time.Second).String()
}

// SummaryBuckets are the age columns of the queue summary (qshape's
// doubling steps, in minutes); the last column is everything older.
var SummaryBuckets = []time.Duration{5 * time.Minute, 10 * time.Minute, 20 * time.Minute, 40 * time.Minute, 80 * time.Minute, 160 * time.Minute}

// QueueSummary is pending deliveries by destination and age.
type QueueSummary struct {
	At      time.Time    `json:"at"`
	Columns []string     `json:"columns"` // age buckets: "0-5m", ..., "160m+"
	Total   SummaryRow   `json:"total"`
	Rows    []SummaryRow `json:"rows"` // most deliveries first
}

// SummaryRow is one destination: Counts by column.
type SummaryRow struct {
	Destination string `json:"destination"`
	Total       int    `json:"total"`
	Counts      []int  `json:"counts"`
}

// Summary counts pending deliveries (of states; every pending state when
// empty) by destination and age since acceptance.
func (q *QueueOps) Summary(ctx context.Context, states []store.State) (*QueueSummary, error) {
	obs, ok := q.Store.(store.Observer)
	if !ok {
		return nil, errors.New("queue summary: this store cannot be observed")
	}
	now := q.Now()
	rows, err := obs.PendingAges(ctx, now, SummaryBuckets, states)
	if err != nil {
		return nil, err
	}
	out := &QueueSummary{At: now.UTC(), Total: SummaryRow{Destination: "TOTAL", Counts: make([]int, len(SummaryBuckets)+1)}, Rows: []SummaryRow{}}
	prev := "0"
	for _, b := range SummaryBuckets {
		m := fmt.Sprint(int(b.Minutes()))
		out.Columns = append(out.Columns, prev+"-"+m+"m")
		prev = m
	}
	out.Columns = append(out.Columns, prev+"m+")
	byDest := map[string]*SummaryRow{}
	for _, r := range rows {
		dest := r.Domain
		if q.Inspect != nil {
			dest = q.Inspect.Destination(r.Domain)
		}
		if dest == r.Domain && r.Provider != "" {
			dest = "provider:" + r.Provider
		}
		row := byDest[dest]
		if row == nil {
			row = &SummaryRow{Destination: dest, Counts: make([]int, len(r.Buckets))}
			byDest[dest] = row
		}
		for i, n := range r.Buckets {
			row.Counts[i] += n
			row.Total += n
			out.Total.Counts[i] += n
			out.Total.Total += n
		}
	}
	for _, r := range byDest {
		out.Rows = append(out.Rows, *r)
	}
	sort.Slice(out.Rows, func(i, j int) bool {
		if out.Rows[i].Total != out.Rows[j].Total {
			return out.Rows[i].Total > out.Rows[j].Total
		}
		return out.Rows[i].Destination < out.Rows[j].Destination
	})
	return out, nil
}
