package admin

import (
	"errors"
	"net/http"
	"time"

	"github.com/posthorn/posthorn/internal/api"
)

func (a *Server) listEvents(w http.ResponseWriter, r *http.Request) {
	eq, err := api.ParseEventQuery(r, time.Now())
	if err != nil {
		a.fail(w, &api.BadRequest{Msg: err.Error()})
		return
	}
	eq.Filter.TenantID = r.URL.Query().Get("tenant")
	if err := api.ServeEvents(w, r, a.Store, eq, true); errors.Is(err, api.ErrExportCut) {
		a.Log.Info("events export", "err", err)
	} else if err != nil {
		a.fail(w, err)
	}
}

func (a *Server) streamEvents(w http.ResponseWriter, r *http.Request) {
	eq, err := api.ParseEventQuery(r, time.Now())
	if err != nil {
		a.fail(w, &api.BadRequest{Msg: err.Error()})
		return
	}
	eq.Filter.TenantID = r.URL.Query().Get("tenant")
	if err := api.StreamEvents(w, r, a.Store, a.Live, eq.Filter, 0); err != nil {
		a.fail(w, err)
	}
}
