package v1

import (
	"errors"
	"net/http"
	"strings"

	"github.com/posthorn/posthorn/internal/api"
	"github.com/posthorn/posthorn/internal/store"
)

func (v *Server) listEvents(w http.ResponseWriter, r *http.Request, key *store.APIKey) {
	eq, err := api.ParseEventQuery(r, v.Now())
	if err != nil {
		apiError(w, http.StatusBadRequest, "invalid_query", err.Error(), strings.SplitN(err.Error(), ":", 2)[0])
		return
	}
	eq.Filter.TenantID = key.TenantID
	if err := api.ServeEvents(w, r, v.Store, eq, false); errors.Is(err, api.ErrExportCut) {
		v.Log.Info("events export", "err", err)
	} else if err != nil {
		v.internal(w, err)
	}
}

func (v *Server) streamEvents(w http.ResponseWriter, r *http.Request, key *store.APIKey) {
	eq, err := api.ParseEventQuery(r, v.Now())
	if err != nil {
		apiError(w, http.StatusBadRequest, "invalid_query", err.Error(), strings.SplitN(err.Error(), ":", 2)[0])
		return
	}
	eq.Filter.TenantID = key.TenantID
	if err := api.StreamEvents(w, r, v.Store, v.Live, eq.Filter, v.Heartbeat); err != nil {
		var br *api.BadRequest
		if errors.As(err, &br) {
			apiError(w, http.StatusBadRequest, "invalid_query", br.Msg, "")
			return
		}
		apiError(w, http.StatusServiceUnavailable, "unavailable", err.Error(), "")
	}
}
