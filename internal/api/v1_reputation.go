package api

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/tenant"
)

// Reputation is what the sender reputation endpoints read: source pools
// with their warm-up state, blocklist checks, DMARC report summaries.
// Nil functions answer 404 (the feature is not configured).
type Reputation struct {
	Pools          func() any
	BlocklistCheck func(ctx context.Context) (any, error)
	DMARC          func(ctx context.Context, domain string, since time.Time) (any, error)
}

// ErrBlocklistsOff is returned by BlocklistCheck when monitoring is off.
var ErrBlocklistsOff = errors.New("blocklist monitoring is off: set [blocklists] enabled = true with ip_zones or domain_zones")

var reputationRoutes = []route{
	{"GET", "/v1/pools", tenant.ScopeAdmin, (*V1).pools},
	{"GET", "/v1/dmarc", tenant.ScopeRead, (*V1).dmarc},
}

func (v *V1) pools(w http.ResponseWriter, r *http.Request, key *store.APIKey) {
	if v.Reputation == nil || v.Reputation.Pools == nil {
		apiError(w, http.StatusNotFound, "not_found", "no source pools are configured", "")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": v.Reputation.Pools()})
}

// dmarc summarises reports about a domain. A tenant's key sees its own
// sending domains; other domains need the admin scope.
func (v *V1) dmarc(w http.ResponseWriter, r *http.Request, key *store.APIKey) {
	if v.Reputation == nil || v.Reputation.DMARC == nil {
		apiError(w, http.StatusNotFound, "not_found", "DMARC report intake is not configured ([dmarc] rua)", "")
		return
	}
	dom := strings.ToLower(strings.TrimSuffix(r.URL.Query().Get("domain"), "."))
	if dom == "" {
		apiError(w, http.StatusBadRequest, "invalid_request", "domain is required", "domain")
		return
	}
	since, ok := parseSince(r.URL.Query().Get("since"))
	if !ok {
		apiError(w, http.StatusBadRequest, "invalid_request", "since: want RFC 3339 time or a duration like 168h", "since")
		return
	}
	if !tenant.HasScope(key, tenant.ScopeAdmin) {
		d, err := v.Store.GetDomain(r.Context(), dom)
		if err != nil || d.TenantID != key.TenantID {
			apiError(w, http.StatusForbidden, "forbidden", "not a sending domain of this tenant (other domains need the admin scope)", "domain")
			return
		}
	}
	sum, err := v.Reputation.DMARC(r.Context(), dom, since)
	if err != nil {
		v.internal(w, err)
		return
	}
	writeJSON(w, http.StatusOK, sum)
}

// parseSince reads an RFC 3339 time or a duration back from now; empty
// means the last 30 days.
func parseSince(s string) (time.Time, bool) {
	if s == "" {
		return time.Now().Add(-30 * 24 * time.Hour), true
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, true
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, true
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return time.Now().Add(-d), true
	}
	return time.Time{}, false
}

// Handler serves the admin socket's reputation endpoints (mounted by the
// server beside the other admin routes).
func (rep *Reputation) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /admin/v1/pools", func(w http.ResponseWriter, r *http.Request) {
		if rep.Pools == nil {
			writeError(w, http.StatusNotFound, "not_found", "no source pools are configured")
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"items": rep.Pools()})
	})
	mux.HandleFunc("POST /admin/v1/blocklists/check", func(w http.ResponseWriter, r *http.Request) {
		if rep.BlocklistCheck == nil {
			writeError(w, http.StatusConflict, "disabled", ErrBlocklistsOff.Error())
			return
		}
		res, err := rep.BlocklistCheck(r.Context())
		if err != nil {
			writeError(w, http.StatusInternalServerError, "internal", err.Error())
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"items": res})
	})
	mux.HandleFunc("GET /admin/v1/dmarc", func(w http.ResponseWriter, r *http.Request) {
		if rep.DMARC == nil {
			writeError(w, http.StatusNotFound, "not_found", "DMARC report intake is not configured ([dmarc] rua)")
			return
		}
		dom := strings.ToLower(strings.TrimSuffix(r.URL.Query().Get("domain"), "."))
		since, ok := parseSince(r.URL.Query().Get("since"))
		if dom == "" || !ok {
			writeError(w, http.StatusBadRequest, "bad_request", "want domain= and an optional since= (RFC 3339, YYYY-MM-DD or a duration)")
			return
		}
		sum, err := rep.DMARC(r.Context(), dom, since)
		if err != nil {
			writeError(w, http.StatusInternalServerError, "internal", err.Error())
			return
		}
		writeJSON(w, http.StatusOK, sum)
	})
	return mux
}
