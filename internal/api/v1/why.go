package v1

import (
	"errors"
	"net/http"

	"github.com/posthorn/posthorn/internal/api"
	"github.com/posthorn/posthorn/internal/store"
)

// why is GET /v1/messages/{id}/why: for each recipient of one of the
// key's tenant's messages, the reason it is not being sent this second.
func (v *Server) why(w http.ResponseWriter, r *http.Request, key *store.APIKey) {
	res, err := v.Ops.Why(r.Context(), key.TenantID, r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		apiError(w, http.StatusNotFound, "not_found", "no such message", "")
		return
	}
	if err != nil {
		v.internal(w, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, res)
}
