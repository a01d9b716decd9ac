// Package submission is posthorn's SMTP submission listener. The protocol
// is internal/smtpd's; this package decides policy: who may send (AUTH, or
// a trusted network), AUTH lockouts (lockout.go: attempts reserved before
// the password check, limited per client address and per username), the
// per-address session cap, and the one mapping from internal
// errors to SMTP replies (reply.go). Accepted messages go to the
// accept pipeline; the 250 is written only after it reports them durable.
//
// Never an open relay: a client that has neither authenticated nor
// connected from a trusted network gets 530 5.7.0 at MAIL FROM.
package submission

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/posthorn/posthorn/internal/accept"
	"github.com/posthorn/posthorn/internal/smtpd"
	"github.com/posthorn/posthorn/internal/tenant"
)

// Config is what the listener needs to know.
type Config struct {
	Listen                string
	Hostname              string
	TLS                   *tls.Config // nil: no STARTTLS
	MaxMessageSize        int64
	MaxRecipients         int
	MaxLineLength         int
	MaxConnections        int
	ReadTimeout           time.Duration
	AllowInsecureAuth     bool // AUTH without TLS from non-loopback clients
	Trusted               []netip.Prefix
	DefaultTenantID       string        // tenant for trusted-network submissions
	MaxAuthFailures       int           // per client IP and per username per authFailWindow
	MaxConnectionsPerIP   int           // sessions one client address may hold (0: no cap)
	DataTimeout           time.Duration // whole DATA body (0: smtpd's default)
	MaxErrors             int           // bad commands before the session is closed
	MaxMessagesPerSession int
	// ImplicitTLS serves TLS from the first byte (RFC 8314 submissions,
	// port 465) instead of offering STARTTLS.
	ImplicitTLS bool
}

const authFailWindow = 10 * time.Minute

// Server is the running listener.
type Server struct {
	cfg     Config
	accept  *accept.Pipeline
	tenants *tenant.Manager
	log     *slog.Logger
	srv     *smtpd.Server
	ln      net.Listener
	done    chan struct{}

	lockout *lockout
	trusted atomic.Pointer[[]netip.Prefix] // replaced by SetTrusted; nil: cfg.Trusted
}

// New builds a server; Start opens the listener.
func New(cfg Config, p *accept.Pipeline, tm *tenant.Manager, log *slog.Logger) *Server {
	s := &Server{cfg: cfg, accept: p, tenants: tm, log: log, lockout: newLockout(cfg.MaxAuthFailures, authFailWindow), done: make(chan struct{})}
	starttls := cfg.TLS
	if cfg.ImplicitTLS {
		starttls = nil // already encrypted: no STARTTLS to offer
	}
	s.srv = smtpd.NewServer(smtpd.Config{Hostname: cfg.Hostname, TLS: starttls, MaxMessageSize: cfg.MaxMessageSize,
		MaxRecipients: cfg.MaxRecipients, MaxLineLength: cfg.MaxLineLength, ReadTimeout: cfg.ReadTimeout,
		DataTimeout: cfg.DataTimeout, MaxConnections: cfg.MaxConnections, MaxConnectionsPerIP: cfg.MaxConnectionsPerIP, MaxErrors: cfg.MaxErrors, MaxMessagesPerSession: cfg.MaxMessagesPerSession, Log: log}, s)
	return s
}

// Start listens and serves in the background.
func (s *Server) Start(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("smtp listen %s: %w", s.cfg.Listen, err)
	}
	if s.cfg.ImplicitTLS {
		if s.cfg.TLS == nil {
			ln.Close()
			return errors.New("smtp listen: implicit TLS without a TLS configuration")
		}
		ln = tls.NewListener(ln, s.cfg.TLS)
	}
	s.ln = ln
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, net.ErrClosed) {
			s.log.Error("smtp server stopped", "err", err)
		}
	}()
	s.log.Info("smtp submission listening", "addr", ln.Addr().String(), "implicit_tls", s.cfg.ImplicitTLS)
	return nil
}

// Addr is the listening address (useful with port 0).
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Stop closes the listener and waits up to the context's deadline for
// sessions to finish (a session in DATA finishes its commit first).
func (s *Server) Stop(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	<-s.done
	return err
}

// NewSession implements smtpd.Backend.
func (s *Server) NewSession(c *smtpd.Conn) smtpd.Session {
	ip := c.RemoteIP()
	return &session{srv: s, conn: c, ip: ip, trusted: s.isTrusted(ip)}
}

func (s *Server) isTrusted(ip netip.Addr) bool {
	trusted := s.cfg.Trusted
	if t := s.trusted.Load(); t != nil {
		trusted = *t
	}
	for _, p := range trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// SetTrusted replaces the networks that may submit without AUTH (a
// configuration reload); sessions opened from now on use them.
func (s *Server) SetTrusted(ps []netip.Prefix) { s.trusted.Store(&ps) }

// Drain answers new sessions "421 4.3.2 shutting down" and tells idle
// ones the same while the listener stays open; Stop closes it.
func (s *Server) Drain() { s.srv.Drain() }
