package admin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/posthorn/posthorn/internal/accept"
	"github.com/posthorn/posthorn/internal/api"
	"github.com/posthorn/posthorn/internal/domain"
	"github.com/posthorn/posthorn/internal/events"
	"github.com/posthorn/posthorn/internal/queue/ops"
	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/suppress"
	"github.com/posthorn/posthorn/internal/suppress/importcsv"
	"github.com/posthorn/posthorn/internal/tenant"
)

// Server serves the admin API.
type Server struct {
	Store        store.Store
	Ops          *ops.QueueOps
	Tenants      *tenant.Manager
	Suppress     *suppress.List
	Domains      *domain.Service
	Alerts       api.AlertService
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
func (a *Server) Handler() http.Handler {
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
	mux.HandleFunc("POST /admin/v1/destinations/{key}/{action}", a.pauseDestination) // destinations.go
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
	mux.HandleFunc("GET /admin/v1/users", listInTenant(a, a.Store.ListSMTPUsers))
	mux.HandleFunc("POST /admin/v1/users", a.createUser)
	mux.HandleFunc("GET /admin/v1/apikeys", listInTenant(a, a.Store.ListAPIKeys))
	mux.HandleFunc("POST /admin/v1/apikeys", a.createKey)
	a.domainRoutes(mux)
	a.accountRoutes(mux)
	a.webhookRoutes(mux) // webhooks.go: webhooks and alerts
	return mux
}

func (a *Server) fail(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		api.WriteError(w, http.StatusNotFound, "not_found", err.Error())
	case errors.Is(err, store.ErrConflict):
		api.WriteError(w, http.StatusConflict, "conflict", err.Error())
	case errors.Is(err, ops.ErrNoSelection), errors.As(err, new(*api.BadRequest)):
		api.WriteError(w, http.StatusBadRequest, "bad_request", err.Error())
	default:
		a.Log.Error("admin api", "err", err)
		api.WriteError(w, http.StatusInternalServerError, "internal", err.Error())
	}
}

func (a *Server) status(w http.ResponseWriter, r *http.Request) {
	counts, err := a.Store.CountDeliveries(r.Context(), "")
	if err != nil {
		a.fail(w, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"deliveries": counts, "scheduler": a.Stats()})
}

// resolveTenant turns a tenant name or id into the id ("" stays "").
func (a *Server) resolveTenant(ctx context.Context, nameOrID string) (string, error) {
	if nameOrID == "" {
		return "", nil
	}
	t, err := a.Tenants.Resolve(ctx, nameOrID)
	if err != nil {
		return "", fmt.Errorf("%w (see posthorn tenant list)", err)
	}
	return t.ID, nil
}

// tenantFilter resolves ?tenant= to a tenant id; "" when not given.
func (a *Server) tenantFilter(r *http.Request) (string, error) {
	name := r.URL.Query().Get("tenant")
	if name == "" {
		return "", nil
	}
	t, err := a.Tenants.Resolve(r.Context(), name)
	if err != nil {
		return "", err
	}
	return t.ID, nil
}

// listInTenant answers {"items": ...} with what list returns for
// ?tenant= (every tenant when absent): users, API keys, webhook endpoints.
func listInTenant[T any](a *Server, list func(ctx context.Context, tenantID string) ([]T, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tenantID, err := a.tenantFilter(r)
		var items []T
		if err == nil {
			items, err = list(r.Context(), tenantID)
		}
		if err != nil {
			a.fail(w, err)
			return
		}
		api.WriteJSON(w, http.StatusOK, map[string]any{"items": items})
	}
}

// removeInTenant removes what the path names under param (a user, an API
// key, an account), within ?tenant= when given (another tenant's is then
// not found), and answers {"removed": name}.
func (a *Server) removeInTenant(param string, remove func(ctx context.Context, tenantID, name string) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tenantID, err := a.tenantFilter(r)
		if err == nil {
			err = remove(r.Context(), tenantID, r.PathValue(param))
		}
		if err != nil {
			a.fail(w, err)
			return
		}
		api.WriteJSON(w, http.StatusOK, map[string]any{"removed": r.PathValue(param)})
	}
}

func (a *Server) listQueue(w http.ResponseWriter, r *http.Request) { a.writeList(w, r, r.URL.Query()) }

// writeList answers a delivery listing filtered by q, newest first:
// ?limit= (default 1000, 0 no limit) items, and a next_cursor for the
// older ones when more match (?cursor= fetches them).
func (a *Server) writeList(w http.ResponseWriter, r *http.Request, q url.Values) {
	f, err := api.ParseQueueFilter(q, time.Now())
	if err == nil {
		f.TenantID, err = a.resolveTenant(r.Context(), f.TenantID)
	}
	if err != nil {
		a.fail(w, err)
		return
	}
	list, err := api.PageDeliveries(r.Context(), a.Store, f, q.Get("cursor"))
	if err != nil {
		a.fail(w, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, list)
}

func (a *Server) listDLQ(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	q.Set("state", string(store.DeadLetter))
	a.writeList(w, r, q)
}

func (a *Server) showMessage(w http.ResponseWriter, r *http.Request) {
	d, err := api.LoadMessageDetail(r.Context(), a.Store, "", r.PathValue("id"))
	if err != nil {
		a.fail(w, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, d)
}

// messageBody answers the stored message exactly as it is queued (what
// postcat -bq shows): headers posthorn added, signature and body.
func (a *Server) messageBody(w http.ResponseWriter, r *http.Request) {
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
		a.fail(w, &api.BadRequest{Msg: "the body of " + m.ID + " was pruned by body_retention on " + m.BodyPrunedAt.Format(time.RFC3339)})
		return
	}
	w.Header().Set("Content-Type", "message/rfc822")
	w.Write(m.Body)
}

func (a *Server) op(fn func(context.Context, ops.Selection) (*ops.OpResult, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var sel ops.Selection
		err := api.Decode(r, &sel)
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
		api.WriteJSON(w, http.StatusOK, res)
	}
}

func (a *Server) requeue(w http.ResponseWriter, r *http.Request) {
	var req api.RequeueRequest
	err := api.Decode(r, &req)
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
	api.WriteJSON(w, http.StatusOK, res)
}

func (a *Server) listTenants(w http.ResponseWriter, r *http.Request) {
	ts, err := a.Store.ListTenants(r.Context())
	if err != nil {
		a.fail(w, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"items": ts})
}

func (a *Server) createTenant(w http.ResponseWriter, r *http.Request) {
	var req api.TenantRequest
	if err := api.Decode(r, &req); err != nil {
		a.fail(w, err)
		return
	}
	t, err := a.Tenants.CreateTenant(r.Context(), req.Name)
	if err != nil {
		a.fail(w, err)
		return
	}
	api.WriteJSON(w, http.StatusCreated, t)
}

func (a *Server) createUser(w http.ResponseWriter, r *http.Request) {
	var req api.UserRequest
	if err := api.Decode(r, &req); err != nil {
		a.fail(w, err)
		return
	}
	lane, err := store.ParseLane(req.Lane)
	if err != nil {
		a.fail(w, &api.BadRequest{Msg: err.Error()})
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
		a.fail(w, &api.BadRequest{Msg: err.Error()})
		return
	}
	api.WriteJSON(w, http.StatusCreated, api.UserResponse{Tenant: t.Name, Username: u.Username, Password: pass, Lane: string(lane), Domains: u.Domains})
}

func (a *Server) createKey(w http.ResponseWriter, r *http.Request) {
	var req api.KeyRequest
	if err := api.Decode(r, &req); err != nil {
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
		a.fail(w, &api.BadRequest{Msg: err.Error()})
		return
	}
	api.WriteJSON(w, http.StatusCreated, api.KeyResponse{ID: k.ID, Prefix: k.Prefix, Tenant: t.Name, Name: k.Name, Scopes: k.Scopes,
		Domains: k.Domains, Sandbox: k.Sandbox, ExpiresAt: k.ExpiresAt, APIKey: secret})
}

func (a *Server) listSuppressions(w http.ResponseWriter, r *http.Request) {
	tenantID, err := a.tenantFilter(r)
	if err != nil {
		a.fail(w, err)
		return
	}
	// With no limit (or limit=0, the export) the list is streamed as the
	// store reads it; a page (?limit=, ?cursor=) is sorted newest first.
	if l := r.URL.Query().Get("limit"); l == "" || l == "0" {
		api.WriteSuppressions(r.Context(), w, a.Store, tenantID, func(err error) { a.fail(w, err) })
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
				a.fail(w, &api.BadRequest{Msg: name + ": want a number"})
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
	api.WriteJSON(w, http.StatusOK, res)
}

func (a *Server) suppressionRequest(w http.ResponseWriter, r *http.Request) (*api.SuppressionRequest, string, bool) {
	var req api.SuppressionRequest
	if err := api.Decode(r, &req); err != nil {
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

func (a *Server) addSuppression(w http.ResponseWriter, r *http.Request) {
	req, tenantID, ok := a.suppressionRequest(w, r)
	if !ok {
		return
	}
	if req.Reason == "" {
		req.Reason = suppress.Manual
	}
	s, err := suppress.Parse(tenantID, req.Entry, req.Reason)
	if err != nil {
		a.fail(w, &api.BadRequest{Msg: err.Error()})
		return
	}
	s.Detail, s.CreatedAt = req.Detail, time.Now().UTC() // set here: Add fills in its own copy
	if err := a.Suppress.Add(r.Context(), s); err != nil {
		a.fail(w, err)
		return
	}
	api.WriteJSON(w, http.StatusCreated, s)
}

func (a *Server) removeSuppression(w http.ResponseWriter, r *http.Request) {
	req, tenantID, ok := a.suppressionRequest(w, r)
	if !ok {
		return
	}
	found, err := a.Suppress.Remove(r.Context(), tenantID, req.Entry)
	if err != nil {
		a.fail(w, &api.BadRequest{Msg: err.Error()})
		return
	}
	if !found {
		a.fail(w, fmt.Errorf("no suppression entry %q in tenant %s (see posthorn suppression list): %w", req.Entry, tenantID, store.ErrNotFound))
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"removed": req.Entry})
}

func (a *Server) importSuppressions(w http.ResponseWriter, r *http.Request) {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == importcsv.ContentType {
		a.importSuppressionsCSV(w, r)
		return
	}
	var req api.ImportRequest
	if err := api.Decode(r, &req); err != nil {
		a.fail(w, err)
		return
	}
	t, err := a.Tenants.Resolve(r.Context(), req.Tenant)
	if err != nil {
		a.fail(w, err)
		return
	}
	im := newImport(t.ID, "", len(req.Entries))
	for i, e := range req.Entries {
		im.add(i+1, e.Entry, e.Reason, e.Detail)
	}
	a.storeImport(w, r, im)
}

// importSuppressionsCSV is the import with a CSV body (importcsv.Read;
// the tenant in ?tenant=), what the CLI sends: far cheaper to read than
// JSON for millions of lines, and refusals name the lines of the file.
// The entries are substrings of the body, which is read into one string;
// the rows of domains, globs and expressions are kept in memory, so those
// are copied out of it.
func (a *Server) importSuppressionsCSV(w http.ResponseWriter, r *http.Request) {
	t, err := a.Tenants.Resolve(r.Context(), r.URL.Query().Get("tenant"))
	if err != nil {
		a.fail(w, err)
		return
	}
	var body strings.Builder
	body.Grow(int(min(max(r.ContentLength, 0), maxImportBody)))
	if _, err := io.Copy(&body, http.MaxBytesReader(w, r.Body, maxImportBody)); err != nil {
		a.fail(w, &api.BadRequest{Msg: "bad request body: " + err.Error()})
		return
	}
	im := newImport(t.ID, "line ", strings.Count(body.String(), "\n")+1)
	err = importcsv.Read(body.String(), func(e importcsv.Entry) error {
		if s := im.add(e.Line, e.Entry, e.Reason, e.Detail); s != nil && s.Kind != "address" {
			s.Value, s.Reason, s.Detail = strings.Clone(s.Value), strings.Clone(s.Reason), strings.Clone(s.Detail)
		}
		return nil
	})
	if err != nil {
		a.fail(w, &api.BadRequest{Msg: err.Error()})
		return
	}
	a.storeImport(w, r, im)
}

// suppressionImport gathers the entries of one import request and the
// refusals of those that do not parse (the first 100 named).
type suppressionImport struct {
	tenant string
	named  string // before an entry's number in a refusal: "line " for CSV
	now    time.Time
	ss     []store.Suppression
	res    api.ImportResponse
}

func newImport(tenant, named string, n int) *suppressionImport {
	return &suppressionImport{tenant: tenant, named: named, now: time.Now().UTC(), ss: make([]store.Suppression, 0, n)}
}

// add parses entry number n (reason manual when none) and returns it as
// kept, or nil when refused.
func (im *suppressionImport) add(n int, entry, reason, detail string) *store.Suppression {
	if reason == "" {
		reason = suppress.Manual
	}
	s, err := suppress.Parse(im.tenant, entry, reason)
	if err != nil {
		if len(im.res.Errors) < 100 {
			im.res.Errors = append(im.res.Errors, fmt.Sprintf("%s%d: %s: %v", im.named, n, entry, err))
		}
		return nil
	}
	s.Detail, s.CreatedAt = detail, im.now
	im.ss = append(im.ss, s)
	return &im.ss[len(im.ss)-1]
}

// storeImport adds the kept entries and answers with the counts.
func (a *Server) storeImport(w http.ResponseWriter, r *http.Request, im *suppressionImport) {
	if err := a.Suppress.Add(r.Context(), im.ss...); err != nil {
		a.fail(w, err)
		return
	}
	im.res.Added = len(im.ss)
	api.WriteJSON(w, http.StatusOK, im.res)
}

// maxImportBody is the largest CSV import body, as for JSON bodies.
const maxImportBody = 64 << 20
