package web

import (
	"net/http"
	"strings"

	"github.com/posthorn/posthorn/internal/store"
)

// EventsView is the event log page: one type (or all) since a time.
type EventsView struct {
	Type, Recipient, Since string
	Rows                   []store.Event
	Capped                 bool
}

const eventsShown = 500

// events lists the activity log's events (the overview's counts link
// here), oldest first within the window, read from the store: from the
// first event of the window (found by its id) through the (tenant, type,
// id) index.
func (d *Dashboard) events(w http.ResponseWriter, r *http.Request, s *session) {
	q := r.URL.Query()
	v := &EventsView{Type: strings.TrimSpace(q.Get("type")), Recipient: strings.TrimSpace(q.Get("recipient")), Since: q.Get("since")}
	if _, ok := sinceChoices[v.Since]; !ok {
		v.Since = "1h"
	}
	since := d.cfg.Now().Add(-sinceChoices[v.Since])
	after, err := d.firstEventSince(r.Context(), since)
	if err != nil {
		d.internal(w, err)
		return
	}
	rows, err := d.cfg.Store.Events(r.Context(), store.EventFilter{TenantID: s.TenantID, Type: v.Type, Recipient: v.Recipient,
		Since: since, AfterID: after, Limit: eventsShown + 1})
	if err != nil {
		d.internal(w, err)
		return
	}
	if len(rows) > eventsShown {
		rows, v.Capped = rows[:eventsShown], true
	}
	v.Rows = rows
	d.render(w, r, s, "events", "Events", v)
}
