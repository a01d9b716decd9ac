package admin

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/posthorn/posthorn/internal/api"
	"github.com/posthorn/posthorn/internal/store"
)

// webhookRoutes adds the webhook endpoints and alerts to the admin API;
// the operator sees every tenant's (?tenant= narrows a listing).
func (a *Server) webhookRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /admin/v1/webhooks", listInTenant(a, a.Store.ListEndpoints))
	mux.HandleFunc("POST /admin/v1/webhooks", func(w http.ResponseWriter, r *http.Request) {
		var req api.WebhookRequest
		if err := api.Decode(r, &req); err != nil {
			a.fail(w, err)
			return
		}
		t, err := a.Tenants.Resolve(r.Context(), req.Tenant)
		if err != nil {
			a.fail(w, err)
			return
		}
		res, err := api.CreateWebhook(r.Context(), a.Store, t.ID, req)
		if err != nil {
			a.fail(w, err)
			return
		}
		api.WriteJSON(w, http.StatusCreated, res)
	})
	mux.HandleFunc("GET /admin/v1/webhooks/{id}", func(w http.ResponseWriter, r *http.Request) {
		e, err := a.Store.GetEndpoint(r.Context(), "", r.PathValue("id"))
		if err != nil {
			a.fail(w, err)
			return
		}
		api.WriteJSON(w, http.StatusOK, e)
	})
	mux.HandleFunc("DELETE /admin/v1/webhooks/{id}", func(w http.ResponseWriter, r *http.Request) {
		if err := a.Store.DeleteEndpoint(r.Context(), "", r.PathValue("id")); err != nil {
			a.fail(w, err)
			return
		}
		api.WriteJSON(w, http.StatusOK, map[string]any{"removed": r.PathValue("id")})
	})
	mux.HandleFunc("POST /admin/v1/webhooks/{id}/test", func(w http.ResponseWriter, r *http.Request) {
		if err := a.Store.QueueTestWebhook(r.Context(), "", r.PathValue("id"), time.Now()); err != nil {
			a.fail(w, err)
			return
		}
		api.WriteJSON(w, http.StatusAccepted, map[string]any{"queued": r.PathValue("id")})
	})
	mux.HandleFunc("POST /admin/v1/webhooks/{id}/enable", func(w http.ResponseWriter, r *http.Request) {
		if err := a.Store.EnableEndpoint(r.Context(), "", r.PathValue("id")); err != nil {
			a.fail(w, err)
			return
		}
		api.WriteJSON(w, http.StatusOK, map[string]any{"enabled": r.PathValue("id")})
	})
	mux.HandleFunc("GET /admin/v1/webhooks/{id}/attempts", func(w http.ResponseWriter, r *http.Request) {
		limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		as, err := a.Store.WebhookAttempts(r.Context(), "", r.PathValue("id"), limit)
		if err != nil {
			a.fail(w, err)
			return
		}
		api.WriteJSON(w, http.StatusOK, map[string]any{"items": as})
	})
	mux.HandleFunc("GET /admin/v1/alerts", func(w http.ResponseWriter, r *http.Request) {
		as, err := a.alerts().List(r.Context(), "")
		if err != nil {
			a.fail(w, err)
			return
		}
		api.WriteJSON(w, http.StatusOK, map[string]any{"items": as})
	})
	mux.HandleFunc("POST /admin/v1/alerts/release", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Key string `json:"key"`
		}
		if err := api.Decode(r, &req); err != nil {
			a.fail(w, err)
			return
		}
		al, err := a.alerts().Release(r.Context(), req.Key)
		if err != nil {
			a.fail(w, err)
			return
		}
		api.WriteJSON(w, http.StatusOK, al)
	})
}

func (a *Server) alerts() api.AlertService {
	if a.Alerts == nil {
		return noAlerts{}
	}
	return a.Alerts
}

// noAlerts serves when no alert evaluator runs.
type noAlerts struct{}

func (noAlerts) List(context.Context, string) ([]store.Alert, error) { return []store.Alert{}, nil }

func (noAlerts) Release(context.Context, string) (*store.Alert, error) {
	return nil, errors.New("no alert rules are configured")
}
