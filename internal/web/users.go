package web

import (
	"errors"
	"net/http"
	"strings"

	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/tenant"
)

// UsersView is the SMTP users page. Password is set only on the answer to
// a create: the generated password, shown this once.
type UsersView struct {
	Users    []store.SMTPUser
	Tenants  []store.Tenant
	Created  *store.SMTPUser
	Password string
}

func (d *Dashboard) usersView(r *http.Request, s *session) (*UsersView, error) {
	v := &UsersView{}
	var err error
	if v.Users, err = d.cfg.Store.ListSMTPUsers(r.Context(), s.TenantID); err != nil {
		return nil, err
	}
	if s.TenantID == "" {
		if v.Tenants, err = d.cfg.Store.ListTenants(r.Context()); err != nil {
			return nil, err
		}
	}
	return v, nil
}

func (d *Dashboard) users(w http.ResponseWriter, r *http.Request, s *session) {
	if !s.can(tenant.ScopeAdmin) {
		http.Error(w, "SMTP users are for admins", http.StatusForbidden)
		return
	}
	v, err := d.usersView(r, s)
	if err != nil {
		d.internal(w, err)
		return
	}
	d.render(w, r, s, "users", "SMTP users", v)
}

// createUser makes an SMTP user with a generated password, shown once in
// the answer (never in a URL).
func (d *Dashboard) createUser(w http.ResponseWriter, r *http.Request, s *session) {
	tid := d.tenantFor(r, s)
	if tid == "" {
		back(w, r, "/ui/users", "", "choose a tenant that exists")
		return
	}
	lane, err := store.ParseLane(r.PostFormValue("lane"))
	if err != nil {
		back(w, r, "/ui/users", "", err.Error())
		return
	}
	u, pw, err := d.cfg.Tenants.AddUser(r.Context(), tid, strings.TrimSpace(r.PostFormValue("username")), "", lane)
	if errors.Is(err, store.ErrConflict) {
		back(w, r, "/ui/users", "", "that username is taken")
		return
	}
	if err != nil {
		back(w, r, "/ui/users", "", err.Error())
		return
	}
	v, err := d.usersView(r, s)
	if err != nil {
		d.internal(w, err)
		return
	}
	v.Created, v.Password = u, pw
	d.render(w, r, s, "users", "SMTP users", v)
}

func (d *Dashboard) removeUser(w http.ResponseWriter, r *http.Request, s *session) {
	name := r.PathValue("username")
	if err := d.cfg.Tenants.RemoveUser(r.Context(), s.TenantID, name); err != nil {
		d.notFoundOr(w, r, err)
		return
	}
	back(w, r, "/ui/users", "removed SMTP user "+name, "")
}
