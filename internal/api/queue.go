package api

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/posthorn/posthorn/internal/queue/ops"
	"github.com/posthorn/posthorn/internal/store"
)

// QueueList is the answer to a queue listing: newest first, at most
// limit items; NextCursor, when set, fetches the older ones that did not
// fit (pass it as ?cursor=).
type QueueList struct {
	Items      []store.Delivery `json:"items"`
	Count      int              `json:"count"`
	NextCursor string           `json:"next_cursor,omitempty"`
}

// ParseQueueFilter reads a listing's query parameters: state (comma
// separated, or "all"), domain, recipient, older_than (Go duration),
// tenant, limit, after.
func ParseQueueFilter(q map[string][]string, now time.Time) (store.DeliveryFilter, error) {
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	f := store.DeliveryFilter{Domain: get("domain"), Recipient: get("recipient"), TenantID: get("tenant"), Limit: 1000,
		Class: get("class"), Provider: get("provider")}
	if s := get("code"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 200 || n > 599 {
			return f, &BadRequest{Msg: "code: want a reply code such as 421"}
		}
		f.Code = n
	}
	switch s := get("state"); s {
	case "":
		f.States = store.PendingStates
	case "all":
	default:
		for _, p := range strings.Split(s, ",") {
			st := store.State(strings.TrimSpace(p))
			if !st.Valid() {
				return f, &BadRequest{Msg: fmt.Sprintf("unknown state %q; valid states: %s, or all", p, strings.Join(stateNames(), ", "))}
			}
			f.States = append(f.States, st)
		}
	}
	if s := get("older_than"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			return f, &BadRequest{Msg: "older_than: " + err.Error()}
		}
		f.OlderThan = now.Add(-d)
	}
	if s := get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return f, &BadRequest{Msg: "limit: want a number"}
		}
		f.Limit = n
	}
	if s := get("after"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return f, &BadRequest{Msg: "after: want a delivery id"}
		}
		f.AfterID = n
	}
	return f, nil
}

func stateNames() []string {
	var out []string
	for _, st := range store.AllStates {
		out = append(out, string(st))
	}
	return out
}

// PageDeliveries lists deliveries matching f newest first: at most
// f.Limit (0: all), continuing below cursor (a previous NextCursor; ""
// starts at the newest), with NextCursor set when more match.
func PageDeliveries(ctx context.Context, st store.Store, f store.DeliveryFilter, cursor string) (QueueList, error) {
	f.Newest = true
	if cursor != "" {
		n, err := strconv.ParseInt(cursor, 10, 64)
		if err != nil || n <= 0 {
			return QueueList{}, &BadRequest{Msg: "cursor: want the next_cursor of a previous listing"}
		}
		f.BeforeID = n
	}
	limit := f.Limit
	if limit > 0 {
		f.Limit = limit + 1 // one more tells whether there are more
	}
	ds, err := st.ListDeliveries(ctx, f)
	if err != nil {
		return QueueList{}, err
	}
	list := QueueList{Items: ds}
	if limit > 0 && len(ds) > limit {
		list.Items = ds[:limit]
		list.NextCursor = strconv.FormatInt(ds[limit-1].ID, 10)
	}
	if list.Items == nil {
		list.Items = []store.Delivery{}
	}
	list.Count = len(list.Items)
	return list, nil
}

// MessageDetail is everything known about one message.
type MessageDetail struct {
	Message    *store.Message   `json:"message"`
	Headers    string           `json:"headers"`
	Deliveries []store.Delivery `json:"deliveries"`
	Attempts   []store.Attempt  `json:"attempts"`
	Events     []store.Event    `json:"events"`
}

// LoadMessageDetail gathers a message with its deliveries, attempts and
// events; tenantID "" sees every tenant.
func LoadMessageDetail(ctx context.Context, st store.Store, tenantID, id string) (*MessageDetail, error) {
	m, err := st.GetMessage(ctx, tenantID, id, true)
	if err != nil {
		return nil, err
	}
	d := &MessageDetail{Message: m}
	hdr := m.Body
	if i := strings.Index(string(m.Body), "\r\n\r\n"); i >= 0 {
		hdr = m.Body[:i+2]
	}
	d.Headers = string(hdr)
	if d.Deliveries, err = st.MessageDeliveries(ctx, id); err != nil {
		return nil, err
	}
	if d.Attempts, err = st.Attempts(ctx, id); err != nil {
		return nil, err
	}
	if d.Events, err = st.Events(ctx, store.EventFilter{MessageID: id}); err != nil {
		return nil, err
	}
	return d, nil
}

// RequeueRequest is a selection plus whether to take only dead letters.
type RequeueRequest struct {
	ops.Selection
	Dead bool `json:"dead,omitempty"`
}

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

// ListResponse is GET /v1/messages: deliveries (one per recipient), oldest
// first, with a cursor for the next page.
type ListResponse struct {
	Items      []store.Delivery `json:"items"`
	NextCursor string           `json:"next_cursor,omitempty"`
}

// CancelResponse answers DELETE /v1/messages/{id}.
type CancelResponse struct {
	ID        string `json:"id"`
	Cancelled int    `json:"cancelled"`
}

// DLQRequest selects dead letters: message ids, a domain, or all.
type DLQRequest struct {
	IDs    []string `json:"ids,omitempty"`
	Domain string   `json:"domain,omitempty"`
	All    bool     `json:"all,omitempty"`
}
