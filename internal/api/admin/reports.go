package admin

import (
	"errors"
	"net/http"
	"time"

	"github.com/posthorn/posthorn/internal/api"
	"github.com/posthorn/posthorn/internal/store"
)

func (a *Server) report(w http.ResponseWriter, r *http.Request) {
	rq, format, err := api.ParseReportQuery(r, time.Now())
	if err != nil {
		a.fail(w, &api.BadRequest{Msg: err.Error()})
		return
	}
	el, ok := a.Store.(store.EventLog)
	if !ok {
		a.fail(w, errors.New("this store keeps no reports"))
		return
	}
	rq.TenantID = r.URL.Query().Get("tenant")
	rep, err := api.BuildReport(r, el, rq)
	if err != nil {
		a.fail(w, err)
		return
	}
	api.WriteReport(w, rep, format)
}
