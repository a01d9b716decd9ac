package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/posthorn/posthorn/internal/api"
	"github.com/posthorn/posthorn/internal/queue/ops"
	"github.com/posthorn/posthorn/internal/store"
)

const pageSize = 100

// MessageSearch is the activity list's filter form and its rows.
type MessageSearch struct {
	Recipient, ID, Domain, Tag, State, Since string
	States                                   []store.State
	Rows                                     []store.Delivery
	Next                                     string // URL of the next (older) page, "" at the end
	Error                                    string
}

// sinceChoices are the time filter's options.
var sinceChoices = map[string]time.Duration{"1h": time.Hour, "24h": 24 * time.Hour, "7d": 7 * 24 * time.Hour, "30d": 30 * 24 * time.Hour}

func (d *Dashboard) messages(w http.ResponseWriter, r *http.Request, s *session) {
	q := r.URL.Query()
	ms := &MessageSearch{Recipient: strings.TrimSpace(q.Get("recipient")), ID: strings.TrimSpace(q.Get("id")),
		Domain: strings.TrimSpace(q.Get("domain")), Tag: strings.TrimSpace(q.Get("tag")), State: q.Get("state"),
		Since: q.Get("since"), States: store.AllStates}
	f := store.DeliveryFilter{TenantID: s.TenantID, Recipient: ms.Recipient, MessageID: ms.ID, Domain: ms.Domain, Tag: ms.Tag,
		Newest: true, Limit: pageSize + 1}
	switch ms.State {
	case "", "all":
	case "pending":
		f.States = store.PendingStates
	default:
		if !store.State(ms.State).Valid() {
			ms.Error = "unknown state"
			break
		}
		f.States = []store.State{store.State(ms.State)}
	}
	if dur, ok := sinceChoices[ms.Since]; ok {
		f.Since = d.cfg.Now().Add(-dur)
	}
	if b, err := strconv.ParseInt(q.Get("before"), 10, 64); err == nil && b > 0 {
		f.BeforeID = b
	}
	rows, err := d.cfg.Store.ListDeliveries(r.Context(), f)
	if err != nil {
		d.internal(w, err)
		return
	}
	if len(rows) > pageSize {
		rows = rows[:pageSize]
		nq := url.Values{}
		for k, v := range q {
			nq[k] = v
		}
		nq.Set("before", strconv.FormatInt(rows[len(rows)-1].ID, 10))
		ms.Next = "/ui/messages?" + nq.Encode()
	}
	ms.Rows = rows
	d.render(w, r, s, "messages", "Activity", ms)
}

// Journey is one message with everything that happened to it.
type Journey struct {
	*api.MessageDetail
	Why      *ops.WhyResponse
	Steps    []Step
	AnyOpen  bool // some delivery is not final: actions apply
	AnyHeld  bool
	AnyDefer bool
}

// Step is one line of a message's journey: an event, with the attempt
// that produced it when there is one.
type Step struct {
	store.Event
	Attempt *store.Attempt
}

func (d *Dashboard) loadJourney(ctx context.Context, s *session, id string) (*Journey, error) {
	md, err := api.LoadMessageDetail(ctx, d.cfg.Store, s.TenantID, id)
	if err != nil {
		return nil, err
	}
	j := &Journey{MessageDetail: md}
	if d.cfg.Ops != nil {
		if j.Why, err = d.cfg.Ops.Why(ctx, s.TenantID, id); err != nil {
			return nil, err
		}
	}
	// An attempt's event carries its delivery and attempt number.
	type key struct {
		d int64
		n int
	}
	atts := map[key]*store.Attempt{}
	for i := range md.Attempts {
		a := &md.Attempts[i]
		atts[key{a.DeliveryID, a.N}] = a
	}
	for _, e := range md.Events {
		st := Step{Event: e}
		if e.Attempt > 0 {
			st.Attempt = atts[key{e.DeliveryID, e.Attempt}]
			delete(atts, key{e.DeliveryID, e.Attempt}) // shown once, with its first event
		}
		j.Steps = append(j.Steps, st)
	}
	for _, x := range md.Deliveries {
		j.AnyOpen = j.AnyOpen || !x.State.Final()
		j.AnyHeld = j.AnyHeld || x.State == store.Held
		j.AnyDefer = j.AnyDefer || x.State == store.Deferred || x.State == store.Queued
	}
	return j, nil
}

func (d *Dashboard) message(w http.ResponseWriter, r *http.Request, s *session) {
	j, err := d.loadJourney(r.Context(), s, r.PathValue("id"))
	if err != nil {
		d.notFoundOr(w, r, err)
		return
	}
	d.render(w, r, s, "message", "Message "+j.Message.ID, j)
}

// messageAction is retry now (flush), hold, release or cancel of one
// message of the session's tenant.
func (d *Dashboard) messageAction(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	ctx := r.Context()
	if _, err := d.cfg.Store.GetMessage(ctx, s.TenantID, id, false); err != nil {
		d.notFoundOr(w, r, err) // another tenant's message is one that does not exist
		return
	}
	sel := ops.Selection{TenantID: s.TenantID, IDs: []string{id}}
	var fn func(context.Context, ops.Selection) (*ops.OpResult, error)
	switch r.PathValue("action") {
	case "flush":
		fn = d.cfg.Ops.Flush
	case "hold":
		fn = d.cfg.Ops.Hold
	case "release":
		fn = d.cfg.Ops.Release
	case "cancel":
		fn = d.cfg.Ops.Cancel
	default:
		http.NotFound(w, r)
		return
	}
	res, err := fn(ctx, sel)
	if errors.Is(err, store.ErrRefused) {
		back(w, r, "/ui/messages/"+url.PathEscape(id), "", err.Error())
		return
	}
	if err != nil {
		d.internal(w, err)
		return
	}
	back(w, r, "/ui/messages/"+url.PathEscape(id), fmt.Sprintf("%s: %d recipient(s) changed", r.PathValue("action"), res.Changed), "")
}
