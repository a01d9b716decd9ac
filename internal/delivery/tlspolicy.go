package delivery

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/posthorn/posthorn/internal/classify"
	"github.com/posthorn/posthorn/internal/delivery/dane"
	"github.com/posthorn/posthorn/internal/delivery/mtasts"
	"github.com/posthorn/posthorn/internal/delivery/tlsrpt"
)

// TLS policy when delivering (see docs/tls.md).
//
// Every MX host gets one policy, decided in this order:
//  1. A configured policy for the recipient domain (or its provider, or
//     "*"): none, may, encrypt, verify; or dane / mta-sts, which narrow
//     the automatic choice below to that one mechanism.
//  2. DANE (RFC 7672), with DNSSEC enabled and a trusted resolver: when
//     the domain's MX answer and the host's TLSA answer are validated
//     and the host has TLSA records, TLS is mandatory and the certificate
//     must match them. DANE comes before MTA-STS (RFC 8461 §2).
//  3. MTA-STS (RFC 8461): in enforce mode only the policy's MX hosts are
//     used, over TLS with a certificate valid for the MX name; in testing
//     mode failures are reported (TLS-RPT, the attempt's TLS result) and
//     the mail goes anyway.
//  4. Otherwise "may": STARTTLS when offered, certificate not required to
//     verify, cleartext once when the handshake fails.
//
// A mandatory policy that is not met fails the attempt with class
// tls_policy (a deferral) and an error text starting "tls_policy:".

// TLS policy levels.
const (
	PolicyNone    = "none"
	PolicyMay     = "may"
	PolicyEncrypt = "encrypt"
	PolicyVerify  = "verify"
	PolicyDANE    = "dane"
	PolicyMTASTS  = "mta-sts"
)

// TLSConfig is delivery's TLS policy configuration.
type TLSConfig struct {
	// Policies maps a recipient domain, "provider:NAME" or "*" to one of
	// the Policy levels; a missing entry is the automatic choice.
	Policies map[string]string
	// DANE uses TLSA records (needs Resolver.EnableDNSSEC with a trusted
	// resolver).
	DANE bool
	// MTASTS looks up and applies MTA-STS policies; nil: off.
	MTASTS *mtasts.Manager
	// Roots verify MX certificates (verify, MTA-STS); nil: the system's.
	Roots *x509.CertPool
	// Reports gets each session's outcome under a policy (TLS-RPT); nil: off.
	Reports tlsrpt.Recorder
	// Now is the clock for certificate checks; nil: time.Now.
	Now func() time.Time
}

// TLSInfo is what an attempt's TLS session was, for the attempt record.
type TLSInfo struct {
	Version string // "TLS 1.3"
	Cipher  string
	Policy  string // the policy applied to the host: "may", "mta-sts enforce", "dane", "verify", ...
	Result  string // the certificate check: "pkix ok", "dane-ee 3 1 1", "not verified: ...", "failed: ..."
}

// hostPolicy is the policy for one MX host.
type hostPolicy struct {
	level   string   // none, may, encrypt, verify, dane
	enforce bool     // a failure fails the attempt; false: report only (MTA-STS testing)
	name    string   // shown in TLSInfo.Policy and errors
	names   []string // reference names for verify and DANE-TA
	tlsa    []dane.Record
	report  *tlsrpt.Session // template for TLS-RPT; nil: no report
}

func (h hostPolicy) required() bool {
	return h.enforce && (h.level == PolicyEncrypt || h.level == PolicyVerify || h.level == PolicyDANE)
}

// domainPlan is what is known of a recipient domain before its hosts are
// tried.
type domainPlan struct {
	domain string
	mode   string // configured policy; "" automatic
	dane   bool   // DANE may apply (enabled, trusted resolver, MX answer secure)
	sts    mtasts.Lookup
}

// configuredPolicy is the tls_policy entry for domain: its own, its
// provider's, or "*".
func (d *Deliverer) configuredPolicy(domain string) string {
	pm := d.cfg.TLS.Policies
	if pm == nil {
		return ""
	}
	if p, ok := pm[domain]; ok {
		return p
	}
	if prov := d.prov.lookup(domain); prov != "" {
		if p, ok := pm["provider:"+prov]; ok {
			return p
		}
	}
	return pm["*"]
}

func (d *Deliverer) planTLS(ctx context.Context, domain string) *domainPlan {
	p := &domainPlan{domain: domain, mode: d.configuredPolicy(domain)}
	switch p.mode {
	case PolicyNone, PolicyMay, PolicyEncrypt, PolicyVerify:
		return p
	}
	if p.mode != PolicyMTASTS && d.cfg.TLS.DANE && d.res.DNSSECTrusted() {
		p.dane = d.res.MXSecure(ctx, domain)
	}
	if p.mode != PolicyDANE && d.cfg.TLS.MTASTS != nil {
		p.sts = d.cfg.TLS.MTASTS.Policy(ctx, domain)
		if p.sts.FetchErr != nil && p.sts.Policy == nil {
			d.report(&tlsrpt.Session{Domain: domain, Type: tlsrpt.STS}, false, tlsrpt.STSPolicyFetchError, "", "", "", p.sts.FetchErr.Error())
		}
	}
	return p
}

// stsActive is the MTA-STS policy that applies, if any.
func (p *domainPlan) stsActive() *mtasts.Policy {
	if p.sts.Policy != nil && p.sts.Policy.Mode != mtasts.None {
		return p.sts.Policy
	}
	return nil
}

// forHost decides host's policy. A non-nil Failure means the host must
// not be used (an MTA-STS enforce policy does not list it, or its TLSA
// records cannot be looked up).
func (d *Deliverer) forHost(ctx context.Context, p *domainPlan, host string) (hostPolicy, *Failure) {
	switch p.mode {
	case PolicyNone:
		return hostPolicy{level: PolicyNone, name: "none (configured)"}, nil
	case PolicyMay:
		return hostPolicy{level: PolicyMay, name: "may (configured)"}, nil
	case PolicyEncrypt:
		return hostPolicy{level: PolicyEncrypt, enforce: true, name: "encrypt (configured)"}, nil
	case PolicyVerify:
		return hostPolicy{level: PolicyVerify, enforce: true, name: "verify (configured)", names: []string{host}}, nil
	}
	if p.dane {
		recs, secure, err := d.res.LookupTLSA(ctx, "_25._tcp."+host)
		if err != nil {
			// A validated zone whose TLSA lookup fails may be hiding
			// records: the host cannot be used safely (RFC 7672 §2.2).
			return hostPolicy{}, &Failure{Class: classify.TLSPolicy, Phase: "dns", MX: host,
				Err: fmt.Sprintf("tls_policy: DANE: TLSA lookup for %s failed: %v", host, err), TLS: TLSInfo{Policy: "dane"}}
		}
		if secure && len(recs) > 0 {
			rep := &tlsrpt.Session{Domain: p.domain, Type: tlsrpt.TLSA}
			for _, r := range recs {
				rep.Policy = append(rep.Policy, r.String())
			}
			if len(dane.Usable(recs)) == 0 {
				// Only unusable records: TLS is still mandatory, but
				// unauthenticated (RFC 7672 §2.2, §3.1.3).
				return hostPolicy{level: PolicyEncrypt, enforce: true, name: "dane (no usable TLSA record: encrypt)", report: rep}, nil
			}
			return hostPolicy{level: PolicyDANE, enforce: true, name: "dane", names: []string{host}, tlsa: recs, report: rep}, nil
		}
	}
	if sts := p.stsActive(); sts != nil && p.mode != PolicyDANE {
		enforce := sts.Mode == mtasts.Enforce
		rep := &tlsrpt.Session{Domain: p.domain, Type: tlsrpt.STS, Policy: policyLines(sts.Text), MXHosts: sts.MX}
		hp := hostPolicy{level: PolicyVerify, enforce: enforce, name: "mta-sts " + string(sts.Mode), names: []string{host}, report: rep}
		if !sts.Match(host) {
			reason := fmt.Sprintf("MX host %s is not in the MTA-STS policy of %s (mx: %s)", host, p.domain, strings.Join(sts.MX, ", "))
			d.report(rep, false, tlsrpt.ValidationFailure, "", host, "", reason)
			if enforce {
				return hostPolicy{}, &Failure{Class: classify.TLSPolicy, Phase: "connect", MX: host,
					Err: "tls_policy: " + reason + "; mode enforce: not used", TLS: TLSInfo{Policy: hp.name, Result: "mx not in policy"}}
			}
			hp.report = nil // reported once, here; the session is opportunistic
			hp.name += " (mx not in policy)"
		}
		return hp, nil
	}
	return hostPolicy{level: PolicyMay, name: "may"}, nil
}

func policyLines(text string) []string {
	var out []string
	for _, l := range strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// routePolicy is the policy of a relay route: its tls setting.
func routePolicy(rt string, host string) hostPolicy {
	switch rt {
	case "none":
		return hostPolicy{level: PolicyNone, name: "none (route)"}
	case "required", PolicyVerify:
		return hostPolicy{level: PolicyVerify, enforce: true, name: "verify (route)", names: []string{host}}
	case PolicyEncrypt:
		return hostPolicy{level: PolicyEncrypt, enforce: true, name: "encrypt (route)"}
	}
	return hostPolicy{level: PolicyMay, name: "may (route)"}
}

// report records a session for TLS-RPT.
func (d *Deliverer) report(tmpl *tlsrpt.Session, ok bool, resultType, sendingIP, mx, ip, reason string) {
	if d.cfg.TLS.Reports == nil || tmpl == nil {
		return
	}
	s := *tmpl
	s.Success, s.ResultType, s.SendingIP, s.ReceivingMX, s.ReceivingIP, s.Reason = ok, resultType, sendingIP, mx, ip, reason
	s.At = d.now()
	d.cfg.TLS.Reports.Record(s)
}

func (d *Deliverer) now() time.Time {
	if d.cfg.TLS.Now != nil {
		return d.cfg.TLS.Now()
	}
	return time.Now()
}

// certCheck is the outcome of the certificate check in one handshake.
type certCheck struct {
	mu     sync.Mutex
	result string
	err    error
}

// tlsConfig is the client configuration for hp. The certificate is
// always checked (so every attempt records how it went), by
// VerifyConnection rather than crypto/tls, so that DANE, a report-only
// MTA-STS policy and opportunistic TLS can each decide what a failure
// means: only an enforced policy fails the handshake.
func (d *Deliverer) tlsConfig(host string, hp hostPolicy, cc *certCheck) *tls.Config {
	return &tls.Config{
		ServerName:         host,
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			var res string
			var err error
			switch hp.level {
			case PolicyDANE:
				res, err = dane.Verify(cs.PeerCertificates, hp.tlsa, hp.names, d.now())
			default:
				names := hp.names
				if len(names) == 0 {
					names = []string{host}
				}
				err = d.verifyPKIX(cs.PeerCertificates, names)
				res = "pkix ok"
			}
			cc.mu.Lock()
			defer cc.mu.Unlock()
			if err != nil {
				cc.err = err
				switch {
				case hp.enforce && (hp.level == PolicyVerify || hp.level == PolicyDANE):
					cc.result = "failed: " + err.Error()
					return err
				case hp.level == PolicyVerify:
					cc.result = "failed (not enforced): " + err.Error()
				default:
					cc.result = "not verified: " + err.Error()
				}
				return nil
			}
			cc.result = res
			return nil
		},
	}
}

func (d *Deliverer) verifyPKIX(chain []*x509.Certificate, names []string) error {
	if len(chain) == 0 {
		return errors.New("the server sent no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	var first error
	for _, n := range names {
		_, err := chain[0].Verify(x509.VerifyOptions{Roots: d.cfg.TLS.Roots, Intermediates: inter,
			DNSName: strings.TrimSuffix(n, "."), CurrentTime: d.now()})
		if err == nil {
			return nil
		}
		if first == nil {
			first = err
		}
	}
	return first
}

// resultType maps a certificate check failure to a TLS-RPT result type.
func resultType(hp hostPolicy, err error) string {
	if hp.level == PolicyDANE {
		return tlsrpt.TLSAInvalid
	}
	var he x509.HostnameError
	var ce x509.CertificateInvalidError
	var ua x509.UnknownAuthorityError
	switch {
	case errors.As(err, &he):
		return tlsrpt.CertificateHostMismatch
	case errors.As(err, &ce) && ce.Reason == x509.Expired:
		return tlsrpt.CertificateExpired
	case errors.As(err, &ua):
		return tlsrpt.CertificateNotTrusted
	}
	return tlsrpt.ValidationFailure
}
