package v1

import (
	"net/http"

	"github.com/posthorn/posthorn/internal/api"
	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/suppress"
)

// listSuppressions is GET /v1/suppressions: the key's tenant's entries.
func (v *Server) listSuppressions(w http.ResponseWriter, r *http.Request, key *store.APIKey) {
	api.WriteSuppressions(r.Context(), w, v.Store, key.TenantID, func(err error) { v.internal(w, err) })
}

// addSuppression is POST /v1/suppressions {entry, reason, detail}.
func (v *Server) addSuppression(w http.ResponseWriter, r *http.Request, key *store.APIKey) {
	var req api.SuppressionRequest
	_, release, ok := v.readBody(w, r, 1<<20, &req)
	if !ok {
		return
	}
	defer release()
	if req.Tenant != "" {
		apiError(w, http.StatusBadRequest, "invalid_json", "tenant is implied by the API key", "tenant")
		return
	}
	if req.Reason == "" {
		req.Reason = suppress.Manual
	}
	s, err := suppress.Parse(key.TenantID, req.Entry, req.Reason)
	if err != nil {
		apiError(w, http.StatusBadRequest, "invalid_entry", err.Error(), "entry")
		return
	}
	s.Detail, s.CreatedAt = req.Detail, v.Now().UTC() // set here: Add fills in its own copy
	if err := v.Suppress.Add(r.Context(), s); err != nil {
		v.internal(w, err)
		return
	}
	api.WriteJSON(w, http.StatusCreated, s)
}

// removeSuppression is DELETE /v1/suppressions?entry=...
func (v *Server) removeSuppression(w http.ResponseWriter, r *http.Request, key *store.APIKey) {
	entry := r.URL.Query().Get("entry")
	found, err := v.Suppress.Remove(r.Context(), key.TenantID, entry)
	if err != nil {
		apiError(w, http.StatusBadRequest, "invalid_entry", err.Error(), "entry")
		return
	}
	if !found {
		apiError(w, http.StatusNotFound, "not_found", "no such entry", "entry")
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"removed": entry})
}
