// Package scan asks a content scanner (rspamd, over its HTTP protocol)
// about every message at accept time and turns its answer into the
// tenant's policy: refuse, hold, tag, or ask the client to retry.
//
// Decisions (docs/abuse.md):
//   - rspamd's "reject" refuses the message (SMTP 550 5.7.1, HTTP 422
//     content_rejected) or, with action_reject = "hold", stores it held.
//     The symbols go into a scan_rejected (or scanned) event, never into
//     the reply: they would teach a spammer what to change.
//   - "add header" and "rewrite subject" accept the message with
//     X-Spam: yes and X-Spam-Score headers and the tag "spam". posthorn
//     does not rewrite the subject of its own tenants' mail.
//   - "soft reject" and "greylist" ask the client to retry: SMTP 451 4.7.1,
//     HTTP 503 content_deferred with Retry-After (503, not 429: the client
//     did not send too much, the message must wait).
//   - A scanner that is slow (over timeout) or down fails open (accept,
//     event scan_failed) or closed (451 4.7.1 / HTTP 503 scan_unavailable,
//     event scan_failed), per policy; both are counted.
package scan

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"
)

// Request is one message and its envelope for the scanner.
type Request struct {
	Body    []byte
	From    string // envelope sender
	Rcpts   []string
	IP      string
	User    string // authenticated user (SMTP user or API key)
	Helo    string
	QueueID string
	Tenant  string
}

// Result is the scanner's answer.
type Result struct {
	Action   string   `json:"action"` // no action, add header, rewrite subject, soft reject, greylist, reject
	Score    float64  `json:"score"`
	Required float64  `json:"required_score"`
	Symbols  []string `json:"symbols,omitempty"` // names, with scores: "GTUBE(0.00)"
	Message  string   `json:"message,omitempty"` // rspamd's smtp_message
	// ScanTime is rspamd's own processing time (time_real).
	ScanTime time.Duration `json:"scan_time_ns"`
}

// Rspamd talks to rspamd's normal worker (POST /checkv2).
type Rspamd struct {
	URL  string // e.g. http://127.0.0.1:11333
	HTTP *http.Client
}

type rspamdReply struct {
	Action   string  `json:"action"`
	Score    float64 `json:"score"`
	Required float64 `json:"required_score"`
	Symbols  map[string]struct {
		Score float64 `json:"score"`
	} `json:"symbols"`
	Messages struct {
		SMTP string `json:"smtp_message"`
	} `json:"messages"`
	TimeReal float64 `json:"time_real"`
	Error    string  `json:"error"`
}

// Scan sends one message to rspamd.
func (r *Rspamd) Scan(ctx context.Context, req *Request) (*Result, error) {
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(r.URL, "/")+"/checkv2", bytes.NewReader(req.Body))
	if err != nil {
		return nil, fmt.Errorf("rspamd request: %w", err)
	}
	set := func(k, v string) {
		if v = clean(v); v != "" {
			hr.Header.Add(k, v)
		}
	}
	set("From", req.From)
	for _, rc := range req.Rcpts {
		set("Rcpt", rc)
	}
	set("IP", req.IP)
	set("User", req.User)
	set("Helo", req.Helo)
	set("Queue-Id", req.QueueID)
	set("X-Posthorn-Tenant", req.Tenant)
	hc := r.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(hr)
	if err != nil {
		return nil, fmt.Errorf("rspamd: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, fmt.Errorf("rspamd reply: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("rspamd: HTTP %d: %.200s", resp.StatusCode, b)
	}
	var rr rspamdReply
	if err := json.Unmarshal(b, &rr); err != nil {
		return nil, fmt.Errorf("rspamd reply: %w", err)
	}
	if rr.Error != "" || rr.Action == "" {
		return nil, fmt.Errorf("rspamd: no verdict: %.200s", b)
	}
	res := &Result{Action: rr.Action, Score: rr.Score, Required: rr.Required, Message: rr.Messages.SMTP,
		ScanTime: time.Duration(rr.TimeReal * float64(time.Second))}
	for name, s := range rr.Symbols {
		res.Symbols = append(res.Symbols, fmt.Sprintf("%s(%.2f)", name, s.Score))
	}
	sort.Strings(res.Symbols)
	return res, nil
}

// clean keeps a value from breaking an HTTP header line.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
}
