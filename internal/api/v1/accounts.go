package v1

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/posthorn/posthorn/internal/api"
	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/tenant"
)

// Accounts on /v1: a person acts with HTTP basic auth (email and
// password) on /v1/apikeys only, to create, list and remove API keys;
// everything else takes an API key. A key made by an account holds at
// most the account's role's scopes (and inherits nothing else); a key
// made by a key holds at most that key's scopes, domains and sandbox. An
// installation owner (an account of no tenant) names the tenant in the
// request (default: the default tenant) and lists every tenant's keys.
//
// Whatever belongs to another tenant is answered 404, as if it did not
// exist.

type accountCtxKey struct{}

// callerAccount is the account that authenticated the request, if any.
func callerAccount(r *http.Request) *store.Account {
	a, _ := r.Context().Value(accountCtxKey{}).(*store.Account)
	return a
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// basicAuth checks an account's email and password; it writes the error
// answer and returns nil when they do not pass.
func (v *Server) basicAuth(w http.ResponseWriter, r *http.Request, email, password string) *store.Account {
	ip := clientIP(r)
	undo, ok := v.logins.Reserve("ip:"+ip, "user:"+strings.ToLower(email))
	if !ok {
		apiError(w, http.StatusTooManyRequests, "too_many_attempts", "too many failed logins; try again later", "")
		return nil
	}
	a, err := v.Tenants.CheckAccount(r.Context(), email, password)
	if errors.Is(err, tenant.ErrBadCredentials) {
		v.authFailed(r, ip, email)
		w.Header().Set("WWW-Authenticate", `Basic realm="posthorn"`)
		apiError(w, http.StatusUnauthorized, "unauthorized", "invalid email or password", "")
		return nil
	}
	undo()
	if err != nil {
		v.internal(w, err)
		return nil
	}
	return a
}

// authFailed writes an auth_failed event (bounded by the login limit).
func (v *Server) authFailed(r *http.Request, ip, name string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 5*time.Second)
	defer cancel()
	if err := v.Tenants.RecordAuthFailure(ctx, "api", ip, name); err != nil {
		v.Log.Warn("record auth_failed event", "err", err)
	}
}

// keyAdmin reports whether the caller manages every key of its tenant (an
// admin key, or an admin or owner account); other accounts manage only
// the keys they made.
func keyAdmin(r *http.Request, key *store.APIKey) bool {
	if a := callerAccount(r); a != nil {
		return a.Role == tenant.RoleOwner || a.Role == tenant.RoleAdmin
	}
	return tenant.HasScope(key, tenant.ScopeAdmin)
}

func (v *Server) listKeys(w http.ResponseWriter, r *http.Request, key *store.APIKey) {
	a := callerAccount(r)
	if a == nil && !tenant.HasScope(key, tenant.ScopeAdmin) {
		apiError(w, http.StatusForbidden, "missing_scope", "listing keys needs the admin scope", "")
		return
	}
	tenantID := key.TenantID
	if a != nil && a.TenantID == "" {
		tenantID = "" // the installation owner sees every tenant's keys
		if name := r.URL.Query().Get("tenant"); name != "" {
			t, err := v.Tenants.Resolve(r.Context(), name)
			if err != nil {
				apiError(w, http.StatusNotFound, "not_found", "no such tenant", "tenant")
				return
			}
			tenantID = t.ID
		}
	}
	ks, err := v.Store.ListAPIKeys(r.Context(), tenantID)
	if err != nil {
		v.internal(w, err)
		return
	}
	out := []store.APIKey{}
	for _, k := range ks {
		if keyAdmin(r, key) || (a != nil && k.CreatedBy == a.Email) {
			out = append(out, k)
		}
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"items": out, "count": len(out)})
}

func (v *Server) createKey(w http.ResponseWriter, r *http.Request, key *store.APIKey) {
	var req api.V1KeyRequest
	if !v.readSmall(w, r, 64<<10, &req) {
		return
	}
	spec := tenant.KeySpec{TenantID: key.TenantID, Name: req.Name, Scopes: req.Scopes, Domains: req.Domains, Sandbox: req.Sandbox}
	if req.ExpiresAt != nil {
		spec.ExpiresAt = *req.ExpiresAt
	}
	a := callerAccount(r)
	if req.Tenant != "" || (a != nil && a.TenantID == "") {
		t, err := v.Tenants.Resolve(r.Context(), req.Tenant)
		if err != nil || (a == nil || a.TenantID != "") && t.ID != key.TenantID {
			apiError(w, http.StatusNotFound, "not_found", "no such tenant", "tenant")
			return
		}
		spec.TenantID = t.ID
	}
	var err error
	if a != nil {
		spec, err = tenant.AccountKeySpec(a, spec)
	} else {
		spec, err = keyKeySpec(key, spec)
	}
	if errors.Is(err, tenant.ErrScopeTooWide) {
		apiError(w, http.StatusForbidden, "scope_too_wide", err.Error(), "scopes")
		return
	}
	if errors.Is(err, store.ErrNotFound) {
		apiError(w, http.StatusNotFound, "not_found", "no such tenant", "tenant")
		return
	}
	if err != nil {
		apiError(w, http.StatusForbidden, "not_allowed", err.Error(), "")
		return
	}
	secret, k, err := v.Tenants.CreateKey(r.Context(), spec)
	if err != nil {
		apiError(w, http.StatusBadRequest, "invalid_key", err.Error(), "")
		return
	}
	api.WriteJSON(w, http.StatusCreated, api.V1KeyResponse{APIKey: *k, Secret: secret})
}

// keyKeySpec checks a key made by a key: admin scope needed, and at most
// the maker's scopes, domains and sandbox.
func keyKeySpec(maker *store.APIKey, spec tenant.KeySpec) (tenant.KeySpec, error) {
	if !tenant.HasScope(maker, tenant.ScopeAdmin) {
		return spec, errors.New("creating keys needs the admin scope")
	}
	if len(spec.Scopes) == 0 {
		spec.Scopes = maker.Scopes
	}
	if !tenant.ScopesWithin(spec.Scopes, maker.Scopes) {
		return spec, tenant.ErrScopeTooWide
	}
	if len(maker.Domains) > 0 {
		if len(spec.Domains) == 0 {
			spec.Domains = maker.Domains
		}
		for _, d := range spec.Domains {
			if !tenant.DomainAllowed(maker.Domains, d) {
				return spec, errors.New("domain " + d + " is outside this key's domains")
			}
		}
	}
	spec.Sandbox = spec.Sandbox || maker.Sandbox
	if !maker.ExpiresAt.IsZero() && (spec.ExpiresAt.IsZero() || spec.ExpiresAt.After(maker.ExpiresAt)) {
		spec.ExpiresAt = maker.ExpiresAt
	}
	return spec, nil
}

func (v *Server) removeKey(w http.ResponseWriter, r *http.Request, key *store.APIKey) {
	a := callerAccount(r)
	if a == nil && !tenant.HasScope(key, tenant.ScopeAdmin) {
		apiError(w, http.StatusForbidden, "missing_scope", "removing keys needs the admin scope", "")
		return
	}
	id := r.PathValue("id")
	k, err := v.Store.GetAPIKey(r.Context(), id)
	visible := err == nil && (k.TenantID == key.TenantID || a != nil && a.TenantID == "") &&
		(keyAdmin(r, key) || a != nil && k.CreatedBy == a.Email)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		v.internal(w, err)
		return
	}
	if !visible {
		apiError(w, http.StatusNotFound, "not_found", "no such API key", "")
		return
	}
	if err := v.Tenants.RemoveKey(r.Context(), k.TenantID, id); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			apiError(w, http.StatusNotFound, "not_found", "no such API key", "")
			return
		}
		v.internal(w, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"removed": id})
}

func (v *Server) listUsers(w http.ResponseWriter, r *http.Request, key *store.APIKey) {
	us, err := v.Store.ListSMTPUsers(r.Context(), key.TenantID)
	if err != nil {
		v.internal(w, err)
		return
	}
	if us == nil {
		us = []store.SMTPUser{}
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"items": us, "count": len(us)})
}

func (v *Server) createUser(w http.ResponseWriter, r *http.Request, key *store.APIKey) {
	var req api.V1UserRequest
	if !v.readSmall(w, r, 64<<10, &req) {
		return
	}
	lane, e := parseLane(req.Lane)
	if e != nil {
		apiError(w, http.StatusBadRequest, e.Code, e.Message, e.Field)
		return
	}
	if len(key.Domains) > 0 {
		if len(req.Domains) == 0 {
			req.Domains = key.Domains
		}
		for _, d := range req.Domains {
			if !tenant.DomainAllowed(key.Domains, d) {
				apiError(w, http.StatusForbidden, "sender_domain_not_allowed", "domain "+d+" is outside this key's domains", "domains")
				return
			}
		}
	}
	u, pass, err := v.Tenants.AddUser(r.Context(), key.TenantID, req.Username, req.Password, lane, tenant.WithDomains(req.Domains),
		tenant.WithDSN(req.DSN), tenant.WithMessageIDIdempotency(req.MessageIDIdempotency))
	if errors.Is(err, store.ErrConflict) {
		apiError(w, http.StatusConflict, "conflict", "that username is taken", "username")
		return
	}
	if err != nil {
		apiError(w, http.StatusBadRequest, "invalid_user", err.Error(), "")
		return
	}
	api.WriteJSON(w, http.StatusCreated, map[string]any{"user": u, "password": pass})
}

func (v *Server) removeUser(w http.ResponseWriter, r *http.Request, key *store.APIKey) {
	name := r.PathValue("username")
	if err := v.Tenants.RemoveUser(r.Context(), key.TenantID, name); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			apiError(w, http.StatusNotFound, "not_found", "no such user", "")
			return
		}
		v.internal(w, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"removed": name})
}
