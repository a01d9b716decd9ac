// Package accept is the one acceptance pipeline for every way mail comes
// in (SMTP submission now, the HTTP API later): it validates the envelope,
// canonicalises line endings, adds the headers an MTA owes (Received,
// Message-ID, Date), writes message and deliveries durably, and only then
// hands the deliveries to the scheduler. Nothing else creates messages.
//
// Invariant: when Accept returns nil, the message and one delivery per
// recipient are committed (fsync'd) and scheduled; when it returns an error,
// nothing was stored.
package accept

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/posthorn/posthorn/internal/smtpproto"
	"github.com/posthorn/posthorn/internal/store"
)

// Enqueuer receives newly stored deliveries (the scheduler).
type Enqueuer interface {
	Enqueue(ds []store.Delivery)
}

// Submission is one message as a listener received it.
type Submission struct {
	TenantID   string
	SMTPUser   string
	Source     string // "smtp" or "http"
	ClientIP   string
	Helo       string
	Protocol   string // for Received: ESMTP, ESMTPS, ESMTPSA, HTTP
	Sender     string // envelope sender; "" is the null path
	Recipients []string
	Body       []byte
	Lane       store.Lane // "" lets a header or the default decide
	UTF8       bool
	EightBit   bool
	SendAt     time.Time
}

// Result says what was stored.
type Result struct {
	MessageID  string
	Deliveries []store.Delivery
}

// Error is a rejection the client should see; its text is safe to show.
type Error struct {
	Code     int
	Enhanced string
	Msg      string
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s %s", e.Code, e.Enhanced, e.Msg) }

// BodyCache remembers accepted messages for their first delivery attempt.
type BodyCache interface {
	Put(m *store.Message)
}

// Pipeline accepts submissions.
type Pipeline struct {
	Store    store.Store
	Sched    Enqueuer
	Bodies   BodyCache // optional
	Hostname string
	Lifetime time.Duration
	Now      func() time.Time
}

// LaneHeader lets a client choose a lane per message; it is removed before
// the message is stored.
const LaneHeader = "X-Posthorn-Lane"

// Accept validates, stores and schedules one submission.
func (p *Pipeline) Accept(ctx context.Context, sub *Submission) (*Result, error) {
	now := p.Now().UTC()
	if len(sub.Recipients) == 0 {
		return nil, &Error{554, "5.5.1", "no valid recipients"}
	}
	body := CanonicalLineEndings(sub.Body)
	if i := indexNUL(body); i >= 0 {
		return nil, &Error{554, "5.6.0", "message contains a NUL character; not accepted"}
	}
	id := ulid.Make().String()
	hdr, rest := splitHeader(body)
	h := parseHeader(hdr)

	lane := sub.Lane
	if v, ok := h.get(LaneHeader); ok {
		l, err := store.ParseLane(strings.ToLower(strings.TrimSpace(v)))
		if err != nil {
			return nil, &Error{550, "5.6.0", "bad " + LaneHeader + " header: want high, normal or low"}
		}
		if lane == "" {
			lane = l
		}
		h.remove(LaneHeader)
	}
	if lane == "" {
		lane = store.LaneNormal
	}
	msgID, hasMsgID := h.get("Message-ID")
	if !hasMsgID {
		msgID = "<" + id + "@" + p.Hostname + ">"
		h.add("Message-ID", msgID)
	}
	if _, ok := h.get("Date"); !ok {
		h.add("Date", now.Format(time.RFC1123Z))
	}
	subject, _ := h.get("Subject")

	var out []byte
	out = append(out, received(sub, p.Hostname, id, now)...)
	out = h.appendTo(out)
	out = append(out, rest...)

	m := &store.Message{ID: id, TenantID: sub.TenantID, Sender: sub.Sender, Lane: lane, Source: sub.Source,
		SMTPUser: sub.SMTPUser, ClientIP: sub.ClientIP, Size: len(out), MessageID: strings.TrimSpace(msgID),
		Subject: clip(strings.TrimSpace(subject), 200), CreatedAt: now, SendAt: sub.SendAt, Body: out,
		UTF8: sub.UTF8, EightBitMIM: sub.EightBit}
	nm := &store.NewMessage{Message: m}
	seen := make(map[string]bool, len(sub.Recipients))
	state, next := store.Queued, now
	if !sub.SendAt.IsZero() && sub.SendAt.After(now) {
		state, next = store.Scheduled, sub.SendAt
	}
	for _, r := range sub.Recipients {
		a, err := smtpproto.ParseAddress(r, true)
		if err != nil {
			return nil, &Error{553, "5.1.3", fmt.Sprintf("bad recipient address: %v", err)}
		}
		key := a.String()
		if seen[key] {
			continue // one delivery per distinct recipient
		}
		seen[key] = true
		nm.Deliveries = append(nm.Deliveries, &store.Delivery{Recipient: key, Domain: a.Domain, Lane: lane,
			State: state, CreatedAt: now, NextAttemptAt: next, ExpiresAt: next.Add(p.Lifetime)})
	}
	if err := p.Store.InsertMessages(ctx, []*store.NewMessage{nm}); err != nil {
		return nil, fmt.Errorf("store message: %w", err)
	}
	res := &Result{MessageID: id, Deliveries: make([]store.Delivery, len(nm.Deliveries))}
	for i, d := range nm.Deliveries {
		d.Sender, d.Size = m.Sender, m.Size
		res.Deliveries[i] = *d
	}
	if p.Bodies != nil {
		p.Bodies.Put(m)
	}
	p.Sched.Enqueue(res.Deliveries)
	return res, nil
}

// IsRejection reports whether err is a client-facing rejection.
func IsRejection(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

func received(sub *Submission, hostname, id string, now time.Time) []byte {
	proto := sub.Protocol
	if proto == "" {
		proto = "ESMTP"
	}
	helo := sanitize(sub.Helo)
	if helo == "" {
		helo = "unknown"
	}
	s := "Received: from " + helo + " ([" + sanitize(sub.ClientIP) + "])\r\n\tby " + hostname +
		" (posthorn) with " + proto + " id " + id + ";\r\n\t" + now.Format(time.RFC1123Z) + "\r\n"
	return []byte(s)
}

// sanitize keeps client-supplied text from breaking the header.
func sanitize(s string) string {
	s = clip(s, 100)
	return strings.Map(func(r rune) rune {
		if r < 0x21 || r == 0x7f || r == '(' || r == ')' {
			return -1
		}
		return r
	}, s)
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func indexNUL(b []byte) int {
	for i, c := range b {
		if c == 0 {
			return i
		}
	}
	return -1
}

// CanonicalLineEndings turns bare LF and bare CR into CRLF, so what is
// stored and relayed has one unambiguous line ending (this also defuses
// "SMTP smuggling" tricks that rely on receivers reading bare LF or CR as
// line ends). It returns b itself when nothing needs to change.
func CanonicalLineEndings(b []byte) []byte {
	clean := true
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') || c == '\r' && (i+1 >= len(b) || b[i+1] != '\n') {
			clean = false
			break
		}
	}
	if clean {
		return b
	}
	out := make([]byte, 0, len(b)+len(b)/32+2)
	for i := 0; i < len(b); i++ {
		switch c := b[i]; c {
		case '\r':
			out = append(out, '\r', '\n')
			if i+1 < len(b) && b[i+1] == '\n' {
				i++
			}
		case '\n':
			out = append(out, '\r', '\n')
		default:
			out = append(out, c)
		}
	}
	return out
}
