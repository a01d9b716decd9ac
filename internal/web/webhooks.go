package web

import (
	"net/http"

	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/tenant"
)

// WebhookRow is one endpoint with its latest delivery attempts.
type WebhookRow struct {
	store.WebhookEndpoint
	Attempts []store.WebhookAttempt
}

const webhookAttemptsShown = 10

// webhooks lists the endpoints (created with the API or CLI: their secret
// is shown once there) with their state and latest attempts.
func (d *Dashboard) webhooks(w http.ResponseWriter, r *http.Request, s *session) {
	if !s.can(tenant.ScopeAdmin) {
		http.Error(w, "webhooks are for admins", http.StatusForbidden)
		return
	}
	eps, err := d.cfg.Store.ListEndpoints(r.Context(), s.TenantID)
	if err != nil {
		d.internal(w, err)
		return
	}
	var rows []WebhookRow
	for _, e := range eps {
		as, err := d.cfg.Store.WebhookAttempts(r.Context(), e.TenantID, e.ID, webhookAttemptsShown)
		if err != nil {
			d.internal(w, err)
			return
		}
		rows = append(rows, WebhookRow{WebhookEndpoint: e, Attempts: as})
	}
	d.render(w, r, s, "webhooks", "Webhooks", rows)
}

// webhookAction sends a test event to an endpoint or enables a disabled
// one again.
func (d *Dashboard) webhookAction(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	var err error
	var flash string
	switch r.PathValue("action") {
	case "test":
		err, flash = d.cfg.Store.QueueTestWebhook(r.Context(), s.TenantID, id, d.cfg.Now().UTC()), "test event queued for "+id
	case "enable":
		err, flash = d.cfg.Store.EnableEndpoint(r.Context(), s.TenantID, id), "enabled "+id
	default:
		http.NotFound(w, r)
		return
	}
	if err != nil {
		d.notFoundOr(w, r, err)
		return
	}
	back(w, r, "/ui/webhooks", flash, "")
}
