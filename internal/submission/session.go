package submission

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/netip"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/posthorn/posthorn/internal/accept"
	"github.com/posthorn/posthorn/internal/smtpproto"
	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/tenant"
)

// session is one SMTP connection's state after EHLO.
type session struct {
	srv     *Server
	conn    *smtp.Conn
	ip      netip.Addr
	trusted bool
	user    *store.SMTPUser // after AUTH

	from  string
	utf8  bool
	eight bool
	rcpts []string
}

var _ smtp.AuthSession = (*session)(nil)

func (s *session) tlsActive() bool {
	_, ok := s.conn.TLSConnectionState()
	return ok
}

// AuthMechanisms hides AUTH on cleartext connections from non-loopback
// clients unless the operator allowed it: passwords travel over TLS.
func (s *session) AuthMechanisms() []string {
	if !s.tlsActive() && !s.ip.IsLoopback() && !s.srv.cfg.AllowInsecureAuth {
		return nil
	}
	return []string{sasl.Plain, sasl.Login}
}

func (s *session) Auth(mech string) (sasl.Server, error) {
	if len(s.AuthMechanisms()) == 0 {
		return nil, errEncryptionRequired
	}
	if s.srv.authBlocked(s.ip) {
		return nil, errTooManyAuthFailures
	}
	check := func(username, password string) error {
		u, err := s.srv.tenants.CheckSMTP(context.Background(), username, password)
		if errors.Is(err, tenant.ErrBadCredentials) {
			s.srv.authFailed(s.ip)
			s.srv.log.Info("smtp auth failed", "ip", s.ip.String(), "user", clip(username, 64))
			return errAuthFailed
		}
		if err != nil {
			s.srv.log.Error("smtp auth", "err", err)
			return errTemporary
		}
		s.user = u
		return nil
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, username, password string) error {
			if identity != "" && identity != username {
				return errAuthFailed
			}
			return check(username, password)
		}), nil
	case sasl.Login:
		return &loginServer{check: check}, nil
	}
	return nil, errUnknownMechanism
}

func (s *session) Mail(from string, opts *smtp.MailOptions) error {
	if s.user == nil && !s.trusted {
		return errAuthRequired
	}
	if from != "" {
		a, err := smtpproto.ParseAddress(from, opts.UTF8)
		if err != nil {
			return badAddress(err, false)
		}
		from = a.String()
	}
	if opts.Size > s.srv.cfg.MaxMessageSize {
		return errTooBig
	}
	s.from, s.utf8, s.eight = from, opts.UTF8, opts.Body == smtp.Body8BitMIME
	s.rcpts = s.rcpts[:0]
	return nil
}

func (s *session) Rcpt(to string, opts *smtp.RcptOptions) error {
	if s.user == nil && !s.trusted {
		return errAuthRequired
	}
	a, err := smtpproto.ParseAddress(to, s.utf8)
	if err != nil {
		return badAddress(err, true)
	}
	s.rcpts = append(s.rcpts, a.String())
	return nil
}

func (s *session) Data(r io.Reader) error {
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(r); err != nil {
		if errors.Is(err, smtp.ErrDataTooLarge) {
			return errTooBig
		}
		return errReadFailed
	}
	sub := &accept.Submission{
		Source:     "smtp",
		ClientIP:   s.ip.String(),
		Helo:       s.conn.Hostname(),
		Sender:     s.from,
		Recipients: append([]string(nil), s.rcpts...),
		Body:       buf.Bytes(),
		UTF8:       s.utf8,
		EightBit:   s.eight,
		Protocol:   s.protocol(),
	}
	if s.user != nil {
		sub.TenantID, sub.SMTPUser, sub.Lane = s.user.TenantID, s.user.Username, s.user.DefaultLane
	} else {
		sub.TenantID = s.srv.cfg.DefaultTenantID
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := s.srv.accept.Accept(ctx, sub)
	if err != nil {
		return s.srv.replyFor(err)
	}
	return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: "OK queued as " + res.MessageID}
}

func (s *session) protocol() string {
	p := "ESMTP"
	if s.tlsActive() {
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

func (s *session) Logout() error { return nil }

// loginServer is the server side of the (obsolete but ubiquitous) LOGIN
// mechanism: ask for the username, then the password.
type loginServer struct {
	check    func(username, password string) error
	username string
	step     int
}

func (l *loginServer) Next(response []byte) ([]byte, bool, error) {
	switch l.step {
	case 0:
		l.step = 1
		if len(response) == 0 {
			return []byte("Username:"), false, nil
		}
		fallthrough // initial response carried the username
	case 1:
		l.username = string(response)
		l.step = 2
		return []byte("Password:"), false, nil
	case 2:
		l.step = 3
		return nil, true, l.check(l.username, string(response))
	}
	return nil, true, errors.New("unexpected LOGIN response")
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
