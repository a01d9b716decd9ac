package api

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/posthorn/posthorn/internal/queue"
)

// DestinationPauser is the scheduler's manual pause (queue.Scheduler).
// Pauses live in the scheduler's memory: a restart clears them.
type DestinationPauser interface {
	PauseDestination(key string, until time.Time, by string) (queue.ManualPause, error)
	ResumeDestination(key, by string) bool
}

// PauseRequest is the body of POST /admin/v1/destinations/{key}/pause
// (and /resume, which reads only By).
type PauseRequest struct {
	For string `json:"for,omitempty"` // a Go duration ("1h"); empty: until resumed
	By  string `json:"by,omitempty"`  // who pauses, for the events and why
}

// PauseResult answers pause and resume.
type PauseResult struct {
	Destination string             `json:"destination"`
	Paused      bool               `json:"paused"`
	Pause       *queue.ManualPause `json:"pause,omitempty"`
	Message     string             `json:"message"`
}

// PauseUntil parses a pause's duration ("" until resumed) into its end.
func PauseUntil(d string, now time.Time) (time.Time, error) {
	if strings.TrimSpace(d) == "" {
		return time.Time{}, nil
	}
	dur, err := time.ParseDuration(strings.TrimSpace(d))
	if err != nil || dur <= 0 {
		return time.Time{}, &badRequest{fmt.Sprintf("pause duration %q: want a positive duration such as 30m or 2h", d)}
	}
	return now.Add(dur), nil
}

// pauser is the scheduler behind Ops, when it can pause.
func (a *Admin) pauser() (DestinationPauser, bool) {
	if a.Ops == nil {
		return nil, false
	}
	p, ok := a.Ops.Sched.(DestinationPauser)
	return p, ok
}

// pauseDestination serves POST /admin/v1/destinations/{key}/{action}
// with action pause or resume.
func (a *Admin) pauseDestination(w http.ResponseWriter, r *http.Request) {
	key, action := r.PathValue("key"), r.PathValue("action")
	p, ok := a.pauser()
	if !ok {
		writeError(w, http.StatusServiceUnavailable, "unavailable", "the scheduler cannot pause destinations")
		return
	}
	var req PauseRequest
	if r.ContentLength != 0 {
		if err := decode(r, &req); err != nil {
			a.fail(w, err)
			return
		}
	}
	if req.By == "" {
		req.By = "admin socket"
	}
	res := PauseResult{Destination: key}
	switch action {
	case "pause":
		until, err := PauseUntil(req.For, time.Now())
		if err == nil {
			var mp queue.ManualPause
			mp, err = p.PauseDestination(key, until, req.By)
			res.Paused, res.Pause, res.Message = true, &mp, key+" "+mp.String()
		}
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", err.Error())
			return
		}
	case "resume":
		if p.ResumeDestination(key, req.By) {
			res.Message = key + " resumed"
		} else {
			res.Message = key + " was not paused by an operator"
		}
	default:
		writeError(w, http.StatusNotFound, "not_found", "no such action: "+action)
		return
	}
	writeJSON(w, http.StatusOK, res)
}
