package api

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/posthorn/posthorn/internal/accept"
	"github.com/posthorn/posthorn/internal/compose"
	"github.com/posthorn/posthorn/internal/smtpproto"
	"github.com/posthorn/posthorn/internal/store"
)

// SendRequest is the body of POST /v1/messages (and one bulk item).
type SendRequest struct {
	compose.Message
	Lane           string            `json:"lane,omitempty"`
	SendAt         *time.Time        `json:"send_at,omitempty"`
	Tags           []string          `json:"tags,omitempty"`
	Metadata       map[string]string `json:"metadata,omitempty"`
	IdempotencyKey string            `json:"idempotency_key,omitempty"`
}

// RawRequest is the body of POST /v1/messages/raw: a complete message and
// its envelope.
type RawRequest struct {
	From           string            `json:"from"` // envelope sender; "" is the null sender
	To             []string          `json:"to"`   // envelope recipients
	Raw            string            `json:"raw,omitempty"`
	RawBase64      string            `json:"raw_base64,omitempty"`
	Lane           string            `json:"lane,omitempty"`
	SendAt         *time.Time        `json:"send_at,omitempty"`
	Tags           []string          `json:"tags,omitempty"`
	Metadata       map[string]string `json:"metadata,omitempty"`
	IdempotencyKey string            `json:"idempotency_key,omitempty"`
}

// BulkRequest is the body of POST /v1/messages/bulk.
type BulkRequest struct {
	Messages []json.RawMessage `json:"messages"`
}

// BulkItem is the answer for one bulk message, in request order.
type BulkItem struct {
	Index      int              `json:"index"`
	ID         string           `json:"id,omitempty"`
	Recipients []RecipientState `json:"recipients,omitempty"`
	Error      *APIErrorDetail  `json:"error,omitempty"`
}

// BulkResponse answers a bulk send.
type BulkResponse struct {
	Accepted int        `json:"accepted"`
	Failed   int        `json:"failed"`
	Items    []BulkItem `json:"items"`
}

func (v *V1) bodyLimit() int64 { return int64(v.MaxMessageSize)*2 + 1<<20 }

// submission turns a send request into a submission for the pipeline.
func (v *V1) submission(req *SendRequest, key *store.APIKey, hash string) (*accept.Submission, *APIErrorDetail) {
	if err := req.Message.Validate(); err != nil {
		if fe, ok := err.(*compose.FieldError); ok {
			return nil, &APIErrorDetail{Code: fe.Code, Message: fe.Message, Field: fe.Field}
		}
		return nil, &APIErrorDetail{Code: "invalid_message", Message: err.Error()}
	}
	lane, e := parseLane(req.Lane)
	if e != nil {
		return nil, e
	}
	at, e := v.when(req.SendAt)
	if e != nil {
		return nil, e
	}
	if e := checkTags(req.Tags, req.Metadata); e != nil {
		return nil, e
	}
	if e := checkKey(req.IdempotencyKey); e != nil {
		return nil, e
	}
	body, err := compose.Build(&req.Message, compose.Options{MessageID: ulid.Make().String() + "@" + v.Hostname,
		Date: v.Now(), Hostname: v.Hostname, MaxSize: v.MaxMessageSize})
	if err != nil {
		if fe, ok := err.(*compose.FieldError); ok {
			return nil, &APIErrorDetail{Code: fe.Code, Message: fe.Message, Field: fe.Field}
		}
		return nil, &APIErrorDetail{Code: "invalid_message", Message: err.Error()}
	}
	return &accept.Submission{TenantID: key.TenantID, Source: "http", Protocol: "HTTP", Helo: "api",
		Sender: req.From.Email, Recipients: req.Message.Recipients(), Body: body, Lane: lane, LaneFixed: req.Lane != "", SendAt: at,
		UTF8: needsUTF8(req.From.Email, req.Message.Recipients()), EightBit: true, Tags: req.Tags, Metadata: req.Metadata,
		IdempotencyKey: req.IdempotencyKey, RequestHash: hash, AllowedDomains: key.Domains, Sandbox: key.Sandbox}, nil
}

func checkKey(k string) *APIErrorDetail {
	if len(k) > 255 || strings.ContainsAny(k, "\r\n\x00") {
		return &APIErrorDetail{Code: "invalid_idempotency_key", Message: "idempotency keys are at most 255 characters without control characters", Field: "idempotency_key"}
	}
	return nil
}

func needsUTF8(from string, to []string) bool {
	for _, a := range append([]string{from}, to...) {
		for i := 0; i < len(a); i++ {
			if a[i] >= 0x80 {
				return true
			}
		}
	}
	return false
}

func (v *V1) send(w http.ResponseWriter, r *http.Request, key *store.APIKey) {
	var req SendRequest
	raw, ok := readBody(w, r, v.bodyLimit(), &req)
	if !ok {
		return
	}
	if h := r.Header.Get("Idempotency-Key"); h != "" {
		req.IdempotencyKey = h
	}
	sub, e := v.submission(&req, key, requestHash(raw))
	if e != nil {
		apiError(w, http.StatusBadRequest, e.Code, e.Message, e.Field)
		return
	}
	v.acceptOne(w, r, sub)
}

func (v *V1) acceptOne(w http.ResponseWriter, r *http.Request, sub *accept.Submission) {
	res, err := v.Accept.Accept(ctxOf(r), sub)
	if err != nil {
		status, d := v.acceptError(err)
		writeJSON(w, status, APIError{d})
		return
	}
	status := http.StatusAccepted
	if res.Duplicate {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	writeJSON(w, status, sendResponse(res))
}

func (v *V1) sendRaw(w http.ResponseWriter, r *http.Request, key *store.APIKey) {
	var req RawRequest
	raw, ok := readBody(w, r, v.bodyLimit(), &req)
	if !ok {
		return
	}
	if h := r.Header.Get("Idempotency-Key"); h != "" {
		req.IdempotencyKey = h
	}
	fail := func(code, msg, field string) { apiError(w, http.StatusBadRequest, code, msg, field) }
	body := []byte(req.Raw)
	if req.RawBase64 != "" {
		if req.Raw != "" {
			fail("invalid_message", "give raw or raw_base64, not both", "raw")
			return
		}
		b, err := base64.StdEncoding.DecodeString(req.RawBase64)
		if err != nil {
			fail("invalid_base64", "raw_base64 is not valid base64", "raw_base64")
			return
		}
		body = b
	}
	if len(body) == 0 {
		fail("missing_field", "raw (or raw_base64) is required", "raw")
		return
	}
	if len(body) > v.MaxMessageSize {
		apiError(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("message over %d bytes", v.MaxMessageSize), "raw")
		return
	}
	if req.From != "" {
		if _, err := smtpproto.ParseAddress(req.From, true); err != nil {
			fail("invalid_address", "from: "+err.Error(), "from")
			return
		}
	}
	if len(req.To) == 0 {
		fail("missing_field", "at least one recipient is required", "to")
		return
	}
	for i, t := range req.To {
		if _, err := smtpproto.ParseAddress(t, true); err != nil {
			fail("invalid_address", err.Error(), fmt.Sprintf("to[%d]", i))
			return
		}
	}
	lane, e := parseLane(req.Lane)
	if e == nil {
		e = checkTags(req.Tags, req.Metadata)
	}
	if e == nil {
		e = checkKey(req.IdempotencyKey)
	}
	at, e2 := v.when(req.SendAt)
	if e == nil {
		e = e2
	}
	if e != nil {
		fail(e.Code, e.Message, e.Field)
		return
	}
	v.acceptOne(w, r, &accept.Submission{TenantID: key.TenantID, Source: "http", Protocol: "HTTP", Helo: "api",
		Sender: req.From, Recipients: req.To, Body: body, Lane: lane, LaneFixed: req.Lane != "", SendAt: at, UTF8: needsUTF8(req.From, req.To),
		EightBit: true, Tags: req.Tags, Metadata: req.Metadata, IdempotencyKey: req.IdempotencyKey, RequestHash: requestHash(raw),
		AllowedDomains: key.Domains, Sandbox: key.Sandbox})
}

func (v *V1) sendBulk(w http.ResponseWriter, r *http.Request, key *store.APIKey) {
	var req BulkRequest
	if _, ok := readBody(w, r, int64(v.MaxBulk)*(64<<10)+(64<<20), &req); !ok {
		return
	}
	if len(req.Messages) == 0 {
		apiError(w, http.StatusBadRequest, "missing_field", "messages is empty", "messages")
		return
	}
	if len(req.Messages) > v.MaxBulk {
		apiError(w, http.StatusRequestEntityTooLarge, "too_many_messages", fmt.Sprintf("at most %d messages per bulk request", v.MaxBulk), "messages")
		return
	}
	items := make([]BulkItem, len(req.Messages))
	var subs []*accept.Submission
	var index []int
	for i, rawItem := range req.Messages {
		items[i].Index = i
		var item SendRequest
		if err := decodeStrict(rawItem, &item); err != nil {
			items[i].Error = &APIErrorDetail{Code: "invalid_json", Message: err.Error(), Field: fmt.Sprintf("messages[%d]", i)}
			continue
		}
		sub, e := v.submission(&item, key, requestHash(rawItem))
		if e != nil {
			e.Field = fmt.Sprintf("messages[%d].%s", i, e.Field)
			items[i].Error = e
			continue
		}
		subs = append(subs, sub)
		index = append(index, i)
	}
	if len(subs) > 0 {
		results, errs := v.Accept.AcceptBatch(ctxOf(r), subs)
		for k, i := range index {
			if errs[k] != nil {
				_, d := v.acceptError(errs[k])
				d.Field = fmt.Sprintf("messages[%d]", i)
				items[i].Error = &d
				continue
			}
			sr := sendResponse(results[k])
			items[i].ID, items[i].Recipients = sr.ID, sr.Recipients
		}
	}
	resp := BulkResponse{Items: items}
	for _, it := range items {
		if it.Error != nil {
			resp.Failed++
		} else {
			resp.Accepted++
		}
	}
	writeJSON(w, http.StatusOK, resp)
}
