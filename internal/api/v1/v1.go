package v1

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/posthorn/posthorn/internal/accept"
	"github.com/posthorn/posthorn/internal/api"
	"github.com/posthorn/posthorn/internal/domain"
	"github.com/posthorn/posthorn/internal/events"
	"github.com/posthorn/posthorn/internal/loginlimit"
	"github.com/posthorn/posthorn/internal/queue/ops"
	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/suppress"
	"github.com/posthorn/posthorn/internal/tenant"
)

// Server is the public HTTP API (/v1), authenticated with API keys.
type Server struct {
	Store          store.Store
	Tenants        *tenant.Manager
	Accept         *accept.Pipeline
	Ops            *ops.QueueOps
	Hostname       string
	MaxBulk        int           // items per bulk request (default 5000)
	MaxBulkBytes   int64         // body bytes of one bulk request (default 64 MiB)
	MaxInflight    int64         // body bytes of all requests being handled together (default 128 MiB)
	MaxMessageSize int           // bytes of one built message
	MaxLineLength  int           // octets of a line of a raw message, CRLF included (default 2000, as SMTP)
	SendHorizon    time.Duration // how far ahead send_at may be (default 30 days)
	Destinations   func() any    // the scheduler's destinations, for admins
	Suppress       *suppress.List
	Domains        *domain.Service
	Alerts         api.AlertService
	Live           *events.Broadcaster // committed events, for GET /v1/events/stream
	Heartbeat      time.Duration       // between stream keep-alives (default 15s)
	Reputation     *api.Reputation     // source pools, DMARC summaries (reputation.go)
	Now            func() time.Time
	Log            *slog.Logger

	budget *bodyBudget
	logins *loginlimit.Limiter // failed logins per client address and per account
}

// route is one endpoint; the table serves both the mux and the test that
// keeps openapi.json true.
type route struct {
	method, path, scope string
	handle              func(v *Server, w http.ResponseWriter, r *http.Request, key *store.APIKey)
}

// scopeAccount marks the key-management routes: any API key, or an
// account with HTTP basic auth (email and password); the handler checks
// what the caller may do.
const scopeAccount = "account"

var routes = []route{
	{"POST", "/v1/messages", tenant.ScopeSend, (*Server).send},
	{"POST", "/v1/messages/raw", tenant.ScopeSend, (*Server).sendRaw},
	{"POST", "/v1/messages/bulk", tenant.ScopeSend, (*Server).sendBulk},
	{"GET", "/v1/messages", tenant.ScopeRead, (*Server).list},
	{"GET", "/v1/messages/{id}", tenant.ScopeRead, (*Server).get},
	{"GET", "/v1/messages/{id}/why", tenant.ScopeRead, (*Server).why},
	{"DELETE", "/v1/messages/{id}", tenant.ScopeSend, (*Server).cancel},
	{"GET", "/v1/dlq", tenant.ScopeRead, (*Server).listDLQ},
	{"POST", "/v1/dlq/retry", tenant.ScopeSend, (*Server).retryDLQ},
	{"POST", "/v1/dlq/purge", tenant.ScopeSend, (*Server).purgeDLQ},
	{"GET", "/v1/destinations", tenant.ScopeAdmin, (*Server).destinations},
	{"GET", "/v1/suppressions", tenant.ScopeRead, (*Server).listSuppressions},
	{"POST", "/v1/suppressions", tenant.ScopeSend, (*Server).addSuppression},
	{"DELETE", "/v1/suppressions", tenant.ScopeSend, (*Server).removeSuppression},
	{"GET", "/v1/domains", tenant.ScopeAdmin, (*Server).listDomains},
	{"POST", "/v1/domains", tenant.ScopeAdmin, (*Server).addDomain},
	{"GET", "/v1/domains/{domain}", tenant.ScopeAdmin, (*Server).getDomain},
	{"DELETE", "/v1/domains/{domain}", tenant.ScopeAdmin, (*Server).removeDomain},
	{"POST", "/v1/domains/{domain}/check", tenant.ScopeAdmin, (*Server).checkDomain},
	{"POST", "/v1/domains/{domain}/rotate", tenant.ScopeAdmin, (*Server).rotateDomain},
	{"DELETE", "/v1/domains/{domain}/keys/{selector}", tenant.ScopeAdmin, (*Server).removeDomainKey},
	{"GET", "/v1/events", tenant.ScopeRead, (*Server).listEvents},
	{"GET", "/v1/events/stream", tenant.ScopeRead, (*Server).streamEvents},
	{"GET", "/v1/reports/deliverability", tenant.ScopeRead, (*Server).report},
	{"GET", "/v1/apikeys", scopeAccount, (*Server).listKeys},
	{"POST", "/v1/apikeys", scopeAccount, (*Server).createKey},
	{"DELETE", "/v1/apikeys/{id}", scopeAccount, (*Server).removeKey},
	{"GET", "/v1/users", tenant.ScopeAdmin, (*Server).listUsers},
	{"POST", "/v1/users", tenant.ScopeAdmin, (*Server).createUser},
	{"DELETE", "/v1/users/{username}", tenant.ScopeAdmin, (*Server).removeUser},
	{"GET", "/v1/webhooks", tenant.ScopeAdmin, (*Server).listWebhooks},
	{"POST", "/v1/webhooks", tenant.ScopeAdmin, (*Server).createWebhook},
	{"GET", "/v1/webhooks/{id}", tenant.ScopeAdmin, (*Server).getWebhook},
	{"DELETE", "/v1/webhooks/{id}", tenant.ScopeAdmin, (*Server).deleteWebhook},
	{"POST", "/v1/webhooks/{id}/test", tenant.ScopeAdmin, (*Server).testWebhook},
	{"GET", "/v1/webhooks/{id}/attempts", tenant.ScopeAdmin, (*Server).webhookAttempts},
	{"GET", "/v1/alerts", tenant.ScopeAdmin, (*Server).listAlerts},
}

// Handler returns the /v1 routes (and the OpenAPI document, public).
func (v *Server) Handler() http.Handler {
	if v.MaxBulk <= 0 {
		v.MaxBulk = 5000
	}
	if v.SendHorizon <= 0 {
		v.SendHorizon = 30 * 24 * time.Hour
	}
	if v.MaxMessageSize <= 0 {
		v.MaxMessageSize = 25 << 20
	}
	if v.MaxBulkBytes <= 0 {
		v.MaxBulkBytes = 64 << 20
	}
	if v.MaxInflight <= 0 {
		v.MaxInflight = 128 << 20
	}
	if v.MaxLineLength <= 0 {
		v.MaxLineLength = 2000
	}
	v.MaxInflight = max(v.MaxInflight, v.MaxBulkBytes, v.bodyLimit()) // the largest request must fit
	v.budget = &bodyBudget{max: v.MaxInflight}
	v.logins = loginlimit.New(10, 10*time.Minute, nil)
	mux := http.NewServeMux()
	for _, rt := range slices.Concat(routes, reputationRoutes) {
		mux.Handle(rt.method+" "+rt.path, v.auth(rt))
	}
	mux.HandleFunc("GET /v1/openapi.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(openAPIDoc)
	})
	mux.HandleFunc("/v1/", func(w http.ResponseWriter, r *http.Request) {
		apiError(w, http.StatusNotFound, "not_found", "no such endpoint: "+r.Method+" "+r.URL.Path, "")
	})
	return mux
}

func apiError(w http.ResponseWriter, status int, code, msg, field string) {
	api.WriteJSON(w, status, api.APIError{Error: api.APIErrorDetail{Code: code, Message: msg, Field: field}})
}

func (v *Server) auth(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if email, password, ok := r.BasicAuth(); ok && rt.scope == scopeAccount {
			a := v.basicAuth(w, r, email, password)
			if a == nil {
				return
			}
			// The account acts as a key of its tenant with its role's scopes.
			key := &store.APIKey{TenantID: a.TenantID, Scopes: tenant.RoleScopes(a.Role), CreatedBy: a.Email}
			rt.handle(v, w, r.WithContext(context.WithValue(r.Context(), accountCtxKey{}, a)), key)
			return
		}
		h := r.Header.Get("Authorization")
		token, ok := strings.CutPrefix(h, "Bearer ")
		if !ok || token == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="posthorn"`)
			apiError(w, http.StatusUnauthorized, "unauthorized", "missing API key: send Authorization: Bearer <key>", "")
			return
		}
		key, err := v.checkKey(w, r, strings.TrimSpace(token))
		if key == nil {
			if err != nil {
				v.internal(w, err)
			}
			return
		}
		if rt.scope != scopeAccount && !tenant.HasScope(key, rt.scope) {
			apiError(w, http.StatusForbidden, "missing_scope", "this API key lacks the "+rt.scope+" scope", "")
			return
		}
		rt.handle(v, w, r, key)
	})
}

// checkKey verifies a bearer key; it writes the refusal and returns nil
// for a bad or expired key, and returns an error only for an internal
// failure. Bad keys are not blocked per address: a 192-bit secret cannot
// be guessed, and many clients may share one address (a proxy), so one
// misconfigured client must not lock the others out. The login limit
// only bounds how many auth_failed events an address writes.
func (v *Server) checkKey(w http.ResponseWriter, r *http.Request, token string) (*store.APIKey, error) {
	key, err := v.Tenants.CheckAPIKey(r.Context(), token)
	switch {
	case errors.Is(err, tenant.ErrBadCredentials):
		ip := clientIP(r)
		if _, ok := v.logins.Reserve("key-ip:" + ip); ok {
			v.authFailed(r, ip, keyPrefixOf(token))
		}
		apiError(w, http.StatusUnauthorized, "unauthorized", "invalid API key", "")
		return nil, nil
	case errors.Is(err, tenant.ErrKeyExpired):
		apiError(w, http.StatusUnauthorized, "key_expired", "this API key has expired", "")
		return nil, nil
	}
	return key, err
}

// keyPrefixOf is what an auth_failed event names for a bad key: its
// visible prefix, never the secret.
func keyPrefixOf(token string) string {
	if i := strings.LastIndexByte(token, '_'); i > 0 {
		return token[:i]
	}
	return "(malformed key)"
}

func (v *Server) internal(w http.ResponseWriter, err error) {
	v.Log.Error("api", "err", err)
	apiError(w, http.StatusInternalServerError, "internal", "internal error; try again", "")
}

func requestHash(raw []byte) string {
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:])
}

func sendResponse(res *accept.Result) api.SendResponse {
	out := api.SendResponse{ID: res.MessageID, Recipients: make([]api.RecipientState, len(res.Deliveries))}
	for i, d := range res.Deliveries {
		out.Recipients[i] = api.RecipientState{Email: d.Recipient, State: d.State}
	}
	return out
}

// acceptError maps an accept failure to an API error.
func (v *Server) acceptError(err error) (int, api.APIErrorDetail) {
	if errors.Is(err, accept.ErrIdempotencyConflict) {
		return http.StatusConflict, api.APIErrorDetail{Code: "idempotency_conflict", Message: err.Error(), Field: "idempotency_key"}
	}
	var se *accept.SenderError
	if errors.As(err, &se) {
		return http.StatusForbidden, api.APIErrorDetail{Code: "sender_domain_not_allowed", Message: se.Reply().Msg, Field: "from"}
	}
	if rej, ok := accept.IsRejection(err); ok {
		if rej.HTTPStatus != 0 { // abuse protection's refusals carry their own answer
			return rej.HTTPStatus, api.APIErrorDetail{Code: rej.APICode, Message: rej.Msg}
		}
		return http.StatusUnprocessableEntity, api.APIErrorDetail{Code: "rejected", Message: rej.Msg}
	}
	v.Log.Error("api accept", "err", err)
	return http.StatusServiceUnavailable, api.APIErrorDetail{Code: "unavailable", Message: "could not queue the message; try again"}
}

// when checks send_at: absent (or null) or now means now; accepted are
// times from a minute ago (clock skew) to SendHorizon ahead. Any time
// given is checked, the zero time (0001-01-01T00:00:00Z) too: it is a
// time in the past, not "now".
func (v *Server) when(sendAt *time.Time) (time.Time, *api.APIErrorDetail) {
	if sendAt == nil {
		return time.Time{}, nil
	}
	now := v.Now()
	switch {
	case sendAt.Before(now.Add(-time.Minute)):
		return time.Time{}, &api.APIErrorDetail{Code: "send_at_in_past", Message: "send_at is in the past", Field: "send_at"}
	case sendAt.After(now.Add(v.SendHorizon)):
		return time.Time{}, &api.APIErrorDetail{Code: "send_at_too_far", Message: fmt.Sprintf("send_at is more than %s ahead", v.SendHorizon), Field: "send_at"}
	case !sendAt.After(now):
		return time.Time{}, nil
	}
	return sendAt.UTC(), nil
}

func parseLane(s string) (store.Lane, *api.APIErrorDetail) {
	l, err := store.ParseLane(s)
	if err != nil {
		return "", &api.APIErrorDetail{Code: "invalid_lane", Message: err.Error(), Field: "lane"}
	}
	return l, nil
}

func checkTags(tags []string, meta map[string]string) *api.APIErrorDetail {
	if len(tags) > 20 {
		return &api.APIErrorDetail{Code: "too_many_tags", Message: "at most 20 tags", Field: "tags"}
	}
	for i, t := range tags {
		if t == "" || len(t) > 100 || strings.ContainsAny(t, "\r\n\x00") {
			return &api.APIErrorDetail{Code: "invalid_tag", Message: "tags are 1-100 characters without control characters", Field: fmt.Sprintf("tags[%d]", i)}
		}
	}
	if len(meta) > 50 {
		return &api.APIErrorDetail{Code: "too_much_metadata", Message: "at most 50 metadata keys", Field: "metadata"}
	}
	size := 0
	for k, val := range meta {
		size += len(k) + len(val)
		if k == "" || strings.ContainsAny(k+val, "\x00") {
			return &api.APIErrorDetail{Code: "invalid_metadata", Message: "metadata keys are non-empty, values without NUL", Field: "metadata." + k}
		}
	}
	if size > 4096 {
		return &api.APIErrorDetail{Code: "too_much_metadata", Message: "metadata is limited to 4 KiB", Field: "metadata"}
	}
	return nil
}

func ctxOf(r *http.Request) context.Context { return r.Context() }
