package web

import (
	"fmt"
	"net/http"

	"github.com/posthorn/posthorn/internal/domain"
	"github.com/posthorn/posthorn/internal/tenant"
)

// DomainsView is the sending domains page: each domain's status and the
// DNS records to publish, with the last check's result per record.
type DomainsView struct {
	Domains []*domain.Info
	Checks  map[string]map[string]domain.RecordCheck // domain -> record name+type -> check
}

func (d *Dashboard) domains(w http.ResponseWriter, r *http.Request, s *session) {
	if !s.can(tenant.ScopeAdmin) {
		http.Error(w, "sending domains are for admins", http.StatusForbidden)
		return
	}
	if d.cfg.Domains == nil {
		http.NotFound(w, r)
		return
	}
	ds, err := d.cfg.Domains.List(r.Context(), s.TenantID)
	if err != nil {
		d.internal(w, err)
		return
	}
	v := &DomainsView{Domains: ds, Checks: map[string]map[string]domain.RecordCheck{}}
	for _, x := range ds {
		if x.LastCheck == nil {
			continue
		}
		m := map[string]domain.RecordCheck{}
		for _, c := range x.LastCheck.Records {
			m[c.Type+" "+c.Name] = c
		}
		v.Checks[x.Domain] = m
	}
	d.render(w, r, s, "domains", "Sending domains", v)
}

// checkDomain checks one domain's records in DNS now.
func (d *Dashboard) checkDomain(w http.ResponseWriter, r *http.Request, s *session) {
	if d.cfg.Domains == nil {
		http.NotFound(w, r)
		return
	}
	name := r.PathValue("domain")
	tid := d.tenantFor(r, s)
	rep, err := d.cfg.Domains.Check(r.Context(), tid, name)
	if err != nil {
		d.notFoundOr(w, r, err)
		return
	}
	back(w, r, "/ui/domains", fmt.Sprintf("checked %s: %s", name, rep.Status), "")
}
