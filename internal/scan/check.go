package scan

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/posthorn/posthorn/internal/accept"
	"github.com/posthorn/posthorn/internal/store"
)

// Event types the scanner writes.
const (
	EventScanned  = store.EventScanned      // on the message: action and score
	EventRejected = store.EventScanRejected // no message stored: action, score, symbols
	EventFailed   = store.EventScanFailed   // the scanner did not answer in time
)

// Policy is what a tenant's scanning does.
type Policy struct {
	Off bool // no scanning for this tenant
	// FailClosed refuses mail (451) when the scanner does not answer;
	// otherwise it is accepted unscanned.
	FailClosed bool
	// HoldRejected stores mail rspamd would reject as held instead of
	// refusing it.
	HoldRejected bool
}

// Scanner is the accept check that scans every message.
type Scanner interface {
	Scan(ctx context.Context, req *Request) (*Result, error)
}

// EventWriter records events that belong to no stored message.
type EventWriter interface {
	RecordEvent(ctx context.Context, e store.Event) error
}

// Check scans messages at accept time (an accept.Check).
type Check struct {
	Scanner Scanner
	Timeout time.Duration
	Default Policy
	Tenants map[string]Policy // by tenant ID
	Events  EventWriter
	Log     *slog.Logger
	Now     func() time.Time

	stats Stats
}

// Stats counts what the scanner decided.
type Stats struct {
	Scanned, Rejected, Held, Tagged, Deferred, FailedOpen, FailedClosed atomic.Int64
}

// StatsSnapshot is Stats as numbers.
type StatsSnapshot struct {
	Scanned      int64 `json:"scanned"`
	Rejected     int64 `json:"rejected"`
	Held         int64 `json:"held"`
	Tagged       int64 `json:"tagged"`
	Deferred     int64 `json:"deferred"`
	FailedOpen   int64 `json:"failed_open"`
	FailedClosed int64 `json:"failed_closed"`
}

// Stats returns the counters.
func (c *Check) Stats() StatsSnapshot {
	s := &c.stats
	return StatsSnapshot{s.Scanned.Load(), s.Rejected.Load(), s.Held.Load(), s.Tagged.Load(), s.Deferred.Load(),
		s.FailedOpen.Load(), s.FailedClosed.Load()}
}

func (c *Check) policy(tenantID string) Policy {
	if p, ok := c.Tenants[tenantID]; ok {
		return p
	}
	return c.Default
}

// Replies for the scanner's decisions.
var (
	errSpam        = accept.Refusal(550, "5.7.1", "message refused as spam", http.StatusUnprocessableEntity, "content_rejected", 0)
	errDeferred    = accept.Refusal(451, "4.7.1", "message deferred by the content scanner; try again later", http.StatusServiceUnavailable, "content_deferred", time.Minute)
	errUnavailable = accept.Refusal(451, "4.7.1", "content scanner unavailable; try again later", http.StatusServiceUnavailable, "scan_unavailable", time.Minute)
)

// detail is an event's Detail: what the scanner said, and about whom.
type detail struct {
	Action   string   `json:"action,omitempty"`
	Score    float64  `json:"score"`
	Required float64  `json:"required_score,omitempty"`
	Symbols  []string `json:"symbols,omitempty"`
	Policy   string   `json:"policy,omitempty"` // what posthorn did
	Error    string   `json:"error,omitempty"`
	QueueID  string   `json:"queue_id,omitempty"`
	Sender   string   `json:"sender,omitempty"`
	User     string   `json:"user,omitempty"`
	Rcpts    int      `json:"recipients,omitempty"`
	ScanMS   float64  `json:"scan_ms,omitempty"`
}

func (d detail) String() string {
	b, _ := json.Marshal(d)
	return string(b)
}

// Check implements accept.Check.
func (c *Check) Check(ctx context.Context, in *accept.CheckInput) (*accept.Verdict, error) {
	sub := in.Sub
	pol := c.policy(sub.TenantID)
	if pol.Off {
		return nil, nil
	}
	user := sub.SMTPUser
	if user == "" && sub.APIKey != "" {
		user = "apikey:" + sub.APIKey
	}
	req := &Request{Body: in.Body, From: sub.Sender, Rcpts: sub.Recipients, IP: sub.ClientIP, User: user,
		Helo: sub.Helo, QueueID: in.ID, Tenant: sub.TenantID}
	sctx, cancel := context.WithTimeout(ctx, c.Timeout)
	res, err := c.Scanner.Scan(sctx, req)
	cancel()
	base := detail{QueueID: in.ID, Sender: sub.Sender, User: user, Rcpts: len(sub.Recipients)}
	if err != nil {
		base.Error = err.Error()
		if pol.FailClosed {
			c.stats.FailedClosed.Add(1)
			base.Policy = "fail_closed"
			c.record(ctx, sub.TenantID, EventFailed, base)
			c.Log.Warn("content scan failed; mail refused (fail closed)", "queue_id", in.ID, "err", err)
			return nil, errUnavailable
		}
		c.stats.FailedOpen.Add(1)
		base.Policy = "fail_open"
		c.Log.Warn("content scan failed; mail accepted unscanned (fail open)", "queue_id", in.ID, "err", err)
		return &accept.Verdict{Events: []store.Event{{Type: EventFailed, Detail: base.String()}}}, nil
	}
	c.stats.Scanned.Add(1)
	d := base
	d.Action, d.Score, d.Required, d.ScanMS = res.Action, res.Score, res.Required, float64(res.ScanTime.Microseconds())/1000
	switch res.Action {
	case "reject":
		d.Symbols = res.Symbols
		if pol.HoldRejected {
			c.stats.Held.Add(1)
			d.Policy = "hold"
			return &accept.Verdict{Hold: true, Tags: []string{"spam"}, Headers: spamHeaders(res),
				Events: []store.Event{{Type: EventScanned, Detail: d.String()}}}, nil
		}
		c.stats.Rejected.Add(1)
		d.Policy = "reject"
		c.record(ctx, sub.TenantID, EventRejected, d)
		return nil, errSpam
	case "soft reject", "greylist":
		c.stats.Deferred.Add(1)
		d.Symbols, d.Policy = res.Symbols, "defer"
		c.record(ctx, sub.TenantID, EventRejected, d)
		return nil, errDeferred
	case "add header", "rewrite subject":
		c.stats.Tagged.Add(1)
		d.Symbols, d.Policy = res.Symbols, "tag"
		return &accept.Verdict{Tags: []string{"spam"}, Headers: spamHeaders(res),
			Events: []store.Event{{Type: EventScanned, Detail: d.String()}}}, nil
	}
	d.Policy = "accept"
	return &accept.Verdict{Events: []store.Event{{Type: EventScanned, Detail: d.String()}}}, nil
}

func spamHeaders(res *Result) []string {
	return []string{"X-Spam: yes", "X-Spam-Score: " + trimFloat(res.Score) + " / " + trimFloat(res.Required)}
}

func trimFloat(f float64) string {
	b, _ := json.Marshal(float64(int64(f*100)) / 100)
	return string(b)
}

// record writes an event that belongs to no stored message.
func (c *Check) record(ctx context.Context, tenantID, typ string, d detail) {
	e := store.Event{At: c.Now().UTC(), Type: typ, TenantID: tenantID, Detail: d.String()}
	if err := c.Events.RecordEvent(context.WithoutCancel(ctx), e); err != nil {
		c.Log.Error("record scan event", "type", typ, "err", err)
	}
}
