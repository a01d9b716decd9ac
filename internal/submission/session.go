package submission

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/posthorn/posthorn/internal/accept"
	"github.com/posthorn/posthorn/internal/smtpd"
	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/tenant"
)

// session is one SMTP connection's policy state.
type session struct {
	srv     *Server
	conn    *smtpd.Conn
	ip      netip.Addr
	trusted bool
	user    *store.SMTPUser // after AUTH

	from  string
	utf8  bool
	eight bool
	rcpts []string
}

var _ smtpd.Session = (*session)(nil)

// AuthMechanisms hides AUTH on cleartext connections from non-loopback
// clients unless the operator allowed it: passwords travel over TLS.
func (s *session) AuthMechanisms() []string {
	if !s.conn.TLS() && !s.ip.IsLoopback() && !s.srv.cfg.AllowInsecureAuth {
		return nil
	}
	return []string{"PLAIN", "LOGIN"}
}

func (s *session) Auth(mech, identity, username, password string) error {
	done, why := s.srv.lockout.reserve(s.ip, username)
	switch why {
	case ipBlocked:
		return errTooManyAuthFailures
	case userBlocked:
		s.srv.log.Info("smtp auth refused: user locked out", "ip", s.ip.String(), "user", clip(username, 64))
		return errUserLockedOut
	}
	if identity != "" && identity != username {
		done(true)
		return errAuthFailed
	}
	u, err := s.srv.tenants.CheckSMTP(context.Background(), username, password)
	if errors.Is(err, tenant.ErrBadCredentials) {
		done(true)
		s.srv.log.Info("smtp auth failed", "ip", s.ip.String(), "user", clip(username, 64))
		s.srv.authFailedEvent(s.ip, username)
		return errAuthFailed
	}
	if err != nil {
		done(false) // our failure, not the client's
		s.srv.log.Error("smtp auth", "err", err)
		return errTemporary
	}
	done(false)
	s.user = u
	return nil
}

func (s *session) allowed() bool { return s.user != nil || s.trusted }

func (s *session) Mail(from smtpd.Path, p smtpd.MailParams) error {
	if !s.allowed() {
		return errAuthRequired
	}
	s.from = ""
	if !from.Null {
		s.from = from.Addr.String()
		if err := s.srv.accept.CheckEnvelopeSender(s.tenantID(), s.from); err != nil {
			s.from = ""
			return s.srv.replyFor(err)
		}
		if s.user != nil {
			if err := accept.CheckAllowedSender(s.user.Domains, s.from); err != nil {
				s.from = ""
				return s.srv.replyFor(err)
			}
		}
	}
	s.utf8, s.eight = p.UTF8, p.EightBit
	s.rcpts = s.rcpts[:0]
	return nil
}

// tenantID is the tenant this session submits for.
func (s *session) tenantID() string {
	if s.user != nil {
		return s.user.TenantID
	}
	return s.srv.cfg.DefaultTenantID
}

func (s *session) Rcpt(to smtpd.Path) error {
	if !s.allowed() {
		return errAuthRequired
	}
	s.rcpts = append(s.rcpts, to.Addr.String())
	return nil
}

func (s *session) Data(body []byte) (*smtpd.Error, error) {
	sub := &accept.Submission{
		Source:     "smtp",
		ClientIP:   s.ip.String(),
		Helo:       s.conn.Helo(),
		Sender:     s.from,
		Recipients: append([]string(nil), s.rcpts...),
		Body:       body,
		UTF8:       s.utf8,
		EightBit:   s.eight,
		Protocol:   s.protocol(),
	}
	if s.user != nil {
		sub.TenantID, sub.SMTPUser, sub.Lane = s.user.TenantID, s.user.Username, s.user.DefaultLane
		sub.AllowedDomains = s.user.Domains
		if s.user.IdempotentMessageID {
			if id := accept.HeaderValue(body, "Message-ID"); id != "" {
				// Same Message-ID, same answer: the body may differ in
				// Received lines and the like, so it is not compared.
				sub.IdempotencyKey, sub.RequestHash = "smtp-message-id:"+id, "smtp"
			}
		}
	} else {
		sub.TenantID = s.srv.cfg.DefaultTenantID
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := s.srv.accept.Accept(ctx, sub)
	if err != nil {
		return nil, s.srv.replyFor(err)
	}
	return smtpd.Reply(250, "2.0.0", "OK queued as "+res.MessageID), nil
}

func (s *session) protocol() string {
	p := "ESMTP"
	if s.conn.TLS() {
		p += "S"
	}
	if s.user != nil {
		p += "A"
	}
	return p
}

func (s *session) Reset() {
	s.from, s.utf8, s.eight = "", false, false
	s.rcpts = s.rcpts[:0]
}

func (s *session) Close() {}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
