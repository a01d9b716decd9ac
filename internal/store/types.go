// Package store defines what posthorn keeps durably: messages, one delivery
// per recipient, every attempt with its exact reply, the event log, and the
// tenants, SMTP users and API keys that own them. Backends (sqlite, later
// postgres) implement Store and must pass the shared conformance suite in
// storetest.
//
// Invariants every backend keeps:
//   - InsertMessages returns only after message, deliveries and their events
//     are durable (fsync'd / committed). Callers acknowledge after that.
//   - A state change and its event are written in one transaction.
//   - States change only as the transition table (Rules, transitions.go)
//     allows: every Store method checks it, backends build their SQL state
//     lists from it, and storetest tries every pair of states against it.
//     A final state changes only through the transitions listed in the
//     table: dead_letter -> queued (requeue), dead_letter -> cancelled
//     (delete, purge), and delivered, soft_bounced or dead_letter ->
//     bounced (async_bounce: a DSN for a message the remote side had
//     accepted). Bounced, suppressed and cancelled never change.
package store

import (
	"errors"
	"time"

	"github.com/posthorn/posthorn/internal/smtpproto"
)

// State is where one delivery (one recipient of one message) stands.
type State string

const (
	Scheduled   State = "scheduled"
	Queued      State = "queued"
	Sending     State = "sending"
	Deferred    State = "deferred"
	Held        State = "held"
	Delivered   State = "delivered"
	Bounced     State = "bounced"
	SoftBounced State = "soft_bounced"
	DeadLetter  State = "dead_letter"
	Suppressed  State = "suppressed"
	Cancelled   State = "cancelled"
)

// AllStates lists every state, pending ones first.
var AllStates = []State{Scheduled, Queued, Sending, Deferred, Held, Delivered, Bounced, SoftBounced, DeadLetter, Suppressed, Cancelled}

// PendingStates are the states that are not final (held among them: it
// waits for an operator).
var PendingStates = []State{Scheduled, Queued, Sending, Deferred, Held}

// Final reports whether no more attempts will be made.
func (s State) Final() bool {
	switch s {
	case Delivered, Bounced, SoftBounced, DeadLetter, Suppressed, Cancelled:
		return true
	}
	return false
}

// Valid reports whether s is a known state.
func (s State) Valid() bool {
	for _, k := range AllStates {
		if s == k {
			return true
		}
	}
	return false
}

// Lane is a delivery priority.
type Lane string

const (
	LaneHigh   Lane = "high"
	LaneNormal Lane = "normal"
	LaneLow    Lane = "low"
)

// ParseLane accepts "high", "normal", "low"; empty means normal.
func ParseLane(s string) (Lane, error) {
	switch Lane(s) {
	case "", LaneNormal:
		return LaneNormal, nil
	case LaneHigh, LaneLow:
		return Lane(s), nil
	}
	return "", errors.New("unknown lane " + s + " (want high, normal or low)")
}

// Event types written to the activity log.
const (
	EventQueued     = "queued"
	EventScheduled  = "scheduled"
	EventSending    = "sending"
	EventDeferred   = "deferred"
	EventDelivered  = "delivered"
	EventBounced    = "bounced"
	EventSoftBounce = "soft_bounced"
	EventDeadLetter = "dead_letter"
	EventSuppressed = "suppressed"
	EventHeld       = "held"
	EventReleased   = "released"
	EventCancelled  = "cancelled"
	EventRequeued   = "requeued"
	EventRecovered  = "recovered"
	EventFlushed    = "flushed"
	EventPurged     = "purged"
	EventThrottle   = "throttle_changed"
	// An operator paused or resumed a destination (queue.PauseDestination).
	EventDestinationPaused  = "destination_paused"
	EventDestinationResumed = "destination_resumed"
	EventComplaint          = "complaint"
	EventUnsubscribed       = "unsubscribed"
	// EventReportIgnored: a bounce or complaint claimed something its
	// return path does not vouch for (another recipient's delivery); the
	// claim is kept, nothing changed.
	EventReportIgnored = "report_ignored"
	// EventOutcomeIgnored reports an attempt's result that arrived after
	// the delivery had left sending; the state was not changed.
	EventOutcomeIgnored = "outcome_ignored"
	// EventAuthFailed is a failed login (SMTP AUTH, API password); it
	// belongs to no message. Detail holds protocol, ip and user.
	EventAuthFailed = "auth_failed"
	// Content scanning (internal/scan): a scanned message, a refused
	// one (no message stored), a scanner that did not answer.
	EventScanned      = "scanned"
	EventScanRejected = "scan_rejected"
	EventScanFailed   = "scan_failed"
	// EventCredentialRevoked is an SMTP user, API key or account removed
	// by an operator; Detail says which.
	EventCredentialRevoked = "credential_revoked"
	// EventPasswordChanged is an SMTP user's or account's new password.
	EventPasswordChanged = "password_changed"
	// EventTenantRemoved is a tenant removed by an operator (with its
	// credentials); Detail names it and what was cancelled.
	EventTenantRemoved = "tenant_removed"
)

// Message is one accepted message. Body holds the full RFC 5322 message
// with CRLF line endings (headers added by posthorn included); it is only
// filled when asked for.
type Message struct {
	ID          string            `json:"id"`
	TenantID    string            `json:"tenant"`
	Sender      string            `json:"sender"`
	Lane        Lane              `json:"lane"`
	Source      string            `json:"source"` // "smtp" or "http"
	SMTPUser    string            `json:"smtp_user,omitempty"`
	ClientIP    string            `json:"client_ip,omitempty"`
	Size        int               `json:"size"`
	MessageID   string            `json:"message_id_header,omitempty"`
	Subject     string            `json:"subject,omitempty"`
	CreatedAt   time.Time         `json:"created_at"`
	SendAt      time.Time         `json:"send_at,omitzero"`
	Body        []byte            `json:"-"`
	UTF8        bool              `json:"smtputf8,omitempty"`
	EightBitMIM bool              `json:"8bitmime,omitempty"`
	Tags        []string          `json:"tags,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
	// Sandbox mail is accepted and stored but never sent: the queue
	// records it delivered to the sandbox without dialling.
	Sandbox bool `json:"sandbox,omitempty"`
	// BodyPrunedAt is set when body retention dropped the body.
	BodyPrunedAt time.Time `json:"body_pruned_at,omitzero"`
	// DKIMDomain, set at acceptance, is the sending domain whose key
	// signs the message after it was stored (internal/signer); "" when
	// it is not signed that way.
	DKIMDomain string `json:"-"`
	// DKIMPending says the message still awaits that signature: Body is
	// unsigned and must not be sent (Store.SetDKIMSignatures).
	DKIMPending bool `json:"-"`
}

// DKIMSignature is the DKIM-Signature field (with its CRLF) computed for a
// stored message.
type DKIMSignature struct {
	MessageID string
	Field     []byte
}

// Delivery is one recipient of one message and everything known about
// getting it there.
type Delivery struct {
	ID             int64           `json:"id"`
	MessageID      string          `json:"message_id"`
	TenantID       string          `json:"tenant"`
	Sender         string          `json:"sender"`
	Recipient      string          `json:"recipient"`
	Domain         string          `json:"domain"`
	Lane           Lane            `json:"lane"`
	State          State           `json:"state"`
	Attempts       int             `json:"attempts"`
	CreatedAt      time.Time       `json:"created_at"`
	FirstAttemptAt time.Time       `json:"first_attempt_at,omitzero"`
	LastAttemptAt  time.Time       `json:"last_attempt_at,omitzero"`
	NextAttemptAt  time.Time       `json:"next_attempt_at,omitzero"`
	ExpiresAt      time.Time       `json:"expires_at"`
	LastReply      smtpproto.Reply `json:"last_reply,omitzero"`
	LastError      string          `json:"last_error,omitempty"` // local error text of the last attempt when it got no reply (connect, DNS, TLS)
	LastClass      string          `json:"last_class,omitempty"`
	LastPhase      string          `json:"last_phase,omitempty"`
	LastMX         string          `json:"last_mx,omitempty"`
	LastIP         string          `json:"last_ip,omitempty"`
	Provider       string          `json:"provider,omitempty"`
	Size           int             `json:"size"`
	UpdatedAt      time.Time       `json:"updated_at"`
}

// DueCursor is a position in due order: after the delivery ID due at Due
// (millisecond precision, as stored). The zero cursor is the start.
type DueCursor struct {
	Due time.Time
	ID  int64
}

// LastFailure is the last attempt's outcome in words: the reply, or the
// local error text when there was no reply; "" before any attempt.
func (d Delivery) LastFailure() string {
	switch {
	case d.LastReply.Code != 0:
		return d.LastReply.String()
	case d.LastError != "":
		return d.LastError
	}
	return d.LastClass
}

// Attempt is one try at delivering one recipient, with the exact reply.
type Attempt struct {
	ID         int64           `json:"id"`
	DeliveryID int64           `json:"delivery_id"`
	N          int             `json:"n"`
	StartedAt  time.Time       `json:"started_at"`
	Duration   time.Duration   `json:"duration_ns"`
	MX         string          `json:"mx,omitempty"`
	IP         string          `json:"ip,omitempty"`
	SourceIP   string          `json:"source_ip,omitempty"`
	TLS        bool            `json:"tls"`
	Reply      smtpproto.Reply `json:"reply,omitzero"`
	Class      string          `json:"class"`
	Phase      string          `json:"phase,omitempty"`
	Error      string          `json:"error,omitempty"` // local error (DNS, connect, TLS) when there is no reply
	TLSDetail  TLSDetail       `json:"tls_detail,omitzero"`
}

// TLSDetail is what an attempt's TLS session was: the protocol version
// and cipher suite negotiated, the policy that applied to the host
// ("may", "mta-sts enforce", "dane", ...) and the result of checking the
// server's certificate against it ("pkix ok", "dane-ee match", "not
// verified: ...", or the failure).
type TLSDetail struct {
	Version string `json:"version,omitempty"`
	Cipher  string `json:"cipher,omitempty"`
	Policy  string `json:"policy,omitempty"`
	Result  string `json:"result,omitempty"`
}

// Event is one line of the activity log.
type Event struct {
	ID         int64           `json:"id"`
	At         time.Time       `json:"at"`
	Type       string          `json:"type"`
	TenantID   string          `json:"tenant"`
	MessageID  string          `json:"message_id"`
	DeliveryID int64           `json:"delivery_id,omitempty"`
	Recipient  string          `json:"recipient,omitempty"`
	Attempt    int             `json:"attempt,omitempty"`
	MX         string          `json:"mx,omitempty"`
	Reply      smtpproto.Reply `json:"reply,omitzero"`
	Detail     string          `json:"detail,omitempty"`
	// The recipient's domain, and for attempts the destination (the
	// provider, or else the domain) they went to.
	Domain      string `json:"domain,omitempty"`
	Destination string `json:"destination,omitempty"`
}

// ErrNotFound is returned when a looked-up row does not exist (or belongs
// to another tenant).
var ErrNotFound = errors.New("not found")

// ErrConflict is returned when a unique name is taken.
var ErrConflict = errors.New("already exists")
