package web

import (
	"errors"
	"net/http"
	"strings"

	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/tenant"
)

// KeysView is the API keys page. Secret is set only on the answer to a
// create: the key's secret form, shown this once.
type KeysView struct {
	Keys    []store.APIKey
	Tenants []store.Tenant
	Secret  string
	Created *store.APIKey
	Scopes  []string
}

func (d *Dashboard) keysView(r *http.Request, s *session) (*KeysView, error) {
	v := &KeysView{Scopes: tenant.RoleScopes(s.Role)}
	var err error
	if v.Keys, err = d.cfg.Store.ListAPIKeys(r.Context(), s.TenantID); err != nil {
		return nil, err
	}
	if s.TenantID == "" {
		if v.Tenants, err = d.cfg.Store.ListTenants(r.Context()); err != nil {
			return nil, err
		}
	}
	return v, nil
}

func (d *Dashboard) keys(w http.ResponseWriter, r *http.Request, s *session) {
	if !s.can(tenant.ScopeAdmin) {
		http.Error(w, "API keys are for admins", http.StatusForbidden)
		return
	}
	v, err := d.keysView(r, s)
	if err != nil {
		d.internal(w, err)
		return
	}
	d.render(w, r, s, "keys", "API keys", v)
}

// createKey makes a key with at most the account's role's scopes and
// answers with the page showing its secret once (no redirect: the secret
// is never in a URL; pages are sent with Cache-Control: no-store).
func (d *Dashboard) createKey(w http.ResponseWriter, r *http.Request, s *session) {
	spec := tenant.KeySpec{TenantID: d.tenantFor(r, s), Name: strings.TrimSpace(r.PostFormValue("name")), Scopes: r.PostForm["scope"],
		Sandbox: r.PostFormValue("sandbox") == "on"}
	if spec.TenantID == "" {
		back(w, r, "/ui/keys", "", "choose a tenant that exists")
		return
	}
	if spec.Name == "" {
		back(w, r, "/ui/keys", "", "give the key a name")
		return
	}
	spec, err := tenant.AccountKeySpec(&store.Account{Email: s.Email, TenantID: s.TenantID, Role: s.Role}, spec)
	if err != nil {
		back(w, r, "/ui/keys", "", err.Error())
		return
	}
	secret, k, err := d.cfg.Tenants.CreateKey(r.Context(), spec)
	if errors.Is(err, store.ErrNotFound) {
		back(w, r, "/ui/keys", "", "no such tenant")
		return
	}
	if err != nil {
		back(w, r, "/ui/keys", "", err.Error())
		return
	}
	v, err := d.keysView(r, s)
	if err != nil {
		d.internal(w, err)
		return
	}
	v.Secret, v.Created = secret, k
	d.render(w, r, s, "keys", "API keys", v)
}

func (d *Dashboard) revokeKey(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	if err := d.cfg.Tenants.RemoveKey(r.Context(), s.TenantID, id); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			http.NotFound(w, r)
			return
		}
		d.internal(w, err)
		return
	}
	back(w, r, "/ui/keys", "revoked key "+id, "")
}
