package store

import (
	"context"
	"strings"
	"time"

	"github.com/posthorn/posthorn/internal/smtpproto"
)

// Store is the durable state of posthorn. Every method is safe for
// concurrent use. Write methods may be batched with other callers' writes
// into one transaction (group commit) but each call is atomic on its own and
// durable when it returns nil.
type Store interface {
	// InsertMessages writes each message, its deliveries and their first
	// events, and fills in the delivery IDs.
	InsertMessages(ctx context.Context, msgs []*NewMessage) error

	// SetDKIMSignatures stores the signatures of messages inserted with
	// a DKIMDomain: from then on GetMessage returns each field prepended
	// to the body (Size grows by its length) and DKIMPending false. A
	// message already signed keeps its first signature; unknown IDs are
	// skipped.
	SetDKIMSignatures(ctx context.Context, sigs []DKIMSignature) error

	// Lease marks deliveries as being sent: state sending, next attempt
	// pushed to retryAt (so a crash mid-attempt yields a delayed retry).
	// Only deliveries still queued or deferred are leased; it returns those.
	Lease(ctx context.Context, ids []int64, now, retryAt time.Time) ([]int64, error)

	// RecordOutcomes stores the result of attempts: the delivery's new
	// state and last reply, one attempt row and one event per outcome.
	// An outcome whose state the table does not allow after sending
	// refuses the whole call (ErrRefused, nothing written). An outcome for
	// a delivery that is no longer sending (changed meanwhile) is ignored
	// and reported: its only trace is an outcome_ignored event.
	RecordOutcomes(ctx context.Context, outs []Outcome) error

	// RecoverLeases returns deliveries left in sending by a previous run to
	// queued, keeping their pushed-out next attempt time. It returns how
	// many it recovered.
	RecoverLeases(ctx context.Context, now time.Time) (int, error)

	// RescueLeases returns the deliveries among ids that are still in
	// sending with a lease that ended (next_attempt_at not after now) to
	// queued, with a recovered event each, and returns them as they are
	// now. The scheduler calls it for leases it no longer holds (their
	// outcome could not be recorded).
	RescueLeases(ctx context.Context, ids []int64, now time.Time) ([]Delivery, error)

	// LoadPending calls fn for every delivery that is not final and not
	// held, in no particular order, to rebuild the scheduler.
	LoadPending(ctx context.Context, fn func(*Delivery) error) error

	// PendingDue returns up to limit deliveries that are not final and not
	// held, due at or before until and after the position after, in due
	// order (next_attempt_at, then id). The scheduler pages through its
	// queue with it, earliest due first, keeping only what is due soon in
	// memory (see internal/queue).
	PendingDue(ctx context.Context, after DueCursor, until time.Time, limit int) ([]Delivery, error)

	// Transition moves the deliveries chosen by spec to a new state, with
	// one event each, and returns them as they are after the change. The
	// spec is checked with PrepareTransition first: a change outside the
	// table is refused (ErrRefused, nothing written). Chosen deliveries in
	// a state the op does not move are left alone and not returned.
	Transition(ctx context.Context, spec TransitionSpec) ([]Delivery, error)

	// RecordEvent appends one event that belongs to no state change (for
	// example throttle_changed for a destination).
	RecordEvent(ctx context.Context, e Event) error

	// PutSuppressions adds or replaces suppression entries.
	PutSuppressions(ctx context.Context, ss []Suppression) error
	// DeleteSuppression removes one entry; it reports whether it existed.
	DeleteSuppression(ctx context.Context, tenantID, kind, value string) (bool, error)
	// ListSuppressions returns a tenant's entries ("" lists every tenant).
	ListSuppressions(ctx context.Context, tenantID string) ([]Suppression, error)
	// EachSuppression calls fn for each of a tenant's entries ("" for
	// every tenant) as it reads them, holding no list in memory (lists
	// reach millions of entries).
	EachSuppression(ctx context.Context, tenantID string, fn func(Suppression) error) error
	// AddressSuppressions returns a tenant's address entries whose value,
	// lower-cased (FoldAddress), is folded: every stored spelling of it.
	AddressSuppressions(ctx context.Context, tenantID, folded string) ([]Suppression, error)

	// PurgeIdempotency deletes keys that expired before now.
	PurgeIdempotency(ctx context.Context, now time.Time) (int, error)

	ListDeliveries(ctx context.Context, f DeliveryFilter) ([]Delivery, error)
	CountDeliveries(ctx context.Context, tenantID string) (map[State]int, error)
	GetMessage(ctx context.Context, tenantID, id string, withBody bool) (*Message, error)
	MessageDeliveries(ctx context.Context, messageID string) ([]Delivery, error)
	Attempts(ctx context.Context, messageID string) ([]Attempt, error)
	Events(ctx context.Context, f EventFilter) ([]Event, error)

	CreateTenant(ctx context.Context, t Tenant) error
	GetTenant(ctx context.Context, id string) (*Tenant, error)
	ListTenants(ctx context.Context) ([]Tenant, error)
	CreateSMTPUser(ctx context.Context, u SMTPUser) error
	GetSMTPUser(ctx context.Context, username string) (*SMTPUser, error)
	ListSMTPUsers(ctx context.Context, tenantID string) ([]SMTPUser, error)
	CreateAPIKey(ctx context.Context, k APIKey) error
	GetAPIKey(ctx context.Context, id string) (*APIKey, error)
	ListAPIKeys(ctx context.Context, tenantID string) ([]APIKey, error)

	Domains
	Credentials
	Webhooks // webhooks.go
	Alerts
	DMARC

	Close() error
}

// NewMessage is a message with its deliveries, ready to be inserted.
//
// With an Idempotency key, InsertMessages first looks the key up for the
// message's tenant: if it exists and has not expired, nothing is inserted
// and Existing is set to the stored record (the caller compares
// RequestHash itself); otherwise the message is inserted and the key
// recorded with Response, in the same transaction.
type NewMessage struct {
	Message     *Message
	Deliveries  []*Delivery
	Idempotency *IdempotencyRecord
	Existing    *IdempotencyRecord // set by InsertMessages on a repeat
}

// IdempotencyRecord remembers the answer to a request made with a key.
type IdempotencyRecord struct {
	Key         string
	RequestHash string
	MessageID   string
	Response    []byte
	CreatedAt   time.Time
	ExpiresAt   time.Time
}

// Outcome is the result of one attempt for one delivery.
type Outcome struct {
	DeliveryID int64
	State      State     // the new state (deferred, delivered, bounced, ...)
	NextAt     time.Time // for deferred
	Class      string
	Phase      string
	Reply      smtpproto.Reply
	Error      string // local error text when there was no reply
	MX, IP     string
	SourceIP   string // the local address the attempt left from (a source pool's), if chosen
	Provider   string
	TLS        bool
	TLSDetail  TLSDetail // version, cipher, policy and certificate check of the session
	StartedAt  time.Time
	Duration   time.Duration
	Event      string // event type to log
}

// TransitionSpec selects deliveries and says where they go.
type TransitionSpec struct {
	TenantID    string // empty: all tenants (admin)
	MessageIDs  []string
	DeliveryIDs []int64
	Domain      string
	All         bool // required when no IDs and no domain are given
	// Op is the operation; it must be in the transition table.
	Op Op
	// From narrows the states moved; empty means every state the table
	// lets Op move (FromStates). A state outside that set is refused.
	From  []State
	To    State  // empty: the op's target; another state is refused
	Event string // empty: the op's event
	Now   time.Time
	// NextAt sets next_attempt_at (for queued: when it is due).
	NextAt time.Time
	// ExpiresAt, when set, gives the deliveries a fresh lifetime (requeue).
	ExpiresAt time.Time
	Detail    string
}

// DeliveryFilter selects deliveries for listings. Zero fields do not filter.
type DeliveryFilter struct {
	TenantID  string
	States    []State
	Domain    string
	Recipient string // exact address, or a substring when it holds no '@'
	MessageID string
	Tag       string
	Class     string // last class
	Code      int    // last reply code
	Provider  string
	OlderThan time.Time // created before
	Since     time.Time // created at or after
	AfterID   int64     // cursor: deliveries with a larger ID
	// Newest lists newest first (the dashboard's activity list); AfterID
	// then does not apply and BeforeID is the cursor.
	Newest   bool
	BeforeID int64 // deliveries with a smaller ID
	Limit    int
}

// EventFilter selects events. Zero fields do not filter. Events come
// oldest first, or newest first with Desc.
type EventFilter struct {
	TenantID    string
	MessageID   string
	Recipient   string
	Type        string
	Domain      string // recipient domain
	Destination string // provider the attempt went to (attempt events only)
	Tag         string // one of the message's tags
	Since       time.Time
	Until       time.Time // before, not at
	AfterID     int64     // cursor: events with a larger ID
	BeforeID    int64     // cursor: events with a smaller ID
	Desc        bool
	Limit       int
}

// Suppression says one tenant must not mail an address, a domain or a
// pattern. Kind is "address", "domain", "pattern" (a * glob) or "regex".
type Suppression struct {
	TenantID  string    `json:"tenant"`
	Kind      string    `json:"kind"`
	Value     string    `json:"value"`
	Reason    string    `json:"reason"` // hard_bounce, unsubscribe, complaint, on_hold, manual
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	Detail    string    `json:"detail,omitempty"` // why: the reply or event that caused it
}

// FoldAddress is the form address entries are matched in: lower case in
// the whole address (Unicode, unlike SQLite's ASCII-only lower()), so that
// a change of case does not get around a suppression.
func FoldAddress(addr string) string { return strings.ToLower(addr) }

// Tenant owns messages, users, keys and (later) domains.
type Tenant struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
}

// SMTPUser is a submission login.
type SMTPUser struct {
	Username     string `json:"username"`
	TenantID     string `json:"tenant"`
	PasswordHash string `json:"-"`
	DefaultLane  Lane   `json:"default_lane"`
	// IdempotentMessageID makes the Message-ID header this user's
	// idempotency key: a resubmission of the same Message-ID within the
	// retention window is answered with the first queue id, not queued.
	IdempotentMessageID bool `json:"idempotent_message_id,omitempty"`
	// SendDSN sends the envelope sender a delivery status notification
	// when this user's mail finally fails.
	SendDSN bool `json:"send_dsn,omitempty"`
	// Domains, when not empty, are the only sender domains (envelope and
	// From) this user may use.
	Domains   []string  `json:"domains,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// APIKey is an HTTP API credential; only its hash is stored.
type APIKey struct {
	ID        string    `json:"id"`
	TenantID  string    `json:"tenant"`
	Name      string    `json:"name"`
	Hash      string    `json:"-"`
	Scopes    []string  `json:"scopes"`
	CreatedAt time.Time `json:"created_at"`
	// Prefix is the visible start of the secret ("ph_live_<id>" or
	// "ph_test_<id>"), shown in listings.
	Prefix string `json:"prefix"`
	// Domains, when not empty, are the only sender domains the key may use.
	Domains []string `json:"domains,omitempty"`
	// Sandbox keys' mail is accepted and stored but never sent.
	Sandbox    bool      `json:"sandbox,omitempty"`
	ExpiresAt  time.Time `json:"expires_at,omitzero"`
	LastUsedAt time.Time `json:"last_used_at,omitzero"`
	// CreatedBy is the account that made the key ("" for the CLI).
	CreatedBy string `json:"created_by,omitempty"`
}

// WriterStats is what a store's single writer has done since it opened:
// commits (group commits), requests (writes they carried) and the time
// spent running the requests and committing them (the fsync included).
// Busy/elapsed near 1 means the writer is the bound.
type WriterStats struct {
	Commits, Requests uint64
	Exec, Commit      time.Duration
}
