package v1

import (
	"net/http"

	"github.com/posthorn/posthorn/internal/api"
	"github.com/posthorn/posthorn/internal/store"
)

func (v *Server) report(w http.ResponseWriter, r *http.Request, key *store.APIKey) {
	rq, format, err := api.ParseReportQuery(r, v.Now())
	if err != nil {
		apiError(w, http.StatusBadRequest, "invalid_query", err.Error(), "")
		return
	}
	el, ok := v.Store.(store.EventLog)
	if !ok {
		apiError(w, http.StatusNotImplemented, "unavailable", "this store keeps no reports", "")
		return
	}
	rq.TenantID = key.TenantID
	rep, err := api.BuildReport(r, el, rq)
	if err != nil {
		v.internal(w, err)
		return
	}
	api.WriteReport(w, rep, format)
}
