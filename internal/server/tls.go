package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/posthorn/posthorn/internal/accept"
	"github.com/posthorn/posthorn/internal/delivery"
	"github.com/posthorn/posthorn/internal/delivery/mtasts"
	"github.com/posthorn/posthorn/internal/delivery/tlsrpt"
	"github.com/posthorn/posthorn/internal/selfsigned"
	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/tenant"
	"github.com/posthorn/posthorn/internal/tlscert"
)

// certPollInterval is how often the listeners' certificate files are
// checked for a replacement.
const certPollInterval = 2 * time.Second

// listenerTLS is the TLS configuration of the submission listeners:
// the configured certificate files, reloaded when they change, or the
// self-signed certificate in the data directory (for loopback use: a
// warning says so when a listener is reachable from elsewhere).
func (s *Server) listenerTLS() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if s.cfg.SMTP.TLSCert != "" {
		r, err := tlscert.Load(s.cfg.SMTP.TLSCert, s.cfg.SMTP.TLSKey, s.log.With("part", "tls"))
		if err != nil {
			return nil, err
		}
		r.Start(certPollInterval)
		s.certs = r
		cfg.GetCertificate = r.GetCertificate
		return cfg, nil
	}
	cert, err := selfsigned.LoadOrCreate(s.cfg.TLSDir(), s.cfg.Hostname)
	if err != nil {
		return nil, fmt.Errorf("tls certificate: %w", err)
	}
	for _, addr := range []string{s.cfg.SMTPListen, s.cfg.SubmissionsListen} {
		if addr != "" && !loopbackListen(addr) {
			s.log.Warn("listening beyond loopback with the self-signed certificate: clients cannot verify it; set smtp.tls_cert and smtp.tls_key (or --tls-cert, --tls-key)",
				"addr", addr, "cert", s.cfg.TLSDir())
		}
	}
	cfg.Certificates = []tls.Certificate{cert}
	return cfg, nil
}

// ReloadCertificates re-reads the listeners' certificate files now (for
// SIGHUP); with the self-signed certificate it does nothing.
func (s *Server) ReloadCertificates() error {
	if s.certs == nil {
		return nil
	}
	return s.certs.Reload()
}

// loopbackListen reports whether a listen address only accepts
// connections from this machine.
func loopbackListen(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// deliveryRoots are the CAs that verify MX hosts, MTA-STS policy servers
// and TLS report servers: the system's plus tls_ca_file.
func deliveryRoots(file string) (*x509.CertPool, error) {
	if file == "" {
		return nil, nil // nil: crypto/x509 uses the system pool
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("delivery.tls_ca_file: %w", err)
	}
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("delivery.tls_ca_file %s: no PEM certificate in it", file)
	}
	return pool, nil
}

// deliveryTLS builds delivery's TLS policy: configured policies, DANE
// with a trusted validating resolver, MTA-STS with its cache in the data
// directory, and the TLS report service when enabled.
func (s *Server) deliveryTLS(res *delivery.Resolver) (delivery.TLSConfig, error) {
	cfg := &s.cfg
	roots, err := deliveryRoots(cfg.Delivery.TLSCAFile)
	if err != nil {
		return delivery.TLSConfig{}, err
	}
	tc := delivery.TLSConfig{Policies: cfg.TLSPolicyMap(), DANE: cfg.Delivery.DNSSEC, Roots: roots}
	if cfg.Delivery.DNSSEC {
		res.EnableDNSSEC(delivery.TrustedResolver(cfg.Delivery.DNSSECTrustedResolvers))
		if !res.DNSSECTrusted() {
			s.log.Warn("delivery.dnssec is on, but the DNS server is neither on loopback nor in delivery.dnssec_trusted_resolvers: its AD bit is not trusted, so there is no DANE")
		}
	}
	if cfg.Delivery.MTASTS {
		tc.MTASTS = mtasts.NewManager(mtasts.Options{Fetcher: &mtasts.Fetcher{Resolver: res, Roots: roots},
			CacheFile: cfg.MTASTSCache(), Log: s.log.With("part", "mta-sts")})
	}
	if cfg.TLSRPT.Enabled {
		svc, err := tlsrpt.New(tlsrpt.Config{Dir: cfg.TLSRPTDir(), Submitter: cfg.Hostname, Organization: cfg.TLSRPT.Organization,
			Contact: cfg.TLSRPT.Contact, Resolver: res, SendMail: s.sendReport, Roots: roots, AllowPrivate: cfg.TLSRPT.AllowPrivate,
			Log: s.log.With("part", "tlsrpt")})
		if err != nil {
			return delivery.TLSConfig{}, err
		}
		s.tlsrpt = svc
		tc.Reports = svc
	}
	return tc, nil
}

// sendReport queues a TLS report mail from the null sender through the
// accept pipeline, as the default tenant.
func (s *Server) sendReport(ctx context.Context, rcpt string, msg []byte) error {
	def, err := s.tenants.Resolve(ctx, tenant.DefaultTenant)
	if err != nil {
		return err
	}
	_, err = s.pipe.Accept(ctx, &accept.Submission{TenantID: def.ID, Source: "tlsrpt", Protocol: "local",
		Sender: "", Recipients: []string{rcpt}, Body: msg, Lane: store.LaneLow, LaneFixed: true})
	return err
}
