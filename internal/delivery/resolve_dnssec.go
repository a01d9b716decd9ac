package delivery

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"

	"github.com/miekg/dns"

	"github.com/posthorn/posthorn/internal/delivery/dane"
)

// EnableDNSSEC makes the resolver ask with the DO bit and believe the AD
// bit ("these records were validated") only when every server it uses
// passes trusted. posthorn does not validate signatures itself: it trusts
// a validating resolver, and only one it can trust to have answered
// unforged (on loopback, or listed by the operator; see TrustedResolver).
// Call it before the resolver is used.
func (r *Resolver) EnableDNSSEC(trusted func(server string) bool) {
	r.dnssec = true
	r.adTrusted = len(r.servers) > 0
	for _, s := range r.servers {
		if !trusted(s) {
			r.adTrusted = false
		}
	}
}

// DNSSECTrusted reports whether AD bits are believed (EnableDNSSEC with
// trusted servers).
func (r *Resolver) DNSSECTrusted() bool { return r.dnssec && r.adTrusted }

// TrustedResolver returns the trust rule of EnableDNSSEC for a config:
// a server on loopback, or one whose address is in listed.
func TrustedResolver(listed []string) func(server string) bool {
	return func(server string) bool {
		host, _, err := net.SplitHostPort(server)
		if err != nil {
			host = server
		}
		a, err := netip.ParseAddr(host)
		if err != nil {
			return false
		}
		if a.Unmap().IsLoopback() {
			return true
		}
		for _, l := range listed {
			if la, err := netip.ParseAddr(strings.TrimSpace(l)); err == nil && la.Unmap() == a.Unmap() {
				return true
			}
		}
		return false
	}
}

// secure reports whether resp may be taken as DNSSEC-validated.
func (r *Resolver) secure(resp *dns.Msg) bool {
	return resp != nil && r.dnssec && r.adTrusted && resp.AuthenticatedData
}

// MXSecure reports whether domain's MX answer (from the cache, normally:
// LookupMX asked first) was DNSSEC-validated.
func (r *Resolver) MXSecure(ctx context.Context, domain string) bool {
	if !r.DNSSECTrusted() {
		return false
	}
	resp, _ := r.query(ctx, domain, dns.TypeMX)
	return r.secure(resp)
}

// LookupTXT returns the TXT records of name, each with its strings
// joined. A name without TXT records (NXDOMAIN, NODATA) has none and no
// error; a failed lookup is an error.
func (r *Resolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	resp, err := r.query(ctx, name, dns.TypeTXT)
	if err != nil {
		var de *DNSError
		if errors.As(err, &de) && de.Permanent {
			return nil, nil
		}
		return nil, err
	}
	var out []string
	for _, rr := range resp.Answer {
		if t, ok := rr.(*dns.TXT); ok {
			out = append(out, strings.Join(t.Txt, ""))
		}
	}
	return out, nil
}

// LookupTLSA returns the TLSA records of name (e.g. "_25._tcp.mx.example.com")
// and whether the answer, or the denial that there are none, is
// DNSSEC-validated by a trusted resolver. A failed lookup is an error.
func (r *Resolver) LookupTLSA(ctx context.Context, name string) ([]dane.Record, bool, error) {
	resp, err := r.query(ctx, name, dns.TypeTLSA)
	if err != nil {
		var de *DNSError
		if errors.As(err, &de) && de.Permanent {
			return nil, r.secure(resp), nil // NXDOMAIN
		}
		return nil, false, err
	}
	var out []dane.Record
	for _, rr := range resp.Answer {
		if t, ok := rr.(*dns.TLSA); ok {
			rec, err := dane.ParseRecord(t.Usage, t.Selector, t.MatchingType, t.Certificate)
			if err != nil {
				continue // malformed: unusable
			}
			out = append(out, rec)
		}
	}
	return out, r.secure(resp), nil
}
