package admin

import (
	"net/http"
	"strings"

	"github.com/posthorn/posthorn/internal/api"
)

// ReputationHandler serves the admin socket's reputation endpoints from
// rep (mounted by the server beside the other admin routes).
func ReputationHandler(rep *api.Reputation) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /admin/v1/pools", func(w http.ResponseWriter, r *http.Request) {
		if rep.Pools == nil {
			api.WriteError(w, http.StatusNotFound, "not_found", "no source pools are configured")
			return
		}
		api.WriteJSON(w, http.StatusOK, map[string]any{"items": rep.Pools()})
	})
	mux.HandleFunc("POST /admin/v1/blocklists/check", func(w http.ResponseWriter, r *http.Request) {
		if rep.BlocklistCheck == nil {
			api.WriteError(w, http.StatusConflict, "disabled", api.ErrBlocklistsOff.Error())
			return
		}
		res, err := rep.BlocklistCheck(r.Context())
		if err != nil {
			api.WriteError(w, http.StatusInternalServerError, "internal", err.Error())
			return
		}
		api.WriteJSON(w, http.StatusOK, map[string]any{"items": res})
	})
	mux.HandleFunc("GET /admin/v1/dmarc", func(w http.ResponseWriter, r *http.Request) {
		if rep.DMARC == nil {
			api.WriteError(w, http.StatusNotFound, "not_found", "DMARC report intake is not configured ([dmarc] rua)")
			return
		}
		dom := strings.ToLower(strings.TrimSuffix(r.URL.Query().Get("domain"), "."))
		since, ok := api.ParseSince(r.URL.Query().Get("since"))
		if dom == "" || !ok {
			api.WriteError(w, http.StatusBadRequest, "bad_request", "want domain= and an optional since= (RFC 3339, YYYY-MM-DD or a duration)")
			return
		}
		sum, err := rep.DMARC(r.Context(), dom, since)
		if err != nil {
			api.WriteError(w, http.StatusInternalServerError, "internal", err.Error())
			return
		}
		api.WriteJSON(w, http.StatusOK, sum)
	})
	return mux
}
