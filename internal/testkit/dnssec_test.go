package testkit

import (
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestDNSTLSAAndAD: TLSA records are served, and the AD bit is set only
// with SetAD, only for a client asking with DO (or AD), and never for a
// name marked insecure.
func TestDNSTLSAAndAD(t *testing.T) {
	d := StartDNS(t)
	ca, err := NewCA()
	if err != nil {
		t.Fatal(err)
	}
	rec := TLSAFor(ca.Cert, 2, 0, 1)
	d.SetTLSA("_25._tcp.mx.example.test", rec)
	d.SetMX("example.test", MX{Pref: 10, Host: "mx.example.test"})
	ask := func(name string, qtype uint16, do bool) *dns.Msg {
		t.Helper()
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(name), qtype)
		m.SetEdns0(1232, do)
		r, _, err := (&dns.Client{Timeout: 2 * time.Second}).Exchange(m, d.Addr())
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	r := ask("_25._tcp.mx.example.test", dns.TypeTLSA, true)
	if len(r.Answer) != 1 || r.AuthenticatedData {
		t.Fatalf("TLSA before SetAD: %v", r)
	}
	got := r.Answer[0].(*dns.TLSA)
	if got.Usage != 2 || got.Selector != 0 || got.MatchingType != 1 || got.Certificate != rec.Data {
		t.Fatalf("TLSA record %v, want %+v", got, rec)
	}
	d.SetAD(true)
	if r := ask("_25._tcp.mx.example.test", dns.TypeTLSA, true); !r.AuthenticatedData {
		t.Fatal("no AD bit with SetAD and DO")
	}
	if r := ask("_25._tcp.mx.example.test", dns.TypeTLSA, false); r.AuthenticatedData {
		t.Fatal("AD bit for a client that did not ask with DO")
	}
	if r := ask("_25._tcp.other.example.test", dns.TypeTLSA, true); r.Rcode != dns.RcodeNameError || !r.AuthenticatedData {
		t.Fatalf("authenticated denial: rcode %s ad %v", dns.RcodeToString[r.Rcode], r.AuthenticatedData)
	}
	d.SetInsecure("example.test", true)
	if r := ask("example.test", dns.TypeMX, true); r.AuthenticatedData {
		t.Fatal("AD bit for a name marked insecure")
	}
}
