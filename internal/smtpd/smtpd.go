// Package smtpd is posthorn's SMTP server engine: the protocol side of a
// listener (greeting, EHLO, MAIL/RCPT/DATA, RSET, STARTTLS, AUTH PLAIN and
// LOGIN, limits, pipelining), with the policy left to a Backend. It is
// written for RFC 5321 correctness (503 for bad sequence, 555 for unknown
// parameters, 553 for bad addresses, quoted local parts, source routes
// accepted and reported), for safety (a DATA body ends only at CRLF.CRLF;
// input pipelined after STARTTLS is refused; panics in a session are
// contained), and for speed (replies are buffered and flushed only when
// the client has nothing more pipelined).
//
// Invariants: every reply comes from writeReply; a backend error that is
// not an *Error becomes 451 4.3.0 without its text; the Backend sees only
// syntactically valid paths and parameters.
package smtpd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/posthorn/posthorn/internal/smtpproto"
)

// Config sets the engine's limits.
type Config struct {
	Hostname       string
	TLS            *tls.Config // nil: no STARTTLS
	MaxMessageSize int64
	MaxRecipients  int
	MaxLineLength  int           // command and data lines, CRLF included
	ReadTimeout    time.Duration // per command
	DataTimeout    time.Duration // whole DATA body
	MaxErrors      int           // consecutive-ish bad commands before 421 (default 10)
	MaxConnections int
	// MaxConnectionsPerIP > 0 caps the sessions one client address may
	// hold at once, so one host cannot take every slot (no address is
	// exempt, loopback included). 0: no per-address cap.
	MaxConnectionsPerIP int
	// MaxMessagesPerSession > 0 ends a session (421) that tries more.
	MaxMessagesPerSession int
	Log                   *slog.Logger
}

// Error is an SMTP reply a Backend returns to refuse something.
type Error struct {
	Code     int
	Enhanced string
	Text     string
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s %s", e.Code, e.Enhanced, e.Text) }

// Reply builds an *Error.
func Reply(code int, enhanced, text string) *Error {
	return &Error{Code: code, Enhanced: enhanced, Text: text}
}

// Path is a parsed reverse or forward path.
type Path struct {
	Null  bool              // <>
	Addr  smtpproto.Address // when not Null
	Route bool              // a source route (@a,@b:) was given and dropped
}

// MailParams are MAIL FROM's ESMTP parameters.
type MailParams struct {
	Size     int64
	EightBit bool // BODY=8BITMIME
	UTF8     bool // SMTPUTF8
}

// Backend creates a session per connection.
type Backend interface {
	NewSession(c *Conn) Session
}

// Session is the policy for one connection. Methods return nil to accept
// or an *Error to refuse (any other error becomes 451 4.3.0).
type Session interface {
	AuthMechanisms() []string // advertised now (nil hides AUTH)
	Auth(mech, identity, username, password string) error
	Mail(from Path, p MailParams) error
	Rcpt(to Path) error
	// Data receives the message (dot-unstuffed, as sent) and returns the
	// success reply (nil: 250 2.0.0 OK).
	Data(body []byte) (*Error, error)
	Reset()
	Close()
}

// Server accepts connections and runs sessions.
type Server struct {
	cfg     Config
	backend Backend
	log     *slog.Logger

	mu     sync.Mutex
	ln     net.Listener
	conns  map[*Conn]struct{}
	perIP  map[netip.Addr]int // open sessions per client address
	closed bool
	// draining: new connections get 421 4.3.2 (Drain, drain.go).
	draining bool
	wg       sync.WaitGroup
}

// NewServer returns a server; Serve runs it on a listener.
func NewServer(cfg Config, b Backend) *Server {
	if cfg.MaxErrors <= 0 {
		cfg.MaxErrors = 10
	}
	if cfg.MaxLineLength <= 0 {
		cfg.MaxLineLength = 2000
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = 5 * time.Minute
	}
	if cfg.DataTimeout <= 0 {
		cfg.DataTimeout = 10 * time.Minute
	}
	if cfg.MaxConnections <= 0 {
		cfg.MaxConnections = 1000
	}
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	return &Server{cfg: cfg, backend: b, log: log, conns: map[*Conn]struct{}{}, perIP: map[netip.Addr]int{}}
}

// Serve accepts connections until the listener is closed.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	s.ln = ln
	s.mu.Unlock()
	for {
		nc, err := ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return err
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			return net.ErrClosed
		}
		ip := remoteIP(nc)
		refuse := ""
		switch {
		case s.draining:
			s.mu.Unlock()
			nc.SetWriteDeadline(time.Now().Add(time.Second))
			fmt.Fprintf(nc, "421 4.3.2 %s shutting down, try again later\r\n", s.cfg.Hostname)
			nc.Close()
			continue
		case len(s.conns) >= s.cfg.MaxConnections:
			refuse = "too many connections"
		case s.cfg.MaxConnectionsPerIP > 0 && s.perIP[ip] >= s.cfg.MaxConnectionsPerIP:
			refuse = "too many connections from your address"
		}
		if refuse != "" {
			s.mu.Unlock()
			nc.SetWriteDeadline(time.Now().Add(time.Second))
			fmt.Fprintf(nc, "421 4.7.0 %s %s, try again later\r\n", s.cfg.Hostname, refuse)
			nc.Close()
			continue
		}
		c := newConn(s, nc)
		s.conns[c] = struct{}{}
		s.perIP[ip]++
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			c.serve()
			s.mu.Lock()
			delete(s.conns, c)
			if s.perIP[ip]--; s.perIP[ip] <= 0 {
				delete(s.perIP, ip)
			}
			s.mu.Unlock()
		}()
	}
}

// Shutdown stops accepting, tells idle sessions to go (421), lets sessions
// in DATA finish, and waits for all to end or ctx to expire (then closes
// the rest).
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	if s.ln != nil {
		s.ln.Close()
	}
	for c := range s.conns {
		c.shutdown()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.conns {
			c.nc.Close()
		}
		s.mu.Unlock()
		<-done
		return ctx.Err()
	}
}

// errorText keeps internal details out of replies.
func replyFor(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return Reply(451, "4.3.0", "Temporary local problem; try again later")
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}
