// Package abuse protects what leaves posthorn from a tenant's own
// compromised accounts: per-sender and per-tenant quotas, and a detector
// that holds a sender's new mail when its traffic jumps.
//
// A sender (principal) is an SMTP user ("smtp:NAME") or an API key
// ("apikey:ID"); mail from trusted networks without AUTH has no sender and
// only counts against its tenant's quota.
//
// Decisions (docs/abuse.md):
//   - Quotas count messages (not recipients) in fixed hours and days
//     (aligned like a clock's, with the configurable hour length); a
//     message over quota is refused (SMTP 452 4.7.1, HTTP 429 with
//     Retry-After until the window ends) and not queued. A message
//     refused later in the pipeline gives its place back.
//   - The detector keeps each sender's traffic in memory: the messages of
//     the last window and hourly counts over the baseline (a week). It is
//     not rebuilt from the store at start (API keys are not recorded on
//     messages, and a week of counts per sender is not cheap to rebuild):
//     a sender's baseline starts again after a restart, and the rate rule
//     waits for one complete hour of history. Flags are rebuilt: they are
//     the alert_fired events without a later alert_resolved.
//   - A flagged sender's new mail is accepted into held (so a client that
//     was compromised learns nothing) with an alert_fired event carrying
//     the figures, until an operator releases the sender
//     (posthorn user release NAME [--release-held]; the held mail can also
//     be released with posthorn queue release).
package abuse

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/posthorn/posthorn/internal/accept"
	"github.com/posthorn/posthorn/internal/store"
)

// The detector writes the store's alert events (they reach webhooks
// through the event log like every other event).
const (
	EventAlertFired    = store.EventAlertFired
	EventAlertResolved = store.EventAlertResolved
)

// Config is the detector's and the quotas' settings.
type Config struct {
	Rules Rules
	// Default quotas for every sender and every tenant; Users (by
	// principal, e.g. "smtp:alice" or "apikey:ID") and Tenants (by ID)
	// override them.
	UserQuota   Quota
	TenantQuota Quota
	Users       map[string]Quota
	Tenants     map[string]Quota
}

// EventStore is what the detector needs of the store.
type EventStore interface {
	RecordEvent(ctx context.Context, e store.Event) error
	Events(ctx context.Context, f store.EventFilter) ([]store.Event, error)
}

// Guard is the accept check for quotas and the detector.
type Guard struct {
	cfg    Config
	events EventStore
	log    *slog.Logger
	now    func() time.Time

	mu        sync.Mutex
	users     map[string]*sender
	tenants   map[string]*counter
	set       map[string]Quota // set by the operator (quotas.json), by sender
	quotaFile string
	// sentBy remembers the sender of recent messages for their bounces
	// (bounded: the oldest are forgotten first).
	sentBy    map[string]string
	sentOrder []string
	sentNext  int
}

// maxRemembered bounds how many messages' senders are remembered for
// the bounce rule (about 10 MB).
const maxRemembered = 200000

// sender is one principal's state.
type sender struct {
	quota counter
	hist  *history
	alert *Alert              // set while flagged
	held  map[string]struct{} // message IDs held since flagged
}

// New returns a guard. now is the clock (time.Now outside tests).
func New(cfg Config, events EventStore, log *slog.Logger, now func() time.Time) *Guard {
	if cfg.Rules.Hour <= 0 {
		cfg.Rules.Hour = time.Hour
	}
	if cfg.Rules.Window <= 0 {
		cfg.Rules.Window = 10 * time.Minute
	}
	return &Guard{cfg: cfg, events: events, log: log, now: now, users: map[string]*sender{}, tenants: map[string]*counter{}}
}

// Principal names the sender of a submission ("" for none).
func Principal(sub *accept.Submission) string {
	switch {
	case sub.SMTPUser != "":
		return "smtp:" + sub.SMTPUser
	case sub.APIKey != "":
		return "apikey:" + sub.APIKey
	}
	return ""
}

const errQuota = "sending quota exceeded"

// Check implements accept.Check.
func (g *Guard) Check(ctx context.Context, in *accept.CheckInput) (*accept.Verdict, error) {
	sub := in.Sub
	p := Principal(sub)
	now := g.now()
	hour := g.cfg.Rules.Hour

	g.mu.Lock()
	tc := g.tenants[sub.TenantID]
	if tc == nil {
		tc = &counter{}
		g.tenants[sub.TenantID] = tc
	}
	tc.roll(now, hour)
	if over, wait := tc.over(g.tenantQuota(sub.TenantID), now); over {
		g.mu.Unlock()
		return nil, quotaError("tenant", wait)
	}
	var s *sender
	if p != "" {
		s = g.users[p]
		if s == nil {
			s = &sender{hist: newHistory(now)}
			g.users[p] = s
		}
		s.quota.roll(now, hour)
		if over, wait := s.quota.over(g.userQuota(p), now); over {
			g.mu.Unlock()
			return nil, quotaError("user", wait)
		}
		s.quota.add()
	}
	tc.add()
	th, td := tc.hour, tc.day
	var sh, sd int64
	var fired *Alert
	hold := false
	if s != nil {
		sh, sd = s.quota.hour, s.quota.day
		if s.alert == nil {
			if a := s.hist.observe(&g.cfg.Rules, now, domainsOf(sub.Recipients)); a != nil {
				a.Principal, a.Tenant = p, sub.TenantID
				s.alert, s.held, fired = a, map[string]struct{}{}, a
			}
		}
		if s.alert != nil {
			hold = true
			s.held[in.ID] = struct{}{}
		}
	}
	g.mu.Unlock()

	if fired != nil {
		g.log.Warn("sender flagged: new mail is held until an operator releases it", "principal", p, "tenant", sub.TenantID, "why", fired.summary())
		g.record(ctx, EventAlertFired, sub.TenantID, fired)
	}
	v := &accept.Verdict{Done: func(stored bool) {
		g.mu.Lock()
		defer g.mu.Unlock()
		if stored {
			if p != "" {
				g.remember(in.ID, p)
			}
			return
		}
		tc.undo(th, td)
		if s != nil {
			s.quota.undo(sh, sd)
			delete(s.held, in.ID)
		}
	}}
	if hold {
		v.Hold, v.Tags = true, []string{"held:abuse"}
	}
	return v, nil
}

// remember notes the sender of a stored message (g.mu held).
func (g *Guard) remember(id, p string) {
	if g.sentBy == nil {
		g.sentBy = map[string]string{}
	}
	if len(g.sentOrder) < maxRemembered {
		g.sentOrder = append(g.sentOrder, id)
	} else {
		delete(g.sentBy, g.sentOrder[g.sentNext])
		g.sentOrder[g.sentNext] = id
		g.sentNext = (g.sentNext + 1) % maxRemembered
	}
	g.sentBy[id] = p
}

// HardBounced tells the detector that n recipients of a message finally
// hard-bounced (the scheduler's OnFailed). Messages it no longer
// remembers (older, or from before a restart) are not counted.
func (g *Guard) HardBounced(ctx context.Context, messageID, tenantID string, n int) {
	if n <= 0 {
		return
	}
	now := g.now()
	g.mu.Lock()
	p := g.sentBy[messageID]
	s := g.users[p]
	var fired *Alert
	if s != nil {
		if a := s.hist.bounced(&g.cfg.Rules, now, n); a != nil && s.alert == nil {
			a.Principal, a.Tenant = p, tenantID
			s.alert, s.held, fired = a, map[string]struct{}{}, a
		}
	}
	g.mu.Unlock()
	if fired != nil {
		g.log.Warn("sender flagged: new mail is held until an operator releases it", "principal", p, "tenant", tenantID, "why", fired.summary())
		g.record(ctx, EventAlertFired, tenantID, fired)
	}
}

func quotaError(whose string, wait time.Duration) error {
	if wait < time.Second {
		wait = time.Second
	}
	return accept.Refusal(452, "4.7.1", fmt.Sprintf("%s %s; retry in %s", whose, errQuota, wait.Round(time.Second)),
		http.StatusTooManyRequests, "quota_exceeded", wait)
}

func (g *Guard) userQuota(p string) Quota {
	if q, ok := g.set[p]; ok {
		return q
	}
	if q, ok := g.cfg.Users[p]; ok {
		return q
	}
	return g.cfg.UserQuota
}

func (g *Guard) tenantQuota(id string) Quota {
	if q, ok := g.cfg.Tenants[id]; ok {
		return q
	}
	return g.cfg.TenantQuota
}

func domainsOf(rcpts []string) []string {
	out := make([]string, 0, len(rcpts))
	for _, r := range rcpts {
		if i := strings.LastIndexByte(r, '@'); i >= 0 {
			out = append(out, strings.ToLower(r[i+1:]))
		}
	}
	return out
}

// alertDetail is the Detail of alert events.
type alertDetail struct {
	Kind     string `json:"alert"` // "sender_anomaly"
	Summary  string `json:"summary"`
	Operator bool   `json:"operator,omitempty"` // resolved by an operator
	*Alert
}

func (g *Guard) record(ctx context.Context, typ, tenant string, a *Alert) {
	b, _ := json.Marshal(alertDetail{Kind: "sender_anomaly", Summary: a.summary(), Operator: typ == EventAlertResolved, Alert: a})
	e := store.Event{At: g.now().UTC(), Type: typ, TenantID: tenant, Detail: string(b)}
	if err := g.events.RecordEvent(context.WithoutCancel(ctx), e); err != nil {
		g.log.Error("record alert event", "type", typ, "err", err)
	}
}

// Flagged lists the senders whose mail is held now.
func (g *Guard) Flagged() []FlagStatus {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []FlagStatus
	for _, s := range g.users {
		if s.alert != nil {
			out = append(out, FlagStatus{Alert: *s.alert, Held: len(s.held)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Principal < out[j].Principal })
	return out
}

// FlagStatus is one flagged sender.
type FlagStatus struct {
	Alert
	Held int `json:"held_messages"` // held since flagged (this run)
}

// Release clears a sender's flag and returns the messages held since it
// was set (in this run). ok is false when the sender was not flagged.
func (g *Guard) Release(ctx context.Context, principal string) (held []string, ok bool) {
	g.mu.Lock()
	s := g.users[principal]
	if s == nil || s.alert == nil {
		g.mu.Unlock()
		return nil, false
	}
	a := *s.alert
	for id := range s.held {
		held = append(held, id)
	}
	sort.Strings(held)
	s.alert, s.held = nil, nil
	s.hist.reset()
	g.mu.Unlock()
	a.At = g.now().UTC()
	g.record(ctx, EventAlertResolved, a.Tenant, &a)
	g.log.Info("sender released by operator", "principal", principal, "held", len(held))
	return held, true
}

// loadedAlert is one alert event read back by Load.
type loadedAlert struct {
	at    time.Time
	fired bool
	a     Alert
}

// loadAlerts reads the detector's events of type typ (of one tenant, or
// all with ""), in ID order.
func (g *Guard) loadAlerts(ctx context.Context, tenant, typ string) ([]loadedAlert, error) {
	var out []loadedAlert
	var after int64
	for {
		es, err := g.events.Events(ctx, store.EventFilter{TenantID: tenant, Type: typ, AfterID: after, Limit: 1000})
		if err != nil {
			return nil, fmt.Errorf("load alerts: %w", err)
		}
		for _, e := range es {
			var d alertDetail
			if json.Unmarshal([]byte(e.Detail), &d) == nil && d.Kind == "sender_anomaly" && d.Alert != nil && d.Principal != "" {
				out = append(out, loadedAlert{e.At, typ == EventAlertFired, *d.Alert})
			}
			after = e.ID
		}
		if len(es) < 1000 {
			return out, nil
		}
	}
}

// Load restores the flags of a previous run: alert_fired events of the
// detector without a later alert_resolved for the same sender.
func (g *Guard) Load(ctx context.Context) error {
	var all []loadedAlert
	// Alerts are read per tenant when the store lists tenants: the
	// (tenant, type) index finds them at once, where a type alone scans
	// every event (seconds before posthorn listens, with millions).
	tenants := []string{""}
	if tl, ok := g.events.(interface {
		ListTenants(context.Context) ([]store.Tenant, error)
	}); ok {
		ts, err := tl.ListTenants(ctx)
		if err != nil {
			return fmt.Errorf("load alerts: %w", err)
		}
		tenants = tenants[:0]
		for _, t := range ts {
			tenants = append(tenants, t.ID)
		}
	}
	for _, tenant := range tenants {
		for _, typ := range []string{EventAlertFired, EventAlertResolved} {
			evs, err := g.loadAlerts(ctx, tenant, typ)
			if err != nil {
				return err
			}
			all = append(all, evs...)
		}
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].at.Before(all[j].at) })
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, e := range all {
		s := g.users[e.a.Principal]
		if s == nil {
			s = &sender{hist: newHistory(now)}
			g.users[e.a.Principal] = s
		}
		if e.fired {
			a := e.a
			s.alert, s.held = &a, map[string]struct{}{}
		} else {
			s.alert, s.held = nil, nil
		}
	}
	return nil
}

// SetQuota sets (or with nil, removes) one sender's quota as the operator
// asked (posthorn user set --quota-hour/--quota-day); it overrides the
// config file and is saved in the quota file.
func (g *Guard) SetQuota(principal string, q *Quota) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	next := make(map[string]Quota, len(g.set)+1)
	for k, v := range g.set {
		next[k] = v
	}
	if q == nil {
		delete(next, principal)
	} else {
		next[principal] = *q
	}
	if g.quotaFile != "" {
		if err := saveQuotas(g.quotaFile, next); err != nil {
			return err
		}
	}
	g.set = next
	return nil
}

// QuotaOf is the quota that applies to a sender now.
func (g *Guard) QuotaOf(principal string) Quota {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.userQuota(principal)
}

// Quotas returns the operator-set quotas by sender.
func (g *Guard) Quotas() map[string]Quota {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make(map[string]Quota, len(g.set))
	for k, v := range g.set {
		out[k] = v
	}
	return out
}
