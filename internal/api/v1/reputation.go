package v1

import (
	"net/http"
	"strings"

	"github.com/posthorn/posthorn/internal/api"
	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/tenant"
)

// Sender reputation on /v1: source pools (admin) and DMARC report
// summaries; what they read is api.Reputation, filled by the server.

var reputationRoutes = []route{
	{"GET", "/v1/pools", tenant.ScopeAdmin, (*Server).pools},
	{"GET", "/v1/dmarc", tenant.ScopeRead, (*Server).dmarc},
}

func (v *Server) pools(w http.ResponseWriter, r *http.Request, key *store.APIKey) {
	if v.Reputation == nil || v.Reputation.Pools == nil {
		apiError(w, http.StatusNotFound, "not_found", "no source pools are configured", "")
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"items": v.Reputation.Pools()})
}

// dmarc summarises reports about a domain. A tenant's key sees its own
// sending domains; other domains need the admin scope.
func (v *Server) dmarc(w http.ResponseWriter, r *http.Request, key *store.APIKey) {
	if v.Reputation == nil || v.Reputation.DMARC == nil {
		apiError(w, http.StatusNotFound, "not_found", "DMARC report intake is not configured ([dmarc] rua)", "")
		return
	}
	dom := strings.ToLower(strings.TrimSuffix(r.URL.Query().Get("domain"), "."))
	if dom == "" {
		apiError(w, http.StatusBadRequest, "invalid_request", "domain is required", "domain")
		return
	}
	since, ok := api.ParseSince(r.URL.Query().Get("since"))
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
	api.WriteJSON(w, http.StatusOK, sum)
}
