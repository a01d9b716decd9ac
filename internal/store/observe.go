package store

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Observer is the read side that metrics and the operator's queue
// summary use: cheap aggregates of the deliveries table, and the rows of
// the append-only tables (attempts, events, messages) added since a
// cursor, so that counters can be kept equal to the store without a
// full scan per scrape. Backends implement it beside Store.
//
// The cursors are row IDs that grow in commit order (SQLite has one
// writer; a backend with concurrent writers must hand out cursors that
// never skip a row committed later with a smaller ID).
type Observer interface {
	// QueueShape counts deliveries in the pending states and in
	// dead_letter, by state and lane, with the oldest created_at of each.
	QueueShape(ctx context.Context) ([]ShapeRow, error)
	// PendingAges counts pending deliveries (states, or every pending
	// state when empty) by recipient domain and age bucket: bucket i
	// holds those created in (now-edges[i], now-edges[i-1]]; the last
	// bucket (index len(edges)) everything older.
	PendingAges(ctx context.Context, now time.Time, edges []time.Duration, states []State) ([]DomainAges, error)
	// PendingByDomain counts pending deliveries by recipient domain (of
	// tenantID; "" every tenant) with each domain's latest failure.
	PendingByDomain(ctx context.Context, tenantID string) ([]DomainQueue, error)
	// AttemptsAfter returns up to limit attempts with an ID above after,
	// in ID order.
	AttemptsAfter(ctx context.Context, after int64, limit int) ([]AttemptRow, error)
	// EventsAfter returns up to limit events of the given types with an ID
	// above after, in ID order, with their delivery's lane and creation
	// time. It also returns the highest event ID it looked at (the next
	// cursor), so events of other types are not read again. With no event
	// above after it returns the highest ID there is, which is below after
	// when a backend that reuses IDs lost its newest events (SQLite, after
	// retention emptied the log: the next event gets ID 1 again).
	EventsAfter(ctx context.Context, after int64, types []string, limit int) ([]EventRow, int64, error)
	// MessagesAfter returns up to limit accepted messages (cursor, source)
	// with a cursor above after, in order.
	MessagesAfter(ctx context.Context, after int64, limit int) ([]MessageRow, error)
	// MetricsState returns what SaveMetricsState saved last (nil: never
	// saved): the metrics collector's counters with their cursors, so a
	// restart continues from them instead of reading the whole history.
	// The store keeps it opaque.
	MetricsState(ctx context.Context) ([]byte, error)
	// SaveMetricsState replaces the saved state.
	SaveMetricsState(ctx context.Context, state []byte) error
}

// ShapeRow is one (state, lane) cell of QueueShape.
type ShapeRow struct {
	State  State
	Lane   Lane
	Count  int
	Oldest time.Time // created_at of the oldest delivery in the cell
}

// DomainAges is one recipient domain's pending deliveries by age bucket.
// DomainQueue is one recipient domain's pending deliveries (of one
// tenant, or all) with the newest failure among them.
type DomainQueue struct {
	Domain        string
	Pending       int
	LastAttemptAt time.Time // of the most recently attempted pending delivery
	LastFailure   string    // its reply, or local error text when there was no reply
	LastClass     string
}

type DomainAges struct {
	Domain   string
	Provider string // last provider seen for the domain ("" unknown)
	Buckets  []int
}

// AttemptRow is one attempt with its delivery's domain and provider.
type AttemptRow struct {
	ID       int64
	Class    string
	Domain   string
	Provider string
}

// EventRow is one event with what metrics need of its delivery.
type EventRow struct {
	ID        int64
	Type      string
	At        time.Time
	TenantID  string
	Recipient string
	Text      string // the reply text or local error
	Detail    string
	Lane      Lane      // of the delivery ("" when the event has none)
	CreatedAt time.Time // the delivery's acceptance time
}

// MessageRow is one accepted message.
type MessageRow struct {
	Cursor int64
	Source string
}

// AgeBucketSQL is the SQL expression that puts a row in its age bucket
// by its created_at (Unix milliseconds): 0 for younger than edges[0], ...,
// len(edges) for older than the last edge; 0 when there are no edges.
func AgeBucketSQL(now time.Time, edges []time.Duration) string {
	if len(edges) == 0 {
		return "0" // one bucket; "CASE ELSE 0 END" is not SQL
	}
	var b strings.Builder
	b.WriteString("CASE")
	for i, e := range edges {
		fmt.Fprintf(&b, " WHEN created_at > %d THEN %d", now.Add(-e).UnixMilli(), i)
	}
	fmt.Fprintf(&b, " ELSE %d END", len(edges))
	return b.String()
}
