package admin

import (
	"net/http"
	"time"

	"github.com/posthorn/posthorn/internal/api"
	"github.com/posthorn/posthorn/internal/queue"
	"github.com/posthorn/posthorn/internal/queue/ops"
)

// Destinations on the admin socket: the listing (posthorn destinations)
// and the operator's pause and resume.

// pauser is the scheduler behind Ops, when it can pause.
func (a *Server) pauser() (api.DestinationPauser, bool) {
	if a.Ops == nil {
		return nil, false
	}
	p, ok := a.Ops.Sched.(api.DestinationPauser)
	return p, ok
}

// pauseDestination serves POST /admin/v1/destinations/{key}/{action}
// with action pause or resume.
func (a *Server) pauseDestination(w http.ResponseWriter, r *http.Request) {
	key, action := r.PathValue("key"), r.PathValue("action")
	p, ok := a.pauser()
	if !ok {
		api.WriteError(w, http.StatusServiceUnavailable, "unavailable", "the scheduler cannot pause destinations")
		return
	}
	var req api.PauseRequest
	if r.ContentLength != 0 {
		if err := api.Decode(r, &req); err != nil {
			a.fail(w, err)
			return
		}
	}
	if req.By == "" {
		req.By = "admin socket"
	}
	res := api.PauseResult{Destination: key}
	switch action {
	case "pause":
		until, err := api.PauseUntil(req.For, time.Now())
		if err == nil {
			var mp queue.ManualPause
			mp, err = p.PauseDestination(key, until, req.By)
			res.Paused, res.Pause, res.Message = true, &mp, key+" "+mp.String()
		}
		if err != nil {
			api.WriteError(w, http.StatusBadRequest, "bad_request", err.Error())
			return
		}
	case "resume":
		if p.ResumeDestination(key, req.By) {
			res.Message = key + " resumed"
		} else {
			res.Message = key + " was not paused by an operator"
		}
	default:
		api.WriteError(w, http.StatusNotFound, "not_found", "no such action: "+action)
		return
	}
	api.WriteJSON(w, http.StatusOK, res)
}

// destinations lists every destination with live state or pending mail
// (?tenant= narrows to one tenant's pending mail).
func (a *Server) destinations(w http.ResponseWriter, r *http.Request) {
	tenantID, err := a.resolveTenant(r.Context(), r.URL.Query().Get("tenant"))
	var rows []ops.DestinationRow
	if err == nil {
		live, _ := a.Destinations().([]queue.DestinationInfo)
		rows, err = a.Ops.Destinations(r.Context(), tenantID, live)
	}
	if err != nil {
		a.fail(w, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"items": rows})
}
