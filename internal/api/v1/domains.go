package v1

import (
	"net/http"

	"github.com/posthorn/posthorn/internal/api"
	"github.com/posthorn/posthorn/internal/domain"
	"github.com/posthorn/posthorn/internal/store"
)

// The /v1/domains endpoints: a tenant's sending domains (admin scope). A
// domain of another tenant is answered 404, as if it did not exist.

func (v *Server) domainFail(w http.ResponseWriter, err error) {
	code, kind := api.DomainError(err)
	if code == http.StatusInternalServerError {
		v.internal(w, err)
		return
	}
	apiError(w, code, kind, err.Error(), "")
}

func (v *Server) listDomains(w http.ResponseWriter, r *http.Request, key *store.APIKey) {
	ds, err := v.Domains.List(r.Context(), key.TenantID)
	if err != nil {
		v.domainFail(w, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"items": ds, "count": len(ds)})
}

func (v *Server) addDomain(w http.ResponseWriter, r *http.Request, key *store.APIKey) {
	var req api.V1DomainRequest
	if !v.readSmall(w, r, 64<<10, &req) {
		return
	}
	info, err := v.Domains.Add(r.Context(), domain.AddRequest{TenantID: key.TenantID, Domain: req.Domain, Algorithm: req.Algorithm,
		Selector: req.Selector, UnverifiedOK: req.UnverifiedOK})
	if err != nil {
		v.domainFail(w, err)
		return
	}
	api.WriteJSON(w, http.StatusCreated, info)
}

func (v *Server) getDomain(w http.ResponseWriter, r *http.Request, key *store.APIKey) {
	info, err := v.Domains.Get(r.Context(), key.TenantID, r.PathValue("domain"))
	if err != nil {
		v.domainFail(w, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, info)
}

func (v *Server) removeDomain(w http.ResponseWriter, r *http.Request, key *store.APIKey) {
	if err := v.Domains.Remove(r.Context(), key.TenantID, r.PathValue("domain")); err != nil {
		v.domainFail(w, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"removed": r.PathValue("domain")})
}

func (v *Server) checkDomain(w http.ResponseWriter, r *http.Request, key *store.APIKey) {
	rep, err := v.Domains.Check(r.Context(), key.TenantID, r.PathValue("domain"))
	if err != nil {
		v.domainFail(w, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, rep)
}

func (v *Server) rotateDomain(w http.ResponseWriter, r *http.Request, key *store.APIKey) {
	var req api.RotateRequest
	if r.ContentLength != 0 {
		if !v.readSmall(w, r, 64<<10, &req) {
			return
		}
	}
	info, err := v.Domains.Rotate(r.Context(), key.TenantID, r.PathValue("domain"), req.Algorithm, req.Selector)
	if err != nil {
		v.domainFail(w, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, info)
}

func (v *Server) removeDomainKey(w http.ResponseWriter, r *http.Request, key *store.APIKey) {
	if err := v.Domains.RemoveKey(r.Context(), key.TenantID, r.PathValue("domain"), r.PathValue("selector")); err != nil {
		v.domainFail(w, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"removed": r.PathValue("selector")})
}
