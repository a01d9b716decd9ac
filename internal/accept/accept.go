// Package accept is the one acceptance pipeline for every way mail comes
// in (SMTP submission now, the HTTP API later): it validates the envelope,
// runs the abuse-protection checks (checks.go: content policy, quotas and
// the compromised-account detector, content scanning; they may refuse,
// hold or tag a message), canonicalises line endings, adds the headers an
// MTA owes (Received, Message-ID, Date), checks that the sender domains are the tenant's own
// and DKIM-signs the result (senders.go, with internal/domain), writes
// message and deliveries durably, and only then hands the deliveries to
// the scheduler. With Deferred set (as the server runs it), the signature
// is made after the commit instead (internal/dkimqueue), which schedules
// the deliveries once it is stored. Nothing else creates messages.
//
// Invariant: when Accept returns nil, the message and one delivery per
// recipient are committed (fsync'd) and scheduled; when it returns an error,
// nothing was stored.
package accept

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/posthorn/posthorn/internal/smtpproto"
	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/suppress"
)

// Enqueuer receives newly stored deliveries (the scheduler).
type Enqueuer interface {
	Enqueue(ds []store.Delivery)
}

// Submission is one message as a listener received it.
type Submission struct {
	TenantID   string
	SMTPUser   string
	APIKey     string // the API key's ID for HTTP submissions
	Source     string // "smtp" or "http"
	ClientIP   string
	Helo       string
	Protocol   string // for Received: ESMTP, ESMTPS, ESMTPSA, HTTP
	Sender     string // envelope sender; "" is the null path
	Recipients []string
	Body       []byte
	Lane       store.Lane // the default lane ("" is normal); an X-Posthorn-Lane header overrides it
	LaneFixed  bool       // Lane was chosen explicitly (API field): the header does not override it
	UTF8       bool
	EightBit   bool
	SendAt     time.Time
	Tags       []string
	Metadata   map[string]string
	// IdempotencyKey, when set, makes a repeat of the same request (same
	// RequestHash) within IdempotencyTTL return the first answer and queue
	// nothing; the same key with another hash is ErrIdempotencyConflict.
	IdempotencyKey string
	RequestHash    string
	// AllowedDomains, when not empty, are the only sender domains
	// (envelope and From) the submitting user or key may use
	// (restrict.go); this holds even with AllowUnverifiedSenders.
	AllowedDomains []string
	// Sandbox mail is validated and stored, then recorded as delivered
	// by the queue without being sent.
	Sandbox bool
	// TextOnly: the body was built by compose from a message without
	// attachments (the HTTP API), so it has text and HTML parts only and
	// checks looking for files (sendpolicy) need not parse it.
	TextOnly bool
}

// Result says what was stored. Deliveries of a Duplicate are as they
// were answered the first time.
type Result struct {
	MessageID  string           `json:"id"`
	Deliveries []store.Delivery `json:"deliveries"`
	Duplicate  bool             `json:"-"`
}

// Error is a rejection the client should see; its text is safe to show.
type Error struct {
	Code     int
	Enhanced string
	Msg      string
	// For the HTTP API (zero: 422 "rejected"): the status, a stable
	// error code and, for temporary refusals, when to try again.
	HTTPStatus int
	APICode    string
	RetryAfter time.Duration
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s %s", e.Code, e.Enhanced, e.Msg) }

// BodyCache remembers accepted messages for their first delivery attempt.
type BodyCache interface {
	Put(m *store.Message)
}

// Pipeline accepts submissions.
type Pipeline struct {
	Store  store.Store
	Sched  Enqueuer
	Bodies BodyCache // optional
	// Suppressed, when set, says whether a tenant must not mail an
	// address; such recipients are stored as suppressed and not sent.
	// The matching entry is recorded with the delivery and its event.
	Suppressed func(tenantID, addr string) (entry store.Suppression, ok bool)
	Hostname   string
	Lifetime   time.Duration
	Now        func() time.Time
	// IdempotencyTTL is how long a key is remembered (default 24h).
	IdempotencyTTL time.Duration
	// Senders, when set, DKIM-signs mail of the tenant's domains and
	// refuses sender domains that are not the tenant's (unless
	// AllowUnverifiedSenders, which lifts only that refusal).
	Senders                Senders
	AllowUnverifiedSenders bool
	// Deferred, when set, signs after the commit instead (senders.go,
	// internal/dkimqueue): the message is stored pending and its
	// deliveries go to Deferred, which schedules them once signed.
	Deferred DeferredSigner
	// Checks run on every message before it is stored (checks.go):
	// content policy, quotas and anomaly detection, content scanning.
	Checks []Check
	// OnEventError, when set, hears of a check's event that could not be
	// written (the message is stored and answered regardless).
	OnEventError func(store.Event, error)
	// Log, when set, gets the mail log line of each queued message
	// (internal/deliverylog).
	Log *slog.Logger
}

// LaneHeader lets a client choose a lane per message; it is removed before
// the message is stored.
const LaneHeader = "X-Posthorn-Lane"

// Accept validates, stores and schedules one submission.
func (p *Pipeline) Accept(ctx context.Context, sub *Submission) (*Result, error) {
	res, errs := p.AcceptBatch(ctx, []*Submission{sub})
	return res[0], errs[0]
}

// AcceptBatch accepts several submissions with one durable write: each is
// validated on its own (an invalid one gets its error, the others go on),
// then all valid ones are committed together and scheduled. Results and
// errors are in the order of subs.
func (p *Pipeline) AcceptBatch(ctx context.Context, subs []*Submission) ([]*Result, []error) {
	now := p.Now().UTC()
	at := stamp{now: now, text: now.Format(time.RFC1123Z)}
	results := make([]*Result, len(subs))
	errs := make([]error, len(subs))
	batch := make([]*store.NewMessage, 0, len(subs))
	index := make([]int, 0, len(subs))
	msgs := make([]message, len(subs))
	for i, sub := range subs {
		msgs[i].read(sub)
	}
	verdicts, checkErrs := p.runChecks(ctx, subs, msgs)
	for i, sub := range subs {
		if checkErrs[i] != nil {
			errs[i] = checkErrs[i]
			continue
		}
		nm, err := p.prepare(sub, &msgs[i], at, verdicts[i])
		msgs[i] = message{} // what is stored is nm's copy
		if err != nil {
			verdicts[i].done(false)
			errs[i] = err
			continue
		}
		// The prepared copy is what is stored: dropping the submission's
		// body keeps one copy of each message of a large batch, not two.
		sub.Body = nil
		batch = append(batch, nm)
		index = append(index, i)
	}
	if len(batch) == 0 {
		return results, errs
	}
	if err := p.Store.InsertMessages(ctx, batch); err != nil {
		for _, i := range index {
			errs[i] = fmt.Errorf("store message: %w", err)
			verdicts[i].done(false)
		}
		return results, errs
	}
	ready := make([]store.Delivery, 0, len(batch)) // a recipient each, mostly
	for k, nm := range batch {
		i := index[k]
		if ex := nm.Existing; ex != nil {
			verdicts[i].done(false)
			results[i], errs[i] = repeat(ex, nm.Idempotency.RequestHash)
			continue
		}
		m := nm.Message
		if v := verdicts[i]; v != nil {
			p.recordVerdict(ctx, v, m)
			v.done(true)
		}
		res := &Result{MessageID: m.ID, Deliveries: make([]store.Delivery, len(nm.Deliveries))}
		for j, d := range nm.Deliveries {
			d.Sender, d.Size = m.Sender, m.Size
			res.Deliveries[j] = *d
		}
		results[i] = res
		p.logAccepted(subs[i], m, res.Deliveries)
		if m.DKIMPending {
			p.Deferred.Submit(m, res.Deliveries) // scheduled once signed
			continue
		}
		if p.Bodies != nil && !scheduled(nm) { // scheduled mail is read back when due
			p.Bodies.Put(m)
		}
		ready = append(ready, res.Deliveries...)
	}
	p.Sched.Enqueue(ready)
	return results, errs
}

// scheduled reports whether nm waits for a later send_at.
func scheduled(nm *store.NewMessage) bool {
	return len(nm.Deliveries) > 0 && nm.Deliveries[0].State == store.Scheduled
}

// ErrIdempotencyConflict is returned when an idempotency key is reused
// with a different request.
var ErrIdempotencyConflict = errors.New("idempotency key already used with a different request")

// repeat answers a request whose idempotency key was seen before.
func repeat(ex *store.IdempotencyRecord, hash string) (*Result, error) {
	if ex.RequestHash != hash {
		return nil, ErrIdempotencyConflict
	}
	var res Result
	if err := json.Unmarshal(ex.Response, &res); err != nil {
		return nil, fmt.Errorf("stored idempotent response: %w", err)
	}
	res.Duplicate = true
	return &res, nil
}

// stamp is the time of a batch, with its RFC 1123 form (Received, Date)
// formatted once.
type stamp struct {
	now  time.Time
	text string
}

// prepare validates a submission and builds what is stored for it from
// msg, its body as read once for the checks and for this (msg's header is
// changed). A verdict (nil: no checks) adds headers and tags and may hold
// the message.
func (p *Pipeline) prepare(sub *Submission, msg *message, at stamp, v *Verdict) (*store.NewMessage, error) {
	now := at.now
	if len(sub.Recipients) == 0 {
		return nil, &Error{Code: 554, Enhanced: "5.5.1", Msg: "no valid recipients"}
	}
	if bytes.IndexByte(msg.body, 0) >= 0 {
		return nil, &Error{Code: 554, Enhanced: "5.6.0", Msg: "message contains a NUL character; not accepted"}
	}
	id := ulid.Make().String()
	if v != nil && v.id != "" {
		id = v.id
	}
	hdr, rest, h := msg.hdr, msg.rest, msg.h

	if msg.badLane {
		return nil, &Error{Code: 550, Enhanced: "5.6.0", Msg: "bad " + LaneHeader + " header: want high, normal or low"}
	}
	lane := msg.lane
	if msg.laneHeader {
		h.remove(LaneHeader)
	}
	msgID, hasMsgID := h.get("Message-ID")
	if !hasMsgID {
		msgID = "<" + id + "@" + p.Hostname + ">"
		h.add("Message-ID", msgID)
	}
	if _, ok := h.get("Date"); !ok {
		h.add("Date", at.text)
	}
	tags := sub.Tags
	if v != nil {
		for _, f := range v.Headers {
			if name, value, ok := strings.Cut(f, ":"); ok {
				h.add(strings.TrimSpace(name), strings.TrimSpace(value))
			}
		}
		if len(v.Tags) > 0 {
			tags = append(append([]string(nil), tags...), v.Tags...)
		}
	}
	subject, _ := h.get("Subject")
	var from []string
	fromOK := true
	if p.Senders != nil {
		from, fromOK = fromDomains(h)
	}
	if err := p.checkSenders(sub, from, fromOK); err != nil {
		return nil, err
	}
	if err := checkAllowedDomains(sub, h); err != nil {
		return nil, err
	}

	out := make([]byte, 0, len(hdr)+len(rest)+512) // one allocation for the fields added
	out = appendReceived(out, sub, p.Hostname, id, at.text)
	out = h.appendTo(out)
	out = append(out, rest...)
	out, signAs, err := p.dkimSign(sub, from, out)
	if err != nil {
		return nil, err
	}

	m := &store.Message{ID: id, TenantID: sub.TenantID, Sender: sub.Sender, Lane: lane, Source: sub.Source,
		SMTPUser: sub.SMTPUser, ClientIP: sub.ClientIP, Size: len(out), MessageID: strings.TrimSpace(msgID),
		Subject: clip(strings.TrimSpace(subject), 200), CreatedAt: now, SendAt: sub.SendAt, Body: out,
		UTF8: sub.UTF8, EightBitMIM: sub.EightBit, Tags: tags, Metadata: sub.Metadata, Sandbox: sub.Sandbox,
		DKIMDomain: signAs, DKIMPending: signAs != ""}
	nm := &store.NewMessage{Message: m, Deliveries: make([]*store.Delivery, 0, len(sub.Recipients))}
	ds := make([]store.Delivery, 0, len(sub.Recipients)) // one allocation for all deliveries
	// Distinct recipients: a map for many, a few are compared one by one.
	var seen map[string]bool
	if len(sub.Recipients) > 8 {
		seen = make(map[string]bool, len(sub.Recipients))
	}
	state, next := store.Queued, now
	if !sub.SendAt.IsZero() && sub.SendAt.After(now) {
		state, next = store.Scheduled, sub.SendAt
	}
	for _, r := range sub.Recipients {
		a, err := smtpproto.ParseAddress(r, true)
		if err != nil {
			return nil, &Error{Code: 553, Enhanced: "5.1.3", Msg: fmt.Sprintf("bad recipient address: %v", err)}
		}
		key := a.String()
		if seen != nil && seen[key] || seen == nil && hasRecipient(ds, key) {
			continue // one delivery per distinct recipient
		}
		if seen != nil {
			seen[key] = true
		}
		st, why := state, ""
		if v != nil && v.Hold {
			st = store.Held
		}
		if p.Suppressed != nil {
			if s, ok := p.Suppressed(sub.TenantID, key); ok {
				st, why = store.Suppressed, suppress.Describe(s)
			}
		}
		ds = append(ds, store.Delivery{Recipient: key, Domain: a.Domain, Lane: lane, State: st, CreatedAt: now,
			NextAttemptAt: next, ExpiresAt: next.Add(p.Lifetime), LastError: why})
		nm.Deliveries = append(nm.Deliveries, &ds[len(ds)-1])
	}
	if sub.IdempotencyKey != "" {
		res := &Result{MessageID: id, Deliveries: make([]store.Delivery, len(ds))}
		for j, d := range ds {
			res.Deliveries[j] = store.Delivery{Recipient: d.Recipient, Domain: d.Domain, Lane: d.Lane, State: d.State}
		}
		resp, err := json.Marshal(res)
		if err != nil {
			return nil, err
		}
		ttl := p.IdempotencyTTL
		if ttl <= 0 {
			ttl = 24 * time.Hour
		}
		nm.Idempotency = &store.IdempotencyRecord{Key: sub.IdempotencyKey, RequestHash: sub.RequestHash, MessageID: id,
			Response: resp, CreatedAt: now, ExpiresAt: now.Add(ttl)}
	}
	return nm, nil
}

// IsRejection reports whether err is a client-facing rejection.
func IsRejection(err error) (*Error, bool) {
	var se *SenderError
	if errors.As(err, &se) {
		return se.Reply(), true
	}
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// hasRecipient reports whether ds has a delivery to key.
func hasRecipient(ds []store.Delivery, key string) bool {
	for i := range ds {
		if ds[i].Recipient == key {
			return true
		}
	}
	return false
}

// appendReceived appends the Received field posthorn adds; date is the
// time in RFC 1123 form.
func appendReceived(b []byte, sub *Submission, hostname, id, date string) []byte {
	proto := sub.Protocol
	if proto == "" {
		proto = "ESMTP"
	}
	helo := sanitize(sub.Helo)
	if helo == "" {
		helo = "unknown"
	}
	b = append(append(b, "Received: from "...), helo...)
	if ip := sanitize(sub.ClientIP); ip != "" {
		b = append(append(append(b, " (["...), ip...), "])"...) // with no known address, no empty "([])"
	}
	b = append(append(b, "\r\n\tby "...), hostname...)
	b = append(append(b, " (posthorn) with "...), proto...)
	b = append(append(b, " id "...), id...)
	b = append(append(append(b, ";\r\n\t"...), date...), "\r\n"...)
	return b
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
