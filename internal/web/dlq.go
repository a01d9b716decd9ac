package web

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/posthorn/posthorn/internal/queue"
	"github.com/posthorn/posthorn/internal/queue/ops"
	"github.com/posthorn/posthorn/internal/store"
)

// DLQView is the dead-letter page: its filters and rows.
type DLQView struct {
	Domain, Destination, Class, Code, OlderThan string
	Rows                                        []DeadLetter
	Error                                       string
	Capped                                      bool
}

// DeadLetter is one dead letter with its destination.
type DeadLetter struct {
	store.Delivery
	Destination string
	Age         string
}

const dlqLimit = 1000

func (d *Dashboard) dlq(w http.ResponseWriter, r *http.Request, s *session) {
	q := r.URL.Query()
	v := &DLQView{Domain: strings.TrimSpace(q.Get("domain")), Destination: strings.TrimSpace(q.Get("destination")),
		Class: strings.TrimSpace(q.Get("class")), Code: strings.TrimSpace(q.Get("code")), OlderThan: strings.TrimSpace(q.Get("older_than"))}
	f := store.DeliveryFilter{TenantID: s.TenantID, States: []store.State{store.DeadLetter}, Domain: v.Domain, Class: v.Class,
		Newest: true, Limit: dlqLimit + 1}
	if v.Code != "" {
		n, err := strconv.Atoi(v.Code)
		if err != nil || n < 200 || n > 599 {
			v.Error = "code: want a reply code such as 550"
		}
		f.Code = n
	}
	now := d.cfg.Now()
	if v.OlderThan != "" {
		dur, err := time.ParseDuration(v.OlderThan)
		if err != nil {
			v.Error = "older than: want a duration such as 2h"
		}
		f.OlderThan = now.Add(-dur)
	}
	if v.Error == "" {
		rows, err := d.cfg.Store.ListDeliveries(r.Context(), f)
		if err != nil {
			d.internal(w, err)
			return
		}
		if len(rows) > dlqLimit {
			rows, v.Capped = rows[:dlqLimit], true
		}
		for _, x := range rows {
			dest := d.destinationOf(x.Domain)
			if v.Destination != "" && dest != v.Destination {
				continue
			}
			v.Rows = append(v.Rows, DeadLetter{Delivery: x, Destination: dest, Age: age(now.Sub(x.CreatedAt))})
		}
	}
	d.render(w, r, s, "dlq", "Dead letters", v)
}

func (d *Dashboard) destinationOf(domain string) string {
	if d.cfg.Ops != nil && d.cfg.Ops.Inspect != nil {
		if k := d.cfg.Ops.Inspect.Destination(domain); k != "" {
			return k
		}
	}
	return domain
}

// dlqAction retries or purges the chosen dead letters (delivery ids).
func (d *Dashboard) dlqAction(w http.ResponseWriter, r *http.Request, s *session) {
	var ids []int64
	for _, x := range r.PostForm["id"] {
		n, err := strconv.ParseInt(x, 10, 64)
		if err != nil {
			http.Error(w, "bad delivery id", http.StatusBadRequest)
			return
		}
		ids = append(ids, n)
	}
	if len(ids) == 0 {
		back(w, r, "/ui/dlq", "", "choose at least one dead letter")
		return
	}
	// The store's transition keeps to the tenant: another tenant's ids
	// are simply not changed.
	sel := ops.Selection{TenantID: s.TenantID, DeliveryIDs: ids}
	var res *ops.OpResult
	var err error
	action := r.PostFormValue("action")
	switch action {
	case "retry":
		res, err = d.cfg.Ops.Requeue(r.Context(), sel, true)
	case "purge":
		res, err = d.cfg.Ops.Purge(r.Context(), sel)
	default:
		http.Error(w, "unknown action", http.StatusBadRequest)
		return
	}
	if err != nil {
		d.internal(w, err)
		return
	}
	back(w, r, "/ui/dlq", fmt.Sprintf("%s: %d dead letter(s) changed", action, res.Changed), "")
}

// DestView is the destinations page.
type DestView struct {
	Rows      []queue.DestinationInfo
	Available bool
}

func (d *Dashboard) destinations(w http.ResponseWriter, r *http.Request, s *session) {
	if !s.can("admin") {
		http.Error(w, "destinations are for admins", http.StatusForbidden)
		return
	}
	d.render(w, r, s, "destinations", "Destinations", DestView{Rows: d.destinationsOf(), Available: d.cfg.Destinations != nil})
}
