package web

import (
	"net/http"

	"github.com/posthorn/posthorn/internal/api"
	"github.com/posthorn/posthorn/internal/tenant"
)

// destinationAction pauses or resumes a destination for everyone (an
// admin's or owner's act, like the CLI's `destinations pause`): the pause
// lives in the scheduler's memory, so a restart clears it.
func (d *Dashboard) destinationAction(w http.ResponseWriter, r *http.Request, s *session) {
	if !s.can(tenant.ScopeAdmin) {
		http.Error(w, "destinations are for admins", http.StatusForbidden)
		return
	}
	var p api.DestinationPauser
	if d.cfg.Ops != nil {
		p, _ = d.cfg.Ops.Sched.(api.DestinationPauser)
	}
	if p == nil {
		http.Error(w, "the scheduler cannot pause destinations", http.StatusServiceUnavailable)
		return
	}
	key := r.PathValue("key")
	switch r.PathValue("action") {
	case "pause":
		until, err := api.PauseUntil(r.PostFormValue("for"), d.cfg.Now())
		if err != nil {
			back(w, r, "/ui/destinations", "", err.Error())
			return
		}
		mp, err := p.PauseDestination(key, until, s.Email)
		if err != nil {
			back(w, r, "/ui/destinations", "", err.Error())
			return
		}
		back(w, r, "/ui/destinations", key+" "+mp.String(), "")
	case "resume":
		flash := key + " resumed"
		if !p.ResumeDestination(key, s.Email) {
			flash = key + " was not paused by an operator"
		}
		back(w, r, "/ui/destinations", flash, "")
	default:
		http.NotFound(w, r)
	}
}
