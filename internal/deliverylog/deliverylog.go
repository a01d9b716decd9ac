// Package deliverylog writes posthorn's mail log: one line per accepted
// message and one per delivery attempt or final state, in the spirit of
// Postfix's maillog, so that an operator can follow a message with grep:
//
//	msg=accepted queue_id=01J... from=<a@example.com> size=1234 nrcpt=2 source=smtp client=127.0.0.1 user=posthorn
//	msg=delivery queue_id=01J... delivery=17 to=<b@example.org> relay=mx1.example.org[192.0.2.1] delay=1.2 delays=0.85/0.01/0.04/0.3 attempt=1 dsn=2.0.0 status=sent class=delivered reply="250 2.0.0 Ok queued as X"
//
// Lines go through slog at info level (so they follow the configured
// handler and level); the keys are fixed and documented in
// docs/operations.md. status is one of sent, deferred, bounced,
// soft_bounced, dead_letter, suppressed (the store states, with delivered
// spelled as Postfix does). delay is the seconds since the message was
// accepted; delays splits it as Postfix does, "a/b/c/d": a the seconds
// in the queue until a connection worker took the delivery (not yet due,
// waiting for a connection slot, behind other mail, throttled), b the
// preparation (the lease's commit, reading the message, DKIM), c the
// connection setup (DNS, connect, greeting, EHLO, STARTTLS; 0 on a reused
// connection) and d the SMTP transaction itself. reply is the remote server's
// reply on one line, or the local error in parentheses when there was no
// reply (a refused connection, a DNS failure).
//
// The package only formats; the queue and the accept pipeline call it.
package deliverylog

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/posthorn/posthorn/internal/smtpproto"
	"github.com/posthorn/posthorn/internal/store"
)

// Accepted is one message as it was queued.
type Accepted struct {
	QueueID  string
	From     string
	Size     int
	Rcpts    int
	Source   string // smtp, http, dsn
	Client   string // client IP, when known
	SMTPUser string
	Tenant   string
}

// enabled reports whether log writes mail log lines: below info (a
// server at warn) the lines are not even built, since they are built for
// every message and every delivery.
func enabled(log *slog.Logger) bool {
	return log != nil && log.Enabled(context.Background(), slog.LevelInfo)
}

// LogAccepted writes the line for a message just queued.
func LogAccepted(log *slog.Logger, a Accepted) {
	if !enabled(log) {
		return
	}
	attrs := []slog.Attr{
		slog.String("queue_id", a.QueueID), slog.String("from", "<"+a.From+">"), slog.Int("size", a.Size),
		slog.Int("nrcpt", a.Rcpts), slog.String("source", a.Source),
	}
	if a.Client != "" {
		attrs = append(attrs, slog.String("client", a.Client))
	}
	if a.SMTPUser != "" {
		attrs = append(attrs, slog.String("user", a.SMTPUser))
	}
	if a.Tenant != "" {
		attrs = append(attrs, slog.String("tenant", a.Tenant))
	}
	log.LogAttrs(context.Background(), slog.LevelInfo, "accepted", attrs...)
}

// Attempt is one delivery's outcome: an attempt, or a final state reached
// without one (suppressed, expired).
type Attempt struct {
	QueueID    string
	DeliveryID int64
	To         string
	Attempt    int       // this attempt's number, from 1
	Accepted   time.Time // when the message was queued (zero: unknown)
	// Taken is when a connection worker took the delivery (zero: unknown,
	// the wait is all counted as a); Setup is the connection setup this
	// attempt waited for (0: the connection was reused).
	Taken   time.Time
	Setup   time.Duration
	Outcome store.Outcome
}

// Status is the log's word for a delivery state.
func Status(s store.State) string {
	if s == store.Delivered {
		return "sent"
	}
	return string(s)
}

// LogAttempt writes the line for one delivery attempt or final state.
func LogAttempt(log *slog.Logger, a Attempt) {
	if !enabled(log) {
		return
	}
	o := a.Outcome
	end := o.StartedAt.Add(o.Duration)
	attrs := []slog.Attr{
		slog.String("queue_id", a.QueueID), slog.Int64("delivery", a.DeliveryID), slog.String("to", "<"+a.To+">"),
		slog.String("relay", Relay(o.MX, o.IP)),
	}
	if !a.Accepted.IsZero() && !o.StartedAt.IsZero() {
		attrs = append(attrs, slog.String("delay", secs(end.Sub(a.Accepted))), slog.String("delays", Delays(a)))
	}
	if a.Attempt > 0 {
		attrs = append(attrs, slog.Int("attempt", a.Attempt))
	}
	attrs = append(attrs, slog.String("dsn", DSN(o.State, o.Reply)), slog.String("status", Status(o.State)))
	if o.Class != "" {
		attrs = append(attrs, slog.String("class", o.Class))
	}
	if o.State == store.Deferred && !o.NextAt.IsZero() {
		attrs = append(attrs, slog.String("next_attempt", o.NextAt.UTC().Format(time.RFC3339)))
	}
	attrs = append(attrs, slog.String("reply", ReplyText(o.Reply, o.Error)))
	log.LogAttrs(context.Background(), slog.LevelInfo, "delivery", attrs...)
}

// Delays is the "a/b/c/d" split of the time from acceptance to the end of
// the attempt (see the package comment). The parts add up to delay.
func Delays(a Attempt) string {
	o := a.Outcome
	queued, prep, setup := o.StartedAt.Sub(a.Accepted), time.Duration(0), time.Duration(0)
	if !a.Taken.IsZero() && !a.Taken.Before(a.Accepted) && !a.Taken.After(o.StartedAt) {
		queued = a.Taken.Sub(a.Accepted)
		setup = min(a.Setup, o.StartedAt.Sub(a.Taken))
		prep = o.StartedAt.Sub(a.Taken) - setup
	}
	return secs(queued) + "/" + secs(prep) + "/" + secs(setup) + "/" + secs(o.Duration)
}

// Relay renders the host an attempt talked to as Postfix does:
// "mx.example.org[192.0.2.1]", or "none" when no connection was made.
func Relay(mx, ip string) string {
	switch {
	case mx == "" && ip == "":
		return "none"
	case ip == "":
		return mx
	case mx == "":
		return "[" + ip + "]"
	}
	return mx + "[" + ip + "]"
}

// DSN is the enhanced status code of the outcome: the server's own when it
// gave one, else one derived from the reply code or, without a reply, from
// the state (4.0.0 for a retry, 5.0.0 for a final failure).
func DSN(st store.State, r smtpproto.Reply) string {
	if r.Enhanced != "" {
		return r.Enhanced
	}
	if r.Code >= 200 && r.Code < 600 {
		return strconv.Itoa(r.Code/100) + ".0.0"
	}
	switch st {
	case store.Delivered:
		return "2.0.0"
	case store.Deferred:
		return "4.0.0"
	}
	return "5.0.0"
}

// ReplyText is the remote reply on one line, or the local error in
// parentheses when there was none.
func ReplyText(r smtpproto.Reply, localErr string) string {
	if r.Code != 0 {
		return r.String()
	}
	if localErr == "" {
		return "(no reply)"
	}
	return "(" + localErr + ")"
}

func secs(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	return fmt.Sprintf("%.2f", d.Seconds())
}
