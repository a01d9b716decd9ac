// Package api serves posthorn's HTTP interfaces: the admin API on a Unix
// socket (what the CLI talks to; access is the socket's file permissions)
// and the public /v1 API on the HTTP listener. Request and response types
// here are shared with the CLI's client (internal/api/adminclient). The
// queue operations both APIs call live in internal/queue/ops.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/posthorn/posthorn/internal/accept"
	"github.com/posthorn/posthorn/internal/domain"
	"github.com/posthorn/posthorn/internal/events"
	"github.com/posthorn/posthorn/internal/queue"
	"github.com/posthorn/posthorn/internal/queue/ops"
	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/suppress"
	"github.com/posthorn/posthorn/internal/tenant"
)

// Admin serves the admin API.
type Admin struct {
	Store        store.Store
	Ops          *ops.QueueOps
	Tenants      *tenant.Manager
	Suppress     *suppress.List
	Domains      *domain.Service
	Alerts       AlertService
	Stats        func() any
	Destinations func() any
	Live         *events.Broadcaster // committed events, for the events stream
	Log          *slog.Logger

	// Accept queues posthorn sendmail's messages as SendmailTenant (name
	// or id; "" the default tenant).
	Accept         *accept.Pipeline
	SendmailTenant string
	MaxMessageSize int // bytes a sendmail message may have
}

// Handler returns the admin routes.
func (a *Admin) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /admin/v1/status", a.status)
	mux.HandleFunc("GET /admin/v1/queue", a.listQueue)
	mux.HandleFunc("GET /admin/v1/queue/{id}", a.showMessage)
	mux.HandleFunc("GET /admin/v1/queue/{id}/body", a.messageBody)
	mux.HandleFunc("GET /admin/v1/queue/{id}/why", a.why)    // why.go
	mux.HandleFunc("GET /admin/v1/queue/summary", a.summary) // why.go
	mux.HandleFunc("POST /admin/v1/queue/flush", a.op(a.Ops.Flush))
	mux.HandleFunc("POST /admin/v1/queue/delete", a.op(a.Ops.Delete))
	mux.HandleFunc("POST /admin/v1/queue/hold", a.op(a.Ops.Hold))
	mux.HandleFunc("POST /admin/v1/queue/release", a.op(a.Ops.Release))
	mux.HandleFunc("POST /admin/v1/queue/requeue", a.requeue)
	mux.HandleFunc("GET /admin/v1/destinations", a.destinations)
	mux.HandleFunc("POST /admin/v1/destinations/{key}/{action}", a.pauseDestination) // destinations_pause.go
	mux.HandleFunc("GET /admin/v1/events", a.listEvents)
	mux.HandleFunc("GET /admin/v1/events/stream", a.streamEvents)
	mux.HandleFunc("GET /admin/v1/reports/deliverability", a.report)
	mux.HandleFunc("GET /admin/v1/dlq", a.listDLQ)
	mux.HandleFunc("GET /admin/v1/dlq/{id}", a.showMessage)
	mux.HandleFunc("POST /admin/v1/dlq/retry", a.op(func(ctx context.Context, sel ops.Selection) (*ops.OpResult, error) {
		return a.Ops.Requeue(ctx, sel, true)
	}))
	mux.HandleFunc("POST /admin/v1/dlq/purge", a.op(a.Ops.Purge))
	mux.HandleFunc("GET /admin/v1/suppressions", a.listSuppressions)
	mux.HandleFunc("POST /admin/v1/suppressions", a.addSuppression)
	mux.HandleFunc("DELETE /admin/v1/suppressions", a.removeSuppression)
	mux.HandleFunc("POST /admin/v1/suppressions/import", a.importSuppressions)
	mux.HandleFunc("GET /admin/v1/tenants", a.listTenants)
	mux.HandleFunc("POST /admin/v1/tenants", a.createTenant)
	mux.HandleFunc("GET /admin/v1/users", a.listUsers)
	mux.HandleFunc("POST /admin/v1/users", a.createUser)
	mux.HandleFunc("GET /admin/v1/apikeys", a.listKeys)
	mux.HandleFunc("POST /admin/v1/apikeys", a.createKey)
	a.domainRoutes(mux)
	a.accountRoutes(mux)
	a.webhookRoutes(mux) // webhooks.go: webhooks and alerts
	return mux
}

// destinations lists every destination with live state or pending mail
// (?tenant= narrows to one tenant's pending mail).
func (a *Admin) destinations(w http.ResponseWriter, r *http.Request) {
	tenantID, err := a.resolveTenant(r.Context(), r.URL.Query().Get("tenant"))
	var rows []ops.DestinationRow
	if err == nil {
		live, _ := a.Destinations().([]queue.DestinationInfo)
		rows, err = a.Ops.Destinations(r.Context(), tenantID, live)
	}
	if err != nil {
		a.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": rows})
}

// ErrorBody is every error response.
type ErrorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, kind, msg string) {
	var b ErrorBody
	b.Error.Code, b.Error.Message = kind, msg
	writeJSON(w, code, b)
}

func (a *Admin) fail(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", err.Error())
	case errors.Is(err, store.ErrConflict):
		writeError(w, http.StatusConflict, "conflict", err.Error())
	case errors.Is(err, ops.ErrNoSelection), errors.As(err, new(*badRequest)):
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
	default:
		a.Log.Error("admin api", "err", err)
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
	}
}

type badRequest struct{ msg string }

func (e *badRequest) Error() string { return e.msg }

func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 64<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &badRequest{"bad request body: " + err.Error()}
	}
	return nil
}

func (a *Admin) status(w http.ResponseWriter, r *http.Request) {
	counts, err := a.Store.CountDeliveries(r.Context(), "")
	if err != nil {
		a.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"deliveries": counts, "scheduler": a.Stats()})
}

// QueueList is the answer to a queue listing: newest first, at most
// limit items; NextCursor, when set, fetches the older ones that did not
// fit (pass it as ?cursor=).
type QueueList struct {
	Items      []store.Delivery `json:"items"`
	Count      int              `json:"count"`
	NextCursor string           `json:"next_cursor,omitempty"`
}

// ParseQueueFilter reads a listing's query parameters: state (comma
// separated, or "all"), domain, recipient, older_than (Go duration),
// tenant, limit, after.
func ParseQueueFilter(q map[string][]string, now time.Time) (store.DeliveryFilter, error) {
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	f := store.DeliveryFilter{Domain: get("domain"), Recipient: get("recipient"), TenantID: get("tenant"), Limit: 1000,
		Class: get("class"), Provider: get("provider")}
	if s := get("code"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 200 || n > 599 {
			return f, &badRequest{"code: want a reply code such as 421"}
		}
		f.Code = n
	}
	switch s := get("state"); s {
	case "":
		f.States = store.PendingStates
	case "all":
	default:
		for _, p := range strings.Split(s, ",") {
			st := store.State(strings.TrimSpace(p))
			if !st.Valid() {
				return f, &badRequest{fmt.Sprintf("unknown state %q; valid states: %s, or all", p, strings.Join(stateNames(), ", "))}
			}
			f.States = append(f.States, st)
		}
	}
	if s := get("older_than"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			return f, &badRequest{"older_than: " + err.Error()}
		}
		f.OlderThan = now.Add(-d)
	}
	if s := get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return f, &badRequest{"limit: want a number"}
		}
		f.Limit = n
	}
	if s := get("after"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return f, &badRequest{"after: want a delivery id"}
		}
		f.AfterID = n
	}
	return f, nil
}

func stateNames() []string {
	var out []string
	for _, st := range store.AllStates {
		out = append(out, string(st))
	}
	return out
}

// resolveTenant turns a tenant name or id into the id ("" stays "").
func (a *Admin) resolveTenant(ctx context.Context, nameOrID string) (string, error) {
	if nameOrID == "" {
		return "", nil
	}
	t, err := a.Tenants.Resolve(ctx, nameOrID)
	if err != nil {
		return "", fmt.Errorf("%w (see posthorn tenant list)", err)
	}
	return t.ID, nil
}

func (a *Admin) listQueue(w http.ResponseWriter, r *http.Request) { a.writeList(w, r, r.URL.Query()) }

// writeList answers a delivery listing filtered by q, newest first:
// ?limit= (default 1000, 0 no limit) items, and a next_cursor for the
// older ones when more match (?cursor= fetches them).
func (a *Admin) writeList(w http.ResponseWriter, r *http.Request, q url.Values) {
	f, err := ParseQueueFilter(q, time.Now())
	if err == nil {
		f.TenantID, err = a.resolveTenant(r.Context(), f.TenantID)
	}
	if err != nil {
		a.fail(w, err)
		return
	}
	list, err := PageDeliveries(r.Context(), a.Store, f, q.Get("cursor"))
	if err != nil {
		a.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, list)
}

// PageDeliveries lists deliveries matching f newest first: at most
// f.Limit (0: all), continuing below cursor (a previous NextCursor; ""
// starts at the newest), with NextCursor set when more match.
func PageDeliveries(ctx context.Context, st store.Store, f store.DeliveryFilter, cursor string) (QueueList, error) {
	f.Newest = true
	if cursor != "" {
		n, err := strconv.ParseInt(cursor, 10, 64)
		if err != nil || n <= 0 {
			return QueueList{}, &badRequest{"cursor: want the next_cursor of a previous listing"}
		}
		f.BeforeID = n
	}
	limit := f.Limit
	if limit > 0 {
		f.Limit = limit + 1 // one more tells whether there are more
	}
	ds, err := st.ListDeliveries(ctx, f)
	if err != nil {
		return QueueList{}, err
	}
	list := QueueList{Items: ds}
	if limit > 0 && len(ds) > limit {
		list.Items = ds[:limit]
		list.NextCursor = strconv.FormatInt(ds[limit-1].ID, 10)
	}
	if list.Items == nil {
		list.Items = []store.Delivery{}
	}
	list.Count = len(list.Items)
	return list, nil
}

func (a *Admin) listDLQ(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	q.Set("state", string(store.DeadLetter))
	a.writeList(w, r, q)
}

// MessageDetail is everything known about one message.
type MessageDetail struct {
	Message    *store.Message   `json:"message"`
	Headers    string           `json:"headers"`
	Deliveries []store.Delivery `json:"deliveries"`
	Attempts   []store.Attempt  `json:"attempts"`
	Events     []store.Event    `json:"events"`
}

// LoadMessageDetail gathers a message with its deliveries, attempts and
// events; tenantID "" sees every tenant.
func LoadMessageDetail(ctx context.Context, st store.Store, tenantID, id string) (*MessageDetail, error) {
	m, err := st.GetMessage(ctx, tenantID, id, true)
	if err != nil {
		return nil, err
	}
	d := &MessageDetail{Message: m}
	hdr := m.Body
	if i := strings.Index(string(m.Body), "\r\n\r\n"); i >= 0 {
		hdr = m.Body[:i+2]
	}
	d.Headers = string(hdr)
	if d.Deliveries, err = st.MessageDeliveries(ctx, id); err != nil {
		return nil, err
	}
	if d.Attempts, err = st.Attempts(ctx, id); err != nil {
		return nil, err
	}
	if d.Events, err = st.Events(ctx, store.EventFilter{MessageID: id}); err != nil {
		return nil, err
	}
	return d, nil
}

func (a *Admin) showMessage(w http.ResponseWriter, r *http.Request) {
	d, err := LoadMessageDetail(r.Context(), a.Store, "", r.PathValue("id"))
	if err != nil {
		a.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

// messageBody answers the stored message exactly as it is queued (what
// postcat -bq shows): headers posthorn added, signature and body.
func (a *Admin) messageBody(w http.ResponseWriter, r *http.Request) {
	m, err := a.Store.GetMessage(r.Context(), "", r.PathValue("id"), true)
	if err != nil {
		a.fail(w, err)
		return
	}
	if m == nil {
		a.fail(w, store.ErrNotFound)
		return
	}
	if !m.BodyPrunedAt.IsZero() {
		a.fail(w, &badRequest{"the body of " + m.ID + " was pruned by body_retention on " + m.BodyPrunedAt.Format(time.RFC3339)})
		return
	}
	w.Header().Set("Content-Type", "message/rfc822")
	w.Write(m.Body)
}

func (a *Admin) op(fn func(context.Context, ops.Selection) (*ops.OpResult, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var sel ops.Selection
		err := decode(r, &sel)
		if err == nil {
			sel.TenantID, err = a.resolveTenant(r.Context(), sel.TenantID)
		}
		if err != nil {
			a.fail(w, err)
			return
		}
		res, err := fn(r.Context(), sel)
		if err != nil {
			a.fail(w, err)
			return
		}
		writeJSON(w, http.StatusOK, res)
	}
}

// RequeueRequest is a selection plus whether to take only dead letters.
type RequeueRequest struct {
	ops.Selection
	Dead bool `json:"dead,omitempty"`
}

func (a *Admin) requeue(w http.ResponseWriter, r *http.Request) {
	var req RequeueRequest
	err := decode(r, &req)
	if err == nil {
		req.TenantID, err = a.resolveTenant(r.Context(), req.TenantID)
	}
	if err != nil {
		a.fail(w, err)
		return
	}
	res, err := a.Ops.Requeue(r.Context(), req.Selection, req.Dead)
	if err != nil {
		a.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (a *Admin) listTenants(w http.ResponseWriter, r *http.Request) {
	ts, err := a.Store.ListTenants(r.Context())
	if err != nil {
		a.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": ts})
}

// TenantRequest creates a tenant.
type TenantRequest struct {
	Name string `json:"name"`
}

func (a *Admin) createTenant(w http.ResponseWriter, r *http.Request) {
	var req TenantRequest
	if err := decode(r, &req); err != nil {
		a.fail(w, err)
		return
	}
	t, err := a.Tenants.CreateTenant(r.Context(), req.Name)
	if err != nil {
		a.fail(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, t)
}

func (a *Admin) listUsers(w http.ResponseWriter, r *http.Request) {
	tenantID, err := a.tenantFilter(r)
	if err != nil {
		a.fail(w, err)
		return
	}
	us, err := a.Store.ListSMTPUsers(r.Context(), tenantID)
	if err != nil {
		a.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": us})
}

// UserRequest creates an SMTP user.
type UserRequest struct {
	Tenant   string `json:"tenant"`
	Username string `json:"username"`
	Password string `json:"password,omitempty"`
	Lane     string `json:"lane,omitempty"`
	// MessageIDIdempotency treats the user's Message-ID headers as
	// idempotency keys.
	MessageIDIdempotency bool `json:"message_id_idempotency,omitempty"`
	// DSN sends the envelope sender a bounce notice when mail finally fails.
	DSN bool `json:"dsn,omitempty"`
	// Domains restricts the user to these sender domains.
	Domains []string `json:"domains,omitempty"`
}

// UserResponse shows the password once.
type UserResponse struct {
	Tenant   string   `json:"tenant"`
	Username string   `json:"username"`
	Password string   `json:"password"`
	Lane     string   `json:"lane"`
	Domains  []string `json:"domains,omitempty"`
}

func (a *Admin) createUser(w http.ResponseWriter, r *http.Request) {
	var req UserRequest
	if err := decode(r, &req); err != nil {
		a.fail(w, err)
		return
	}
	lane, err := store.ParseLane(req.Lane)
	if err != nil {
		a.fail(w, &badRequest{err.Error()})
		return
	}
	t, err := a.Tenants.Resolve(r.Context(), req.Tenant)
	if err != nil {
		a.fail(w, err)
		return
	}
	u, pass, err := a.Tenants.AddUser(r.Context(), t.ID, req.Username, req.Password, lane, tenant.WithMessageIDIdempotency(req.MessageIDIdempotency), tenant.WithDSN(req.DSN), tenant.WithDomains(req.Domains))
	if errors.Is(err, store.ErrConflict) {
		a.fail(w, err)
		return
	}
	if err != nil {
		a.fail(w, &badRequest{err.Error()})
		return
	}
	writeJSON(w, http.StatusCreated, UserResponse{Tenant: t.Name, Username: u.Username, Password: pass, Lane: string(lane), Domains: u.Domains})
}

func (a *Admin) listKeys(w http.ResponseWriter, r *http.Request) {
	tenantID, err := a.tenantFilter(r)
	if err != nil {
		a.fail(w, err)
		return
	}
	ks, err := a.Store.ListAPIKeys(r.Context(), tenantID)
	if err != nil {
		a.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": ks})
}

// KeyRequest creates an API key.
type KeyRequest struct {
	Tenant    string     `json:"tenant"`
	Name      string     `json:"name"`
	Scopes    []string   `json:"scopes"`
	Domains   []string   `json:"domains,omitempty"`
	Sandbox   bool       `json:"sandbox,omitempty"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// KeyResponse shows the key once.
type KeyResponse struct {
	ID        string    `json:"id"`
	Prefix    string    `json:"prefix"`
	Tenant    string    `json:"tenant"`
	Name      string    `json:"name"`
	Scopes    []string  `json:"scopes"`
	Domains   []string  `json:"domains,omitempty"`
	Sandbox   bool      `json:"sandbox,omitempty"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	APIKey    string    `json:"api_key"`
}

func (a *Admin) createKey(w http.ResponseWriter, r *http.Request) {
	var req KeyRequest
	if err := decode(r, &req); err != nil {
		a.fail(w, err)
		return
	}
	t, err := a.Tenants.Resolve(r.Context(), req.Tenant)
	if err != nil {
		a.fail(w, err)
		return
	}
	if len(req.Scopes) == 0 {
		req.Scopes = []string{tenant.ScopeSend, tenant.ScopeRead}
	}
	spec := tenant.KeySpec{TenantID: t.ID, Name: req.Name, Scopes: req.Scopes, Domains: req.Domains, Sandbox: req.Sandbox}
	if req.ExpiresAt != nil {
		spec.ExpiresAt = *req.ExpiresAt
	}
	secret, k, err := a.Tenants.CreateKey(r.Context(), spec)
	if err != nil {
		a.fail(w, &badRequest{err.Error()})
		return
	}
	writeJSON(w, http.StatusCreated, KeyResponse{ID: k.ID, Prefix: k.Prefix, Tenant: t.Name, Name: k.Name, Scopes: k.Scopes,
		Domains: k.Domains, Sandbox: k.Sandbox, ExpiresAt: k.ExpiresAt, APIKey: secret})
}

// SuppressionRequest adds or removes an entry: an address, a domain, a
// glob ("*@example.com") or "/regexp/".
type SuppressionRequest struct {
	Tenant string `json:"tenant,omitempty"`
	Entry  string `json:"entry"`
	Reason string `json:"reason,omitempty"` // default manual
	Detail string `json:"detail,omitempty"`
}

func (a *Admin) listSuppressions(w http.ResponseWriter, r *http.Request) {
	tenantID := ""
	if name := r.URL.Query().Get("tenant"); name != "" {
		t, err := a.Tenants.Resolve(r.Context(), name)
		if err != nil {
			a.fail(w, err)
			return
		}
		tenantID = t.ID
	}
	// With no limit (or limit=0, the export) the list is streamed as the
	// store reads it; a page (?limit=, ?cursor=) is sorted newest first.
	if l := r.URL.Query().Get("limit"); l == "" || l == "0" {
		writeSuppressions(r.Context(), w, a.Store, tenantID, func(err error) { a.fail(w, err) })
		return
	}
	ss, err := a.Store.ListSuppressions(r.Context(), tenantID)
	if err != nil {
		a.fail(w, err)
		return
	}
	// Newest first; ?limit= (default 1000, 0 all) and ?cursor= (how many
	// newer entries were shown already) page through the rest.
	sort.SliceStable(ss, func(i, j int) bool { return ss[i].CreatedAt.After(ss[j].CreatedAt) })
	limit, from := 1000, 0
	for name, dst := range map[string]*int{"limit": &limit, "cursor": &from} {
		if v := r.URL.Query().Get(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				a.fail(w, &badRequest{name + ": want a number"})
				return
			}
			*dst = n
		}
	}
	total := len(ss)
	ss = ss[min(from, total):]
	res := map[string]any{"total": total}
	if limit > 0 && len(ss) > limit {
		ss = ss[:limit]
		res["next_cursor"] = strconv.Itoa(from + limit)
	}
	if ss == nil {
		ss = []store.Suppression{}
	}
	res["items"], res["count"] = ss, len(ss)
	writeJSON(w, http.StatusOK, res)
}

func (a *Admin) suppressionRequest(w http.ResponseWriter, r *http.Request) (*SuppressionRequest, string, bool) {
	var req SuppressionRequest
	if err := decode(r, &req); err != nil {
		a.fail(w, err)
		return nil, "", false
	}
	t, err := a.Tenants.Resolve(r.Context(), req.Tenant)
	if err != nil {
		a.fail(w, err)
		return nil, "", false
	}
	return &req, t.ID, true
}

func (a *Admin) addSuppression(w http.ResponseWriter, r *http.Request) {
	req, tenantID, ok := a.suppressionRequest(w, r)
	if !ok {
		return
	}
	if req.Reason == "" {
		req.Reason = suppress.Manual
	}
	s, err := suppress.Parse(tenantID, req.Entry, req.Reason)
	if err != nil {
		a.fail(w, &badRequest{err.Error()})
		return
	}
	s.Detail, s.CreatedAt = req.Detail, time.Now().UTC() // set here: Add fills in its own copy
	if err := a.Suppress.Add(r.Context(), s); err != nil {
		a.fail(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, s)
}

func (a *Admin) removeSuppression(w http.ResponseWriter, r *http.Request) {
	req, tenantID, ok := a.suppressionRequest(w, r)
	if !ok {
		return
	}
	found, err := a.Suppress.Remove(r.Context(), tenantID, req.Entry)
	if err != nil {
		a.fail(w, &badRequest{err.Error()})
		return
	}
	if !found {
		a.fail(w, fmt.Errorf("no suppression entry %q in tenant %s (see posthorn suppression list): %w", req.Entry, tenantID, store.ErrNotFound))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"removed": req.Entry})
}

// ImportRequest adds many entries at once (one write).
type ImportRequest struct {
	Tenant  string               `json:"tenant,omitempty"`
	Entries []SuppressionRequest `json:"entries"`
}

// ImportResponse says how many entries were added and which were refused.
type ImportResponse struct {
	Added  int      `json:"added"`
	Errors []string `json:"errors,omitempty"` // "line: reason", at most 100
}

func (a *Admin) importSuppressions(w http.ResponseWriter, r *http.Request) {
	var req ImportRequest
	if err := decode(r, &req); err != nil {
		a.fail(w, err)
		return
	}
	t, err := a.Tenants.Resolve(r.Context(), req.Tenant)
	if err != nil {
		a.fail(w, err)
		return
	}
	var res ImportResponse
	ss := make([]store.Suppression, 0, len(req.Entries))
	now := time.Now().UTC()
	for i, e := range req.Entries {
		reason := e.Reason
		if reason == "" {
			reason = suppress.Manual
		}
		s, err := suppress.Parse(t.ID, e.Entry, reason)
		if err != nil {
			if len(res.Errors) < 100 {
				res.Errors = append(res.Errors, fmt.Sprintf("%d: %s: %v", i+1, e.Entry, err))
			}
			continue
		}
		s.Detail, s.CreatedAt = e.Detail, now
		ss = append(ss, s)
	}
	if err := a.Suppress.Add(r.Context(), ss...); err != nil {
		a.fail(w, err)
		return
	}
	res.Added = len(ss)
	writeJSON(w, http.StatusOK, res)
}
