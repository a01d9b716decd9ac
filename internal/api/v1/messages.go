package v1

import (
	"errors"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/posthorn/posthorn/internal/api"
	"github.com/posthorn/posthorn/internal/queue/ops"
	"github.com/posthorn/posthorn/internal/store"
)

// decodeSubject decodes RFC 2047 encoded words ("=?UTF-8?B?...?=");
// a subject that does not decode is shown as stored.
func decodeSubject(s string) string {
	dec := new(mime.WordDecoder)
	if out, err := dec.DecodeHeader(s); err == nil {
		return out
	}
	return s
}

func (v *Server) get(w http.ResponseWriter, r *http.Request, key *store.APIKey) {
	d, err := api.LoadMessageDetail(r.Context(), v.Store, key.TenantID, r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		apiError(w, http.StatusNotFound, "not_found", "no such message", "")
		return
	}
	if err != nil {
		v.internal(w, err)
		return
	}
	m := d.Message
	out := api.MessageView{ID: m.ID, From: m.Sender, Lane: m.Lane, Subject: decodeSubject(m.Subject), MessageID: m.MessageID, Size: m.Size,
		CreatedAt: m.CreatedAt, SendAt: m.SendAt, Tags: m.Tags, Metadata: m.Metadata, Sandbox: m.Sandbox, BodyPrunedAt: m.BodyPrunedAt}
	for _, dl := range d.Deliveries {
		rv := api.RecipientView{Email: dl.Recipient, State: dl.State, Attempts: dl.Attempts, NextAttemptAt: dl.NextAttemptAt,
			LastClass: dl.LastClass, History: []store.Attempt{}}
		if dl.LastReply.Code != 0 {
			rv.LastReply = dl.LastReply.String()
		}
		rv.LastError = dl.LastError
		if dl.State.Final() {
			rv.NextAttemptAt = time.Time{}
		}
		for _, a := range d.Attempts {
			if a.DeliveryID == dl.ID {
				rv.History = append(rv.History, a)
			}
		}
		out.Recipients = append(out.Recipients, rv)
	}
	api.WriteJSON(w, http.StatusOK, out)
}

func (v *Server) list(w http.ResponseWriter, r *http.Request, key *store.APIKey) {
	q := r.URL.Query()
	f, err := api.ParseQueueFilter(q, v.Now())
	if err != nil {
		apiError(w, http.StatusBadRequest, "invalid_filter", err.Error(), "")
		return
	}
	if q.Get("state") == "" {
		f.States = nil // the API lists every state unless asked
	}
	f.TenantID, f.Tag = key.TenantID, q.Get("tag")
	for name, dst := range map[string]*time.Time{"since": &f.Since, "until": &f.OlderThan} {
		if s := q.Get(name); s != "" {
			t, err := time.Parse(time.RFC3339, s)
			if err != nil {
				apiError(w, http.StatusBadRequest, "invalid_filter", name+": want RFC 3339 time", name)
				return
			}
			*dst = t
		}
	}
	if c := q.Get("cursor"); c != "" {
		n, err := strconv.ParseInt(c, 10, 64)
		if err != nil || n < 0 {
			apiError(w, http.StatusBadRequest, "invalid_cursor", "bad cursor", "cursor")
			return
		}
		f.AfterID = n
	}
	if q.Get("limit") == "" || f.Limit > 1000 || f.Limit <= 0 {
		f.Limit = 100
	}
	ds, err := v.Store.ListDeliveries(r.Context(), f)
	if err != nil {
		v.internal(w, err)
		return
	}
	resp := api.ListResponse{Items: ds}
	if resp.Items == nil {
		resp.Items = []store.Delivery{}
	}
	if len(ds) == f.Limit {
		resp.NextCursor = strconv.FormatInt(ds[len(ds)-1].ID, 10)
	}
	api.WriteJSON(w, http.StatusOK, resp)
}

func (v *Server) cancel(w http.ResponseWriter, r *http.Request, key *store.APIKey) {
	id := r.PathValue("id")
	if _, err := v.Store.GetMessage(r.Context(), key.TenantID, id, false); errors.Is(err, store.ErrNotFound) {
		apiError(w, http.StatusNotFound, "not_found", "no such message", "")
		return
	} else if err != nil {
		v.internal(w, err)
		return
	}
	res, err := v.Ops.Cancel(r.Context(), ops.Selection{TenantID: key.TenantID, IDs: []string{id}})
	if err != nil {
		v.internal(w, err)
		return
	}
	if res.Changed == 0 {
		apiError(w, http.StatusConflict, "not_cancellable", "nothing left to cancel: every recipient is being sent or already final", "")
		return
	}
	api.WriteJSON(w, http.StatusOK, api.CancelResponse{ID: id, Cancelled: res.Changed})
}
