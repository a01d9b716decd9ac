// Package inbound is posthorn's inbound MX for its bounce domain: it takes
// mail only for that domain's VERP return paths (signed, dated tokens)
// and its postmaster/abuse/fbl mailboxes, refuses everything else with
// 550 5.7.1 (never a relay; no source routes, no %-hacks, no quoted
// at-signs), parses what arrives with internal/bounce, and records it on
// the original deliveries: a hard bounce makes the delivery bounced and
// suppresses the address; a soft one is a soft_bounced event (which counts
// toward on_hold); an ARF report is a complaint event and suppresses the
// address.
//
// Trust: a report counts only for the delivery whose return path vouches
// for it -- the envelope recipient's token, or the token in the returned
// message's Return-Path (for reports sent to postmaster/abuse/fbl). Each
// recipient's copy has its own return path, so a recipient who mails a
// report to theirs can speak only about themselves. A report on a
// delivery's return path changes that delivery when it names that
// delivery's recipient (Final-Recipient or Original-Recipient, case
// ignored; a report naming no recipient, as feedback reports often do,
// counts for the delivery); any other claim (another recipient of the message, or an
// unknown address such as a forwarding target) changes nothing and is
// kept as a report_ignored event on the message, with what it claimed.
//
// Message-level tokens (the form posthorn sent before return paths named
// the delivery) still verify until they expire, but count only when the
// message had exactly one recipient and the report names it; otherwise
// they are recorded as report_ignored and change nothing.
package inbound

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/posthorn/posthorn/internal/bounce"
	"github.com/posthorn/posthorn/internal/smtpd"
	"github.com/posthorn/posthorn/internal/smtpproto"
	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/verp"
)

// Suppressions is what inbound adds to.
type Suppressions interface {
	Add(ctx context.Context, ss ...store.Suppression) error
}

// Config sets up the listener.
type Config struct {
	Listen         string
	Hostname       string
	MaxMessageSize int64
	// RUA, when set, is an address at the bounce domain that takes DMARC
	// aggregate reports, handed to Reports (reports.go).
	RUA     string
	Reports ReportIntake
}

// Server is the running inbound listener.
type Server struct {
	cfg    Config
	signer *verp.Signer
	st     store.Store
	sup    Suppressions
	log    *slog.Logger
	srv    *smtpd.Server
	ln     net.Listener
	done   chan struct{}
}

// New builds the listener.
func New(cfg Config, signer *verp.Signer, st store.Store, sup Suppressions, log *slog.Logger) *Server {
	s := &Server{cfg: cfg, signer: signer, st: st, sup: sup, log: log, done: make(chan struct{})}
	s.srv = smtpd.NewServer(smtpd.Config{Hostname: cfg.Hostname, MaxMessageSize: cfg.MaxMessageSize, MaxRecipients: 50,
		MaxLineLength: 4096, MaxConnections: 200, Log: log}, s)
	return s
}

// Start listens.
func (s *Server) Start() error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("inbound listen %s: %w", s.cfg.Listen, err)
	}
	s.ln = ln
	go func() {
		defer close(s.done)
		s.srv.Serve(ln)
	}()
	s.log.Info("inbound bounce MX listening", "addr", ln.Addr().String(), "domain", s.signer.Domain())
	return nil
}

// Stop shuts down.
func (s *Server) Stop(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	<-s.done
	return err
}

// NewSession implements smtpd.Backend.
func (s *Server) NewSession(c *smtpd.Conn) smtpd.Session { return &session{srv: s} }

type session struct {
	srv    *Server
	refs   []verp.Ref // what the recipients' VERP tokens name
	report bool       // the rua address is a recipient
}

var (
	errNotHere = smtpd.Reply(550, "5.7.1", "Relaying denied: this server accepts mail only for its bounce addresses")
	errRoute   = smtpd.Reply(550, "5.7.1", "Source routes are not accepted")
	errUnknown = smtpd.Reply(550, "5.1.1", "Unknown or expired bounce address")
)

func (s *session) AuthMechanisms() []string { return nil }
func (s *session) Auth(mech, id, user, pass string) error {
	return smtpd.Reply(503, "5.5.1", "AUTH not available here")
}
func (s *session) Mail(from smtpd.Path, p smtpd.MailParams) error { return nil }
func (s *session) Reset()                                         { s.refs, s.report = nil, false }
func (s *session) Close()                                         {}

// Rcpt admits only the bounce domain's own addresses.
func (s *session) Rcpt(to smtpd.Path) error {
	if to.Route {
		return errRoute
	}
	if to.Addr.Domain != s.srv.signer.Domain() {
		return errNotHere
	}
	local := strings.ToLower(to.Addr.Local)
	if strings.ContainsAny(local, "%!@:\"") {
		return errNotHere // user%other@, "a@b"@, uucp paths: never relayed
	}
	switch local {
	case "postmaster", "abuse", "fbl":
		return nil
	}
	if s.isReportAddress(to) {
		return nil
	}
	ref, err := s.srv.signer.Check(to.Addr.String())
	if err != nil {
		s.srv.log.Info("refused bounce address", "rcpt", to.Addr.String(), "err", err)
		return errUnknown
	}
	s.refs = append(s.refs, ref)
	return nil
}

func (s *session) Data(body []byte) (*smtpd.Error, error) {
	if s.report {
		return s.takeReport(body), nil
	}
	rep, err := bounce.Parse(body)
	if err != nil {
		return smtpd.Reply(250, "2.0.0", "OK (empty)"), nil
	}
	refs := append([]verp.Ref(nil), s.refs...)
	if tok := rep.Original.ReturnPath; tok != "" {
		if ref, err := s.srv.signer.Check(tok); err == nil {
			refs = append(refs, ref)
		}
	}
	n := s.srv.record(context.Background(), rep, refs)
	return smtpd.Reply(250, "2.0.0", fmt.Sprintf("OK, %d deliveries updated", n)), nil
}

// claim is one thing a report says about one address.
type claim struct {
	addr string           // the address named; "" when the report names none
	dsn  bounce.Recipient // for a DSN
}

// claims lists what rep says, about whom.
func claims(rep *bounce.Report) []claim {
	var out []claim
	switch rep.Kind {
	case bounce.KindDSN:
		for _, r := range rep.Recipients {
			if r.Action != "failed" && r.Action != "delayed" && !r.Hard {
				continue
			}
			out = append(out, claim{addr: r.Address, dsn: r})
		}
	case bounce.KindARF:
		if rep.Feedback != nil {
			for _, a := range rep.Feedback.OriginalRcptTo {
				out = append(out, claim{addr: a})
			}
		}
		if len(out) == 0 {
			out = append(out, claim{})
		}
	}
	return out
}

// record applies a parsed report to the deliveries its return paths vouch
// for, and keeps every other claim as a report_ignored event.
func (s *Server) record(ctx context.Context, rep *bounce.Report, refs []verp.Ref) int {
	updated := 0
	now := time.Now().UTC()
	seen := map[verp.Ref]bool{}
	cs := claims(rep)
	for _, ref := range refs {
		if seen[ref] || len(cs) == 0 {
			continue
		}
		seen[ref] = true
		ds, err := s.st.MessageDeliveries(ctx, ref.MessageID)
		if err != nil || len(ds) == 0 {
			continue
		}
		own, ok := vouched(ref, ds)
		if !ref.Legacy() && !ok {
			continue // a delivery since purged
		}
		for _, c := range cs {
			if !ok || !names(own, c) {
				s.ignore(ctx, rep, ref, ds[0].TenantID, own, ok, c, now)
				continue
			}
			if s.apply(ctx, rep, own, c, now) {
				updated++
			}
		}
	}
	return updated
}

// vouched returns the delivery ref may speak for: the one it names, or,
// for a message-level token, the message's only delivery.
func vouched(ref verp.Ref, ds []store.Delivery) (store.Delivery, bool) {
	if ref.Legacy() {
		if len(ds) == 1 {
			return ds[0], true
		}
		return store.Delivery{}, false
	}
	for _, d := range ds {
		if d.ID == ref.DeliveryID {
			return d, true
		}
	}
	return store.Delivery{}, false
}

// names reports whether c is about d's recipient. A feedback report that
// names nobody is about the delivery whose return path it came back on.
func names(d store.Delivery, c claim) bool {
	if c.addr == "" && c.dsn.OriginalRecipient == "" {
		return true
	}
	return sameAddress(c.addr, d.Recipient) || sameAddress(c.dsn.OriginalRecipient, d.Recipient)
}

func (s *Server) apply(ctx context.Context, rep *bounce.Report, d store.Delivery, c claim, now time.Time) bool {
	if rep.Kind == bounce.KindDSN {
		return s.applyBounce(ctx, d, c.dsn, now)
	}
	ftype := "abuse"
	if rep.Feedback != nil && rep.Feedback.Type != "" {
		ftype = rep.Feedback.Type
	}
	ev := store.Event{At: now, Type: store.EventComplaint, TenantID: d.TenantID, MessageID: d.MessageID, DeliveryID: d.ID,
		Recipient: d.Recipient, Detail: "feedback report: " + ftype}
	if err := s.st.RecordEvent(ctx, ev); err != nil {
		s.log.Error("record complaint", "err", err)
		return false
	}
	s.suppress(ctx, d, "complaint", "feedback report: "+ftype)
	return true
}

// ignore keeps a claim the return path does not vouch for.
func (s *Server) ignore(ctx context.Context, rep *bounce.Report, ref verp.Ref, tenantID string, own store.Delivery, ok bool, c claim, now time.Time) {
	what := "a complaint"
	if rep.Kind == bounce.KindDSN {
		what = fmt.Sprintf("%s %s %s", c.dsn.Action, c.dsn.Status, clip(c.dsn.Diagnostic, 200))
	} else if rep.Feedback != nil && rep.Feedback.Type != "" {
		what = "a complaint (" + rep.Feedback.Type + ")"
	}
	about := c.addr
	if about == "" {
		about = "no recipient"
	}
	var on, why string
	switch {
	case !ref.Legacy():
		on = fmt.Sprintf("the return path of %s", own.Recipient)
		why = "it names another address"
	case ok:
		on = "the message-level return path"
		why = "it names another address"
	default:
		on = "the message-level return path"
		why = "a message-level return path counts only for a message with one recipient"
	}
	ev := store.Event{At: now, Type: store.EventReportIgnored, TenantID: tenantID, MessageID: ref.MessageID,
		DeliveryID: own.ID, Recipient: own.Recipient,
		Detail: clip(fmt.Sprintf("%s on %s claims %s: %s; ignored: %s", rep.Kind, on, about, what, why), 500)}
	if err := s.st.RecordEvent(ctx, ev); err != nil {
		s.log.Error("record ignored report", "err", err)
	}
	s.log.Warn("report claims what its return path does not vouch for", "message", ref.MessageID, "delivery", ref.DeliveryID,
		"claimed", about, "kind", rep.Kind)
}

func (s *Server) applyBounce(ctx context.Context, d store.Delivery, r bounce.Recipient, now time.Time) bool {
	reply := smtpproto.Reply{Code: r.ReplyCode, Enhanced: r.Status, Text: diagnosticText(r)}
	detail := fmt.Sprintf("asynchronous bounce from %s: %s %s", r.RemoteMTA, r.Status, clip(r.Diagnostic, 300))
	if r.Hard {
		_, err := s.st.Transition(ctx, store.TransitionSpec{DeliveryIDs: []int64{d.ID}, Op: store.OpAsyncBounce, Now: now, Detail: detail})
		if err != nil {
			s.log.Error("record asynchronous bounce", "err", err)
			return false
		}
		s.suppress(ctx, d, "hard_bounce", reply.String())
		return true
	}
	ev := store.Event{At: now, Type: store.EventSoftBounce, TenantID: d.TenantID, MessageID: d.MessageID, DeliveryID: d.ID,
		Recipient: d.Recipient, Reply: reply, Detail: detail}
	if err := s.st.RecordEvent(ctx, ev); err != nil {
		s.log.Error("record asynchronous soft bounce", "err", err)
		return false
	}
	return true
}

// diagnosticText is a report's diagnostic without the "smtp;" type and
// the codes it repeats ("550 5.1.1 user unknown" -> "user unknown"), so
// the reply built from it does not say them twice.
func diagnosticText(r bounce.Recipient) string {
	t := strings.TrimSpace(r.Diagnostic)
	if head, rest, ok := strings.Cut(t, ";"); ok && strings.EqualFold(strings.TrimSpace(head), "smtp") {
		t = strings.TrimSpace(rest)
	}
	if r.ReplyCode != 0 {
		t = strings.TrimSpace(strings.TrimPrefix(t, strconv.Itoa(r.ReplyCode)))
		t = strings.TrimPrefix(t, "-")
	}
	if r.Status != "" {
		t = strings.TrimSpace(strings.TrimPrefix(t, r.Status))
	}
	return t
}

func (s *Server) suppress(ctx context.Context, d store.Delivery, reason, detail string) {
	if s.sup == nil {
		return
	}
	if err := s.sup.Add(ctx, store.Suppression{TenantID: d.TenantID, Kind: "address", Value: d.Recipient, Reason: reason,
		Detail: clip(detail, 300)}); err != nil {
		s.log.Error("suppress", "err", err)
	}
}

// sameAddress compares a reported address with a recipient, ignoring
// case (reports often change it; the return path already says which
// delivery this is).
func sameAddress(reported, recipient string) bool {
	a, err := smtpproto.ParseAddress(strings.Trim(reported, "<> "), true)
	return err == nil && strings.EqualFold(a.String(), recipient)
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
