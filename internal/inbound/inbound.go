// Package inbound is posthorn's inbound MX for its bounce domain: it takes
// mail only for that domain's VERP return paths (signed, dated tokens)
// and its postmaster/abuse/fbl mailboxes, refuses everything else with
// 550 5.7.1 (never a relay; no source routes, no %-hacks, no quoted
// at-signs), parses what arrives with internal/bounce, and records it on
// the original deliveries: a hard bounce makes the delivery bounced and
// suppresses the address; a soft one is a soft_bounced event (which counts
// toward on_hold); an ARF report is a complaint event and suppresses the
// address.
package inbound

import (
	"context"
	"fmt"
	"log/slog"
	"net"
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
	srv      *Server
	messages []string // message IDs named by the recipients' VERP tokens
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
func (s *session) Reset()                                         { s.messages = nil }
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
	id, err := s.srv.signer.Check(to.Addr.String())
	if err != nil {
		s.srv.log.Info("refused bounce address", "rcpt", to.Addr.String(), "err", err)
		return errUnknown
	}
	s.messages = append(s.messages, id)
	return nil
}

func (s *session) Data(body []byte) (*smtpd.Error, error) {
	rep, err := bounce.Parse(body)
	if err != nil {
		return smtpd.Reply(250, "2.0.0", "OK (empty)"), nil
	}
	ids := append([]string(nil), s.messages...)
	if tok := rep.Original.ReturnPath; tok != "" {
		if id, err := s.srv.signer.Check(tok); err == nil {
			ids = append(ids, id)
		}
	}
	n := s.srv.record(context.Background(), rep, ids)
	return smtpd.Reply(250, "2.0.0", fmt.Sprintf("OK, %d deliveries updated", n)), nil
}

// record applies a parsed report to the deliveries of the named messages.
func (s *Server) record(ctx context.Context, rep *bounce.Report, ids []string) int {
	updated := 0
	now := time.Now().UTC()
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			continue
		}
		seen[id] = true
		ds, err := s.st.MessageDeliveries(ctx, id)
		if err != nil || len(ds) == 0 {
			continue
		}
		switch rep.Kind {
		case bounce.KindDSN:
			for _, r := range rep.Recipients {
				if r.Action != "failed" && r.Action != "delayed" && !r.Hard {
					continue
				}
				d, ok := match(ds, r.Address)
				if !ok {
					continue
				}
				if s.applyBounce(ctx, d, r, now) {
					updated++
				}
			}
		case bounce.KindARF:
			rcpts := []string{}
			if rep.Feedback != nil {
				rcpts = append(rcpts, rep.Feedback.OriginalRcptTo...)
			}
			if len(rcpts) == 0 && len(ds) == 1 {
				rcpts = []string{ds[0].Recipient}
			}
			for _, a := range rcpts {
				d, ok := match(ds, a)
				if !ok {
					continue
				}
				ftype := "abuse"
				if rep.Feedback != nil && rep.Feedback.Type != "" {
					ftype = rep.Feedback.Type
				}
				ev := store.Event{At: now, Type: store.EventComplaint, TenantID: d.TenantID, MessageID: d.MessageID, DeliveryID: d.ID,
					Recipient: d.Recipient, Detail: "feedback report: " + ftype}
				if err := s.st.RecordEvent(ctx, ev); err != nil {
					s.log.Error("record complaint", "err", err)
					continue
				}
				s.suppress(ctx, d, "complaint", "feedback report: "+ftype)
				updated++
			}
		}
	}
	return updated
}

func (s *Server) applyBounce(ctx context.Context, d store.Delivery, r bounce.Recipient, now time.Time) bool {
	reply := smtpproto.Reply{Code: r.ReplyCode, Enhanced: r.Status, Text: r.Diagnostic}
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

func (s *Server) suppress(ctx context.Context, d store.Delivery, reason, detail string) {
	if s.sup == nil {
		return
	}
	if err := s.sup.Add(ctx, store.Suppression{TenantID: d.TenantID, Kind: "address", Value: d.Recipient, Reason: reason,
		Detail: clip(detail, 300)}); err != nil {
		s.log.Error("suppress", "err", err)
	}
}

// match finds the delivery for an address (domain case-insensitive).
func match(ds []store.Delivery, addr string) (store.Delivery, bool) {
	a, err := smtpproto.ParseAddress(strings.Trim(addr, "<> "), true)
	if err != nil {
		return store.Delivery{}, false
	}
	for _, d := range ds {
		if d.Recipient == a.String() {
			return d, true
		}
	}
	return store.Delivery{}, false
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
