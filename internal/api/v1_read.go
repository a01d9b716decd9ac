package api

import (
	"errors"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/posthorn/posthorn/internal/queue/ops"
	"github.com/posthorn/posthorn/internal/store"
)

// MessageView is GET /v1/messages/{id}.
type MessageView struct {
	ID         string            `json:"id"`
	From       string            `json:"from"`
	Lane       store.Lane        `json:"lane"`
	Subject    string            `json:"subject,omitempty"`
	MessageID  string            `json:"message_id_header,omitempty"`
	Size       int               `json:"size"`
	CreatedAt  time.Time         `json:"created_at"`
	SendAt     time.Time         `json:"send_at,omitzero"`
	Tags       []string          `json:"tags,omitempty"`
	Metadata   map[string]string `json:"metadata,omitempty"`
	Sandbox    bool              `json:"sandbox,omitempty"` // sent with a sandbox key: stored, never sent
	Recipients []RecipientView   `json:"recipients"`
	// BodyPrunedAt is set when body_retention dropped the body.
	BodyPrunedAt time.Time `json:"body_pruned_at,omitzero"`
}

// RecipientView is one recipient's delivery with its attempts.
type RecipientView struct {
	Email         string          `json:"email"`
	State         store.State     `json:"state"`
	Attempts      int             `json:"attempts"`
	NextAttemptAt time.Time       `json:"next_attempt_at,omitzero"`
	LastReply     string          `json:"last_reply,omitempty"`
	LastError     string          `json:"last_error,omitempty"` // local error text when the last attempt got no reply
	LastClass     string          `json:"last_class,omitempty"`
	History       []store.Attempt `json:"history"`
}

// decodeSubject decodes RFC 2047 encoded words ("=?UTF-8?B?...?=");
// a subject that does not decode is shown as stored.
func decodeSubject(s string) string {
	dec := new(mime.WordDecoder)
	if out, err := dec.DecodeHeader(s); err == nil {
		return out
	}
	return s
}

func (v *V1) get(w http.ResponseWriter, r *http.Request, key *store.APIKey) {
	d, err := LoadMessageDetail(r.Context(), v.Store, key.TenantID, r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		apiError(w, http.StatusNotFound, "not_found", "no such message", "")
		return
	}
	if err != nil {
		v.internal(w, err)
		return
	}
	m := d.Message
	out := MessageView{ID: m.ID, From: m.Sender, Lane: m.Lane, Subject: decodeSubject(m.Subject), MessageID: m.MessageID, Size: m.Size,
		CreatedAt: m.CreatedAt, SendAt: m.SendAt, Tags: m.Tags, Metadata: m.Metadata, Sandbox: m.Sandbox, BodyPrunedAt: m.BodyPrunedAt}
	for _, dl := range d.Deliveries {
		rv := RecipientView{Email: dl.Recipient, State: dl.State, Attempts: dl.Attempts, NextAttemptAt: dl.NextAttemptAt,
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
	writeJSON(w, http.StatusOK, out)
}

// ListResponse is GET /v1/messages: deliveries (one per recipient), oldest
// first, with a cursor for the next page.
type ListResponse struct {
	Items      []store.Delivery `json:"items"`
	NextCursor string           `json:"next_cursor,omitempty"`
}

func (v *V1) list(w http.ResponseWriter, r *http.Request, key *store.APIKey) {
	q := r.URL.Query()
	f, err := ParseQueueFilter(q, v.Now())
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
	resp := ListResponse{Items: ds}
	if resp.Items == nil {
		resp.Items = []store.Delivery{}
	}
	if len(ds) == f.Limit {
		resp.NextCursor = strconv.FormatInt(ds[len(ds)-1].ID, 10)
	}
	writeJSON(w, http.StatusOK, resp)
}

// CancelResponse answers DELETE /v1/messages/{id}.
type CancelResponse struct {
	ID        string `json:"id"`
	Cancelled int    `json:"cancelled"`
}

func (v *V1) cancel(w http.ResponseWriter, r *http.Request, key *store.APIKey) {
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
	writeJSON(w, http.StatusOK, CancelResponse{ID: id, Cancelled: res.Changed})
}
