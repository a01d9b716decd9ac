package store

import (
	"context"
	"strings"
	"time"
)

// EventTypes lists every event type the activity log holds, for
// validating filters (an unknown type is an error, not an empty list).
var EventTypes = []string{
	EventQueued, EventScheduled, EventSending, EventDeferred, EventDelivered, EventBounced, EventSoftBounce,
	EventDeadLetter, EventSuppressed, EventHeld, EventReleased, EventCancelled, EventRequeued, EventRecovered,
	EventFlushed, EventPurged, EventThrottle, EventDestinationPaused, EventDestinationResumed, EventComplaint, EventUnsubscribed, EventReportIgnored, EventOutcomeIgnored,
	EventAuthFailed, EventCredentialRevoked, EventPasswordChanged, EventTenantRemoved,
	EventScanned, EventScanRejected, EventScanFailed,
	EventWebhookDisabled, EventWebhookTest, EventAlertFired, EventAlertResolved,
}

// ValidEventType reports whether t is a known event type.
func ValidEventType(t string) bool {
	for _, k := range EventTypes {
		if k == t {
			return true
		}
	}
	return false
}

// EventTypeList is the valid types, comma separated, for error messages.
func EventTypeList() string { return strings.Join(EventTypes, ", ") }

// EventLog is the activity log's side of a backend beyond Store.Events:
// deliverability reports from rollups kept as events are written,
// retention pruning, and the hook that feeds live streams after commit.
type EventLog interface {
	// Report sums the rollup counters of one tenant ("" every tenant)
	// over whole UTC days [From, To] grouped as q.GroupBy says.
	Report(ctx context.Context, q ReportQuery) ([]ReportRow, error)
	// PruneEvents deletes at most limit events written before cutoff,
	// looking only at the oldest few times limit events (so it never
	// scans the log); it returns how many it deleted (0: done).
	PruneEvents(ctx context.Context, cutoff time.Time, limit int) (int, error)
	// PruneBodies looks at up to limit messages after the cursor after
	// (0: from the first) and drops the bodies of those created before
	// cutoff whose deliveries are all final and none dead-lettered (a
	// dead letter may be requeued and needs its body); the message rows
	// stay, marked pruned. It returns how many it pruned, the cursor to
	// continue from, and done when no older message is left to look at.
	PruneBodies(ctx context.Context, cutoff time.Time, after int64, limit int) (n int, next int64, done bool, err error)
	// SetEventSink sets the function called, in commit order, with the
	// events each transaction wrote, after it committed. It must not
	// block (the writer waits for it).
	SetEventSink(fn func([]Event))
	// CountEvents counts the events f selects (its Limit and cursors
	// aside), stopping at max: a count costs a scan of what it counts.
	CountEvents(ctx context.Context, f EventFilter, max int) (int, error)
}

// Report groupings.
const (
	GroupByDay         = "day"
	GroupByDomain      = "domain"
	GroupByDestination = "destination"
	GroupByTag         = "tag"
)

// ReportQuery asks for a deliverability report.
type ReportQuery struct {
	TenantID string
	From, To time.Time // days (UTC); both included
	GroupBy  string
}

// Counters are what the rollups count, per event.
type Counters struct {
	Accepted     int64 `json:"accepted"` // recipients accepted (sent), suppressed at acceptance included
	Delivered    int64 `json:"delivered"`
	Deferred     int64 `json:"deferred"` // deferrals (attempts), not distinct recipients
	Bounced      int64 `json:"bounced"`  // hard bounces, synchronous and asynchronous
	SoftBounced  int64 `json:"soft_bounced"`
	Complaints   int64 `json:"complaints"`
	Unsubscribed int64 `json:"unsubscribed"`
	Suppressed   int64 `json:"suppressed"`
	DeadLettered int64 `json:"dead_lettered"`
}

// Add adds o to c.
func (c *Counters) Add(o Counters) {
	c.Accepted += o.Accepted
	c.Delivered += o.Delivered
	c.Deferred += o.Deferred
	c.Bounced += o.Bounced
	c.SoftBounced += o.SoftBounced
	c.Complaints += o.Complaints
	c.Unsubscribed += o.Unsubscribed
	c.Suppressed += o.Suppressed
	c.DeadLettered += o.DeadLettered
}

// CountEvent returns the counters one event adds to the rollups, and
// false for an event the reports do not count. accepted says the event
// was written when the delivery was accepted (its first event).
func CountEvent(typ string, accepted bool) (Counters, bool) {
	var c Counters
	if accepted {
		c.Accepted = 1
	}
	switch typ {
	case EventDelivered:
		c.Delivered = 1
	case EventDeferred:
		c.Deferred = 1
	case EventBounced:
		c.Bounced = 1
	case EventSoftBounce:
		c.SoftBounced = 1
	case EventComplaint:
		c.Complaints = 1
	case EventUnsubscribed:
		c.Unsubscribed = 1
	case EventSuppressed:
		c.Suppressed = 1
	case EventDeadLetter:
		c.DeadLettered = 1
	default:
		if !accepted {
			return c, false
		}
	}
	return c, true
}

// ReportRow is one group of a report.
type ReportRow struct {
	Key string `json:"key"` // the day (2006-01-02), domain, destination or tag
	Counters
}

// DomainDest is one rollup row of a report by destination: a recipient
// domain, the provider an attempt there went to ("" for none) and counts.
type DomainDest struct {
	Domain, Dest string
	Counters     Counters
}

// ByDestination folds rollup rows into report rows per destination, in
// key order: a domain's destination is the provider its attempts went to
// (the greatest name, should there be several), and a domain no known
// provider hosts is its own destination. Both backends report through it.
func ByDestination(rows []DomainDest) []ReportRow {
	destOf := map[string]string{}
	for _, x := range rows {
		if x.Dest != "" && x.Dest != x.Domain && x.Dest > destOf[x.Domain] {
			destOf[x.Domain] = x.Dest
		}
	}
	byDest := map[string]*Counters{}
	for _, x := range rows {
		k := destOf[x.Domain]
		if k == "" {
			k = x.Domain
		}
		if byDest[k] == nil {
			byDest[k] = &Counters{}
		}
		byDest[k].Add(x.Counters)
	}
	out := make([]ReportRow, 0, len(byDest))
	for k, c := range byDest {
		out = append(out, ReportRow{Key: k, Counters: *c})
	}
	return out
}
