package accept

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/posthorn/posthorn/internal/store"
)

// A Check looks at a submission before it is stored: content policy,
// quotas, the compromised-account detector, the content scanner. Checks
// run in Pipeline.Checks order, once per message, before the durable
// write; the first error stops the message (an *Error is the client's
// answer, anything else a temporary local failure). A Check that needs a
// reservation undone when the message is not stored after all returns a
// Verdict with Done.
type Check interface {
	Check(ctx context.Context, in *CheckInput) (*Verdict, error)
}

// CheckInput is what a check sees of one submission.
type CheckInput struct {
	// ID is the queue ID the message will have if stored (for the
	// scanner's Queue-Id and logs).
	ID   string
	Sub  *Submission
	Body []byte     // the message as submitted, CRLF line endings
	Lane store.Lane // the lane the message will go in (header override applied)
}

// Verdict is what a check decided for a message it lets through.
type Verdict struct {
	// Hold stores the message's deliveries held (until an operator
	// releases them) instead of queued.
	Hold bool
	// Headers are "Name: value" fields added to the message.
	Headers []string
	// Tags are added to the message's tags.
	Tags []string
	// Events are written once the message is stored, with its ID and
	// tenant filled in (e.g. "scanned" with the scanner's score).
	Events []store.Event
	// Done is called once with whether the message was stored (false: an
	// error after this check, a failed write, an idempotent repeat).
	Done func(stored bool)

	id string // the queue ID given to the checks
}

// merge adds v's decisions to the combined verdict.
func (c *Verdict) merge(v *Verdict) {
	if v == nil {
		return
	}
	c.Hold = c.Hold || v.Hold
	c.Headers = append(c.Headers, v.Headers...)
	c.Tags = append(c.Tags, v.Tags...)
	c.Events = append(c.Events, v.Events...)
	if v.Done != nil {
		prev := c.Done
		c.Done = func(stored bool) {
			if prev != nil {
				prev(stored)
			}
			v.Done(stored)
		}
	}
}

func (c *Verdict) done(stored bool) {
	if c != nil && c.Done != nil {
		c.Done(stored)
		c.Done = nil
	}
}

// Refusal builds a rejection with its HTTP answer: status and a stable
// code for the API, the SMTP code, enhanced code and text for SMTP, and a
// Retry-After for temporary refusals (quotas).
func Refusal(smtpCode int, enhanced, msg string, httpStatus int, apiCode string, retryAfter time.Duration) *Error {
	return &Error{Code: smtpCode, Enhanced: enhanced, Msg: msg, HTTPStatus: httpStatus, APICode: apiCode, RetryAfter: retryAfter}
}

// maxParallelChecks bounds how many messages of one batch are checked at
// once (the content scanner is a network round trip per message).
const maxParallelChecks = 8

// runChecks checks every submission, concurrently with a bound, and
// returns one combined verdict per submission (nil when there are no
// checks) or its error.
// msgs are the submissions' bodies as read once (the checks only read
// them).
func (p *Pipeline) runChecks(ctx context.Context, subs []*Submission, msgs []message) ([]*Verdict, []error) {
	verdicts := make([]*Verdict, len(subs))
	errs := make([]error, len(subs))
	if len(p.Checks) == 0 {
		return verdicts, errs
	}
	one := func(i int) {
		sub := subs[i]
		if sub.Source == "dsn" {
			return // mail posthorn writes itself is not checked
		}
		in := &CheckInput{ID: ulid.Make().String(), Sub: sub, Body: msgs[i].checked, Lane: msgs[i].lane}
		all := &Verdict{id: in.ID}
		for _, c := range p.Checks {
			v, err := c.Check(ctx, in)
			if err != nil {
				all.done(false)
				errs[i] = err
				return
			}
			all.merge(v)
		}
		verdicts[i] = all
	}
	if len(subs) == 1 {
		one(0)
		return verdicts, errs
	}
	// A few workers take the messages in turn: a goroutine a message
	// cost more than the in-memory checks themselves in a 5,000-message
	// batch.
	var wg sync.WaitGroup
	var next atomic.Int64
	for range min(maxParallelChecks, len(subs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < len(subs); i = int(next.Add(1) - 1) {
				one(i)
			}
		}()
	}
	wg.Wait()
	return verdicts, errs
}

// recordVerdict writes the verdict's events for a stored message; a
// failure is logged by the caller's store (the message is stored and
// answered either way).
func (p *Pipeline) recordVerdict(ctx context.Context, v *Verdict, m *store.Message) {
	for _, e := range v.Events {
		e.MessageID, e.TenantID = m.ID, m.TenantID
		if e.At.IsZero() {
			e.At = p.Now().UTC()
		}
		if err := p.Store.RecordEvent(ctx, e); err != nil && p.OnEventError != nil {
			p.OnEventError(e, err)
		}
	}
}
