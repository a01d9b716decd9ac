package store

import (
	"context"
	"strconv"
	"time"
)

// Webhooks is the store of webhook endpoints and their durable outbox.
//
// Every event written while an endpoint of its tenant subscribes to its
// type gets one outbox row per endpoint, in the same transaction as the
// event (so no webhook is lost across a crash). The SQLite backend keeps
// the subscriptions in memory for that (writing an event never queries
// them); PostgreSQL, shared by several nodes, joins them in one statement
// per commit.
// Outbox rows leave the outbox when delivered, or stay as failed when
// their retries are exhausted.
type Webhooks interface {
	// CreateEndpoint adds an endpoint (ID and Secret filled in by the caller).
	CreateEndpoint(ctx context.Context, e WebhookEndpoint) error
	// ListEndpoints returns a tenant's endpoints ("" lists every tenant's).
	ListEndpoints(ctx context.Context, tenantID string) ([]WebhookEndpoint, error)
	// GetEndpoint returns one endpoint of tenantID ("" any tenant);
	// ErrNotFound when it does not exist or belongs to another tenant.
	GetEndpoint(ctx context.Context, tenantID, id string) (*WebhookEndpoint, error)
	// DeleteEndpoint removes an endpoint, its outbox and its attempts.
	DeleteEndpoint(ctx context.Context, tenantID, id string) error
	// EnableEndpoint turns a disabled endpoint on again.
	EnableEndpoint(ctx context.Context, tenantID, id string) error
	// QueueTestWebhook writes a webhook_test event for the endpoint's
	// tenant and an outbox row for that endpoint only.
	QueueTestWebhook(ctx context.Context, tenantID, id string, now time.Time) error
	// DueWebhooks returns up to limit outbox rows per enabled endpoint that
	// are due at now, each the oldest pending row of its (endpoint, order
	// key), oldest first, with the event and message fields the payload
	// needs.
	DueWebhooks(ctx context.Context, now time.Time, limit int) ([]OutboxItem, error)
	// NextWebhookDue is when the earliest pending row due after now is
	// due (zero: none).
	NextWebhookDue(ctx context.Context, now time.Time) (time.Time, error)
	// RecordWebhookAttempt stores one request's result: the attempt row,
	// and the outbox row deleted (delivered), rescheduled at NextAt, or
	// marked failed (GiveUp). With Disable the endpoint is disabled and a
	// webhook_disabled event written, in the same transaction.
	RecordWebhookAttempt(ctx context.Context, r WebhookResult) error
	// WebhookOutboxDepth counts the webhooks waiting to be delivered
	// (pending rows; given-up rows are not waiting).
	WebhookOutboxDepth(ctx context.Context) (int, error)
	// WebhookAttempts returns an endpoint's latest attempts, newest first.
	WebhookAttempts(ctx context.Context, tenantID, endpointID string, limit int) ([]WebhookAttempt, error)
	// WebhookSignal is poked (without blocking) after a commit that added
	// outbox rows.
	WebhookSignal() <-chan struct{}
}

// Event types of the webhook and alert machinery.
const (
	EventWebhookDisabled = "webhook_disabled"
	EventWebhookTest     = "webhook_test"
	EventAlertFired      = "alert_fired"
	EventAlertResolved   = "alert_resolved"
)

// WebhookEndpoint is one URL a tenant receives events at.
type WebhookEndpoint struct {
	ID           string    `json:"id"`
	TenantID     string    `json:"tenant"`
	URL          string    `json:"url"`
	Events       []string  `json:"events"`
	Secret       string    `json:"-"` // whsec_<base64>; shown once, at creation
	CreatedAt    time.Time `json:"created_at"`
	DisabledAt   time.Time `json:"disabled_at,omitzero"`
	FailingSince time.Time `json:"failing_since,omitzero"`
	Pending      int       `json:"pending"` // outbox rows waiting (listings only)
}

// OutboxItem is one webhook to send: an event for an endpoint.
type OutboxItem struct {
	ID         int64 // webhook-id is derived from it (stable across retries)
	EndpointID string
	URL        string
	Secret     string
	Attempts   int // requests made so far
	// FailingSince is when the endpoint's current run of failures began.
	FailingSince time.Time
	Key          string
	Event        Event
	Class        string // the attempt's class, for outcome events
	Tags         []string
	Metadata     map[string]string
	Missing      bool // the event row is gone (purged): nothing to send
}

// WebhookResult is one request's outcome.
type WebhookResult struct {
	OutboxID   int64
	EndpointID string
	EventID    int64
	EventType  string
	N          int // this request's number (1 for the first)
	At         time.Time
	Duration   time.Duration
	Status     int    // HTTP status (0: no response)
	Error      string // why it failed without a 2xx
	Response   string // first bytes of the response body
	OK         bool
	NextAt     time.Time // when to retry (not OK, not GiveUp)
	GiveUp     bool
	Disable    bool // disable the endpoint (failing too long)
	Detail     string
}

// WebhookAttempt is one recorded request.
type WebhookAttempt struct {
	ID         int64         `json:"id"`
	EndpointID string        `json:"endpoint"`
	WebhookID  string        `json:"webhook_id"`
	EventID    int64         `json:"event_id"`
	EventType  string        `json:"event_type"`
	At         time.Time     `json:"at"`
	Duration   time.Duration `json:"duration_ns"`
	Status     int           `json:"status,omitempty"`
	OK         bool          `json:"ok"`
	Error      string        `json:"error,omitempty"`
	Response   string        `json:"response,omitempty"`
	N          int           `json:"n"`
}

// WebhookID is the Standard Webhooks message id of an outbox row: the
// same on every retry, so receivers can drop duplicates.
func WebhookID(outboxID int64) string { return "msg_" + strconv.FormatInt(outboxID, 10) }

// Alerts is the store of alert states (internal/events/alerts).
type Alerts interface {
	// PutAlert upserts an alert's state and writes its event (fired or
	// resolved) in the same transaction.
	PutAlert(ctx context.Context, a Alert, ev Event) error
	// UpdateAlert stores an alert's state without an event (action released).
	UpdateAlert(ctx context.Context, a Alert) error
	// ListAlerts returns firing alerts and those resolved since since.
	ListAlerts(ctx context.Context, since time.Time) ([]Alert, error)
	// LastEventID is the highest event id (0: none).
	LastEventID(ctx context.Context) (int64, error)
	// OldestQueued is when the oldest delivery waiting to be sent (queued,
	// deferred or sending) became due: its send_at, or its acceptance.
	OldestQueued(ctx context.Context) (time.Time, error)
}

// Alert is one alert instance: a rule, for one destination when the rule
// covers several.
type Alert struct {
	Key         string    `json:"key"` // rule, or rule/destination
	Rule        string    `json:"rule"`
	Kind        string    `json:"kind"`
	Destination string    `json:"destination,omitempty"`
	Firing      bool      `json:"firing"`
	Value       float64   `json:"value"`
	Threshold   float64   `json:"threshold"`
	FiredAt     time.Time `json:"fired_at"`
	ResolvedAt  time.Time `json:"resolved_at,omitzero"`
	Action      string    `json:"action,omitempty"`
	// ActionState: "applied" while the action acts, "released" when an
	// operator lifted it early, "ended" after the alert resolved.
	ActionState string `json:"action_state,omitempty"`
	Detail      string `json:"detail,omitempty"`
}
