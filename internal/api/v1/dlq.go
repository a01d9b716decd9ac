package v1

import (
	"errors"
	"net/http"

	"github.com/posthorn/posthorn/internal/api"
	"github.com/posthorn/posthorn/internal/queue"
	"github.com/posthorn/posthorn/internal/queue/ops"
	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/tenant"
)

// listDLQ is GET /v1/dlq: the tenant's dead letters, newest first,
// filtered like GET /v1/messages plus class, code and provider; limit
// (default 1000) and cursor page like the admin listing.
func (v *Server) listDLQ(w http.ResponseWriter, r *http.Request, key *store.APIKey) {
	q := r.URL.Query()
	q.Set("state", string(store.DeadLetter))
	f, err := api.ParseQueueFilter(q, v.Now())
	if err != nil {
		apiError(w, http.StatusBadRequest, "invalid_filter", err.Error(), "")
		return
	}
	f.TenantID = key.TenantID
	list, err := api.PageDeliveries(r.Context(), v.Store, f, q.Get("cursor"))
	var bad *api.BadRequest
	if errors.As(err, &bad) {
		apiError(w, http.StatusBadRequest, "invalid_cursor", bad.Msg, "cursor")
		return
	} else if err != nil {
		v.internal(w, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, list)
}

func (v *Server) dlqSelection(w http.ResponseWriter, r *http.Request, key *store.APIKey) (ops.Selection, bool) {
	var req api.DLQRequest
	if !v.readSmall(w, r, 1<<20, &req) {
		return ops.Selection{}, false
	}
	if len(req.IDs) == 0 && req.Domain == "" && !req.All {
		apiError(w, http.StatusBadRequest, "missing_field", "give ids, a domain, or all: true", "ids")
		return ops.Selection{}, false
	}
	for _, id := range req.IDs {
		// Another tenant's message is answered as if it did not exist.
		if _, err := v.Store.GetMessage(r.Context(), key.TenantID, id, false); errors.Is(err, store.ErrNotFound) {
			apiError(w, http.StatusNotFound, "not_found", "no such message: "+id, "ids")
			return ops.Selection{}, false
		} else if err != nil {
			v.internal(w, err)
			return ops.Selection{}, false
		}
	}
	return ops.Selection{TenantID: key.TenantID, IDs: req.IDs, Domain: req.Domain, All: req.All}, true
}

// retryDLQ is POST /v1/dlq/retry: back to queued with a fresh lifetime.
func (v *Server) retryDLQ(w http.ResponseWriter, r *http.Request, key *store.APIKey) {
	sel, ok := v.dlqSelection(w, r, key)
	if !ok {
		return
	}
	res, err := v.Ops.Requeue(r.Context(), sel, true)
	if err != nil {
		v.internal(w, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, res)
}

// purgeDLQ is POST /v1/dlq/purge: dead letters become cancelled.
func (v *Server) purgeDLQ(w http.ResponseWriter, r *http.Request, key *store.APIKey) {
	sel, ok := v.dlqSelection(w, r, key)
	if !ok {
		return
	}
	res, err := v.Ops.Purge(r.Context(), sel)
	if err != nil {
		v.internal(w, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, res)
}

// destinations is GET /v1/destinations (admin): every destination with
// live state or pending mail. Destinations are shared by every tenant,
// but what waits there is not: a key of another tenant sees the
// destinations where its tenant has pending mail, with its own counts and
// the shared pause and limits. Keys of the installation's own (default)
// tenant, made at init, and keys made by an owner of the installation (an
// account of no tenant) see every destination, as posthorn destinations
// does.
func (v *Server) destinations(w http.ResponseWriter, r *http.Request, key *store.APIKey) {
	var live []queue.DestinationInfo
	if v.Destinations != nil {
		live, _ = v.Destinations().([]queue.DestinationInfo)
	}
	tenantID := key.TenantID
	if t, err := v.Store.GetTenant(r.Context(), key.TenantID); err == nil && t.Name == tenant.DefaultTenant {
		tenantID = "" // the installation's own tenant
	}
	if key.CreatedBy != "" {
		if a, err := v.Store.GetAccount(r.Context(), key.CreatedBy); err == nil && a.TenantID == "" {
			tenantID = "" // made by an owner of the installation
		}
	}
	rows, err := v.Ops.Destinations(r.Context(), tenantID, live)
	if err != nil {
		v.internal(w, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"items": rows})
}
