package admin

import (
	"net/http"

	"github.com/posthorn/posthorn/internal/api"
	"github.com/posthorn/posthorn/internal/domain"
)

// domainRoutes adds the sending-domain endpoints to the admin API. The
// operator sees every tenant's domains.
func (a *Server) domainRoutes(mux *http.ServeMux) {
	fail := func(w http.ResponseWriter, err error) {
		code, kind := api.DomainError(err)
		if code == http.StatusInternalServerError {
			a.Log.Error("admin api", "err", err)
		}
		api.WriteError(w, code, kind, err.Error())
	}
	mux.HandleFunc("GET /admin/v1/domains", func(w http.ResponseWriter, r *http.Request) {
		tenantID, err := a.tenantFilter(r)
		if err != nil {
			a.fail(w, err)
			return
		}
		ds, err := a.Domains.List(r.Context(), tenantID)
		if err != nil {
			fail(w, err)
			return
		}
		api.WriteJSON(w, http.StatusOK, map[string]any{"items": ds, "count": len(ds)})
	})
	mux.HandleFunc("POST /admin/v1/domains", func(w http.ResponseWriter, r *http.Request) {
		var req api.DomainRequest
		if err := api.Decode(r, &req); err != nil {
			a.fail(w, err)
			return
		}
		t, err := a.Tenants.Resolve(r.Context(), req.Tenant)
		if err != nil {
			a.fail(w, err)
			return
		}
		info, err := a.Domains.Add(r.Context(), domain.AddRequest{TenantID: t.ID, Domain: req.Domain, Algorithm: req.Algorithm,
			Selector: req.Selector, UnverifiedOK: req.UnverifiedOK})
		if err != nil {
			fail(w, err)
			return
		}
		api.WriteJSON(w, http.StatusCreated, info)
	})
	mux.HandleFunc("GET /admin/v1/domains/{domain}", func(w http.ResponseWriter, r *http.Request) {
		info, err := a.Domains.Get(r.Context(), "", r.PathValue("domain"))
		if err != nil {
			fail(w, err)
			return
		}
		api.WriteJSON(w, http.StatusOK, info)
	})
	mux.HandleFunc("DELETE /admin/v1/domains/{domain}", func(w http.ResponseWriter, r *http.Request) {
		if err := a.Domains.Remove(r.Context(), "", r.PathValue("domain")); err != nil {
			fail(w, err)
			return
		}
		api.WriteJSON(w, http.StatusOK, map[string]any{"removed": r.PathValue("domain")})
	})
	mux.HandleFunc("POST /admin/v1/domains/{domain}/check", func(w http.ResponseWriter, r *http.Request) {
		rep, err := a.Domains.Check(r.Context(), "", r.PathValue("domain"))
		if err != nil {
			fail(w, err)
			return
		}
		api.WriteJSON(w, http.StatusOK, rep)
	})
	mux.HandleFunc("POST /admin/v1/domains/{domain}/rotate", func(w http.ResponseWriter, r *http.Request) {
		var req api.RotateRequest
		if err := api.Decode(r, &req); err != nil {
			a.fail(w, err)
			return
		}
		info, err := a.Domains.Rotate(r.Context(), "", r.PathValue("domain"), req.Algorithm, req.Selector)
		if err != nil {
			fail(w, err)
			return
		}
		api.WriteJSON(w, http.StatusOK, info)
	})
	mux.HandleFunc("DELETE /admin/v1/domains/{domain}/keys/{selector}", func(w http.ResponseWriter, r *http.Request) {
		if err := a.Domains.RemoveKey(r.Context(), "", r.PathValue("domain"), r.PathValue("selector")); err != nil {
			fail(w, err)
			return
		}
		api.WriteJSON(w, http.StatusOK, map[string]any{"removed": r.PathValue("selector")})
	})
}
