package v1

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/posthorn/posthorn/internal/api"
	"github.com/posthorn/posthorn/internal/store"
)

// Webhook endpoints of the key's tenant (admin scope): another tenant's
// endpoint is 404, like one that does not exist.

func (v *Server) listWebhooks(w http.ResponseWriter, r *http.Request, key *store.APIKey) {
	eps, err := v.Store.ListEndpoints(r.Context(), key.TenantID)
	if err != nil {
		v.internal(w, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"items": eps})
}

func (v *Server) createWebhook(w http.ResponseWriter, r *http.Request, key *store.APIKey) {
	var req api.WebhookRequest
	_, release, ok := v.readBody(w, r, 1<<20, &req)
	if !ok {
		return
	}
	defer release()
	if req.Tenant != "" {
		apiError(w, http.StatusBadRequest, "invalid_json", "tenant is implied by the API key", "tenant")
		return
	}
	res, err := api.CreateWebhook(r.Context(), v.Store, key.TenantID, req)
	var br *api.BadRequest
	if errors.As(err, &br) {
		apiError(w, http.StatusBadRequest, "invalid_webhook", br.Msg, "")
		return
	}
	if err != nil {
		v.internal(w, err)
		return
	}
	api.WriteJSON(w, http.StatusCreated, res)
}

// webhookErr answers a store error about one endpoint.
func (v *Server) webhookErr(w http.ResponseWriter, err error) {
	if errors.Is(err, store.ErrNotFound) {
		apiError(w, http.StatusNotFound, "not_found", "no such webhook", "id")
		return
	}
	v.internal(w, err)
}

func (v *Server) getWebhook(w http.ResponseWriter, r *http.Request, key *store.APIKey) {
	e, err := v.Store.GetEndpoint(r.Context(), key.TenantID, r.PathValue("id"))
	if err != nil {
		v.webhookErr(w, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, e)
}

func (v *Server) deleteWebhook(w http.ResponseWriter, r *http.Request, key *store.APIKey) {
	if err := v.Store.DeleteEndpoint(r.Context(), key.TenantID, r.PathValue("id")); err != nil {
		v.webhookErr(w, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"removed": r.PathValue("id")})
}

func (v *Server) testWebhook(w http.ResponseWriter, r *http.Request, key *store.APIKey) {
	if err := v.Store.QueueTestWebhook(r.Context(), key.TenantID, r.PathValue("id"), v.Now()); err != nil {
		v.webhookErr(w, err)
		return
	}
	api.WriteJSON(w, http.StatusAccepted, map[string]any{"queued": r.PathValue("id")})
}

func (v *Server) webhookAttempts(w http.ResponseWriter, r *http.Request, key *store.APIKey) {
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	as, err := v.Store.WebhookAttempts(r.Context(), key.TenantID, r.PathValue("id"), limit)
	if err != nil {
		v.webhookErr(w, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"items": as})
}

// listAlerts is GET /v1/alerts (admin): firing and recent alerts, for the
// tenant that receives alert events.
func (v *Server) listAlerts(w http.ResponseWriter, r *http.Request, key *store.APIKey) {
	var as []store.Alert
	var err error
	if v.Alerts != nil {
		as, err = v.Alerts.List(r.Context(), key.TenantID)
	}
	if err != nil {
		v.internal(w, err)
		return
	}
	if as == nil {
		as = []store.Alert{}
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"items": as})
}
