package testkit

import (
	"fmt"
	"net"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func query(t *testing.T, d *DNS, proto, name string, qtype uint16) *dns.Msg {
	t.Helper()
	r, err := exchange(d, proto, name, qtype, 2*time.Second)
	if err != nil {
		t.Fatalf("%s %s %s: %v", proto, name, dns.TypeToString[qtype], err)
	}
	return r
}

func exchange(d *DNS, proto, name string, qtype uint16, timeout time.Duration) (*dns.Msg, error) {
	c := &dns.Client{Net: proto, Timeout: timeout}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	r, _, err := c.Exchange(m, d.Addr())
	return r, err
}

func TestDNSMXAndAddresses(t *testing.T) {
	d := StartDNS(t)
	d.SetMX("Example.TEST.", MX{Pref: 20, Host: "MX2.example.test"}, MX{Pref: 10, Host: "mx1.example.test."})
	d.SetA("mx1.example.test", "127.0.0.2", "::1", "127.0.0.3")

	for _, proto := range []string{"udp", "tcp"} {
		r := query(t, d, proto, "example.test", dns.TypeMX)
		if r.Rcode != dns.RcodeSuccess || !r.Authoritative {
			t.Fatalf("%s: rcode %s aa=%v", proto, dns.RcodeToString[r.Rcode], r.Authoritative)
		}
		var got []string
		for _, rr := range r.Answer {
			mx := rr.(*dns.MX)
			got = append(got, fmt.Sprintf("%d %s %d", mx.Preference, mx.Mx, mx.Hdr.Ttl))
		}
		sort.Strings(got)
		want := []string{"10 mx1.example.test. 60", "20 mx2.example.test. 60"}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s MX = %v, want %v", proto, got, want)
		}

		r = query(t, d, proto, "MX1.example.test.", dns.TypeA)
		var ips []string
		for _, rr := range r.Answer {
			ips = append(ips, rr.(*dns.A).A.String())
		}
		if fmt.Sprint(ips) != "[127.0.0.2 127.0.0.3]" {
			t.Errorf("%s A = %v", proto, ips)
		}
		r = query(t, d, proto, "mx1.example.test", dns.TypeAAAA)
		if len(r.Answer) != 1 || !r.Answer[0].(*dns.AAAA).AAAA.Equal(net.ParseIP("::1")) {
			t.Errorf("%s AAAA = %v", proto, r.Answer)
		}
	}
	if n := d.Queries("example.test", dns.TypeMX); n != 2 {
		t.Errorf("MX queries = %d, want 2", n)
	}
	if n := d.Queries("mx1.example.test.", 0); n != 4 {
		t.Errorf("all queries for mx1 = %d, want 4", n)
	}
	d.ResetQueries()
	if n := d.Queries("example.test", dns.TypeMX); n != 0 {
		t.Errorf("after reset: %d", n)
	}
}

func TestDNSNegativeAnswers(t *testing.T) {
	d := StartDNS(t)
	d.SetA("nomx.test", "127.0.0.9")
	d.SetMX("noaddr.test")

	r := query(t, d, "udp", "unknown.test", dns.TypeMX)
	if r.Rcode != dns.RcodeNameError || len(r.Answer) != 0 {
		t.Errorf("unknown: rcode %s answers %d", dns.RcodeToString[r.Rcode], len(r.Answer))
	}
	if len(r.Ns) != 1 || r.Ns[0].Header().Rrtype != dns.TypeSOA {
		t.Errorf("NXDOMAIN without SOA: %v", r.Ns)
	}
	for _, c := range []struct {
		name  string
		qtype uint16
	}{{"nomx.test", dns.TypeMX}, {"nomx.test", dns.TypeAAAA}, {"noaddr.test", dns.TypeA}, {"noaddr.test", dns.TypeMX}} {
		r := query(t, d, "udp", c.name, c.qtype)
		if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 0 || len(r.Ns) != 1 {
			t.Errorf("%s %s: want NODATA, got rcode %s answers %v ns %v", c.name, dns.TypeToString[c.qtype], dns.RcodeToString[r.Rcode], r.Answer, r.Ns)
		}
	}

	d.SetRcode("nomx.test", dns.TypeMX, dns.RcodeServerFailure)
	if r := query(t, d, "tcp", "nomx.test", dns.TypeMX); r.Rcode != dns.RcodeServerFailure || len(r.Answer) != 0 {
		t.Errorf("forced SERVFAIL: got %s", dns.RcodeToString[r.Rcode])
	}
	if r := query(t, d, "udp", "nomx.test", dns.TypeA); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		t.Errorf("A must be unaffected by an MX rcode: %s %v", dns.RcodeToString[r.Rcode], r.Answer)
	}
	d.SetRcode("nomx.test", 0, dns.RcodeNameError)
	if r := query(t, d, "udp", "nomx.test", dns.TypeA); r.Rcode != dns.RcodeNameError {
		t.Errorf("forced NXDOMAIN for all types: got %s", dns.RcodeToString[r.Rcode])
	}
	d.SetRcode("nomx.test", 0, dns.RcodeSuccess)
	d.SetRcode("nomx.test", dns.TypeMX, dns.RcodeSuccess)
	if r := query(t, d, "udp", "nomx.test", dns.TypeMX); r.Rcode != dns.RcodeSuccess {
		t.Errorf("rcode override not removed: %s", dns.RcodeToString[r.Rcode])
	}

	d.Remove("NOMX.test.")
	if r := query(t, d, "udp", "nomx.test", dns.TypeA); r.Rcode != dns.RcodeNameError {
		t.Errorf("removed name: got %s", dns.RcodeToString[r.Rcode])
	}
}

func TestDNSNullMXTXTCNAME(t *testing.T) {
	d := StartDNS(t)
	d.SetMX("null.test", MX{Pref: 0, Host: "."})
	d.SetTXT("null.test", "v=spf1 -all", string(make([]byte, 300)))
	d.SetCNAME("alias.test", "target.test")
	d.SetA("target.test", "127.0.0.7")

	r := query(t, d, "udp", "null.test", dns.TypeMX)
	if len(r.Answer) != 1 {
		t.Fatalf("null MX answers: %v", r.Answer)
	}
	if mx := r.Answer[0].(*dns.MX); mx.Preference != 0 || mx.Mx != "." {
		t.Errorf("null MX = %v", mx)
	}
	r = query(t, d, "tcp", "null.test", dns.TypeTXT)
	if len(r.Answer) != 2 || r.Answer[0].(*dns.TXT).Txt[0] != "v=spf1 -all" || len(r.Answer[1].(*dns.TXT).Txt) != 2 {
		t.Errorf("TXT = %v", r.Answer)
	}
	r = query(t, d, "udp", "alias.test", dns.TypeA)
	if len(r.Answer) != 2 || r.Answer[0].(*dns.CNAME).Target != "target.test." || r.Answer[1].(*dns.A).A.String() != "127.0.0.7" {
		t.Errorf("CNAME chase = %v", r.Answer)
	}
}

func TestDNSTTLAndTruncation(t *testing.T) {
	d := StartDNS(t)
	d.SetTTL(0)
	var ips []string
	for i := 1; i <= 60; i++ {
		ips = append(ips, fmt.Sprintf("127.0.1.%d", i))
	}
	d.SetA("many.test", ips...)
	r := query(t, d, "udp", "many.test", dns.TypeA)
	if !r.Truncated {
		t.Errorf("60 A records over plain UDP should be truncated (%d answers)", len(r.Answer))
	}
	r = query(t, d, "tcp", "many.test", dns.TypeA)
	if r.Truncated || len(r.Answer) != 60 || r.Answer[0].Header().Ttl != 0 {
		t.Errorf("TCP: truncated=%v answers=%d", r.Truncated, len(r.Answer))
	}
}

func TestDNSDelayAndClose(t *testing.T) {
	d, err := NewDNS("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d.SetA("slow.test", "127.0.0.2")
	d.SetDelay("slow.test", 300*time.Millisecond)
	if _, err := exchange(d, "udp", "slow.test", dns.TypeA, 100*time.Millisecond); err == nil {
		t.Error("expected a timeout from a delayed name")
	}
	start := time.Now()
	r, err := exchange(d, "udp", "slow.test", dns.TypeA, 2*time.Second)
	if err != nil || len(r.Answer) != 1 || time.Since(start) < 250*time.Millisecond {
		t.Errorf("delayed answer: %v %v after %v", r, err, time.Since(start))
	}
	d.SetDelay("slow.test", 0)
	start = time.Now()
	if _, err := exchange(d, "udp", "slow.test", dns.TypeA, 2*time.Second); err != nil || time.Since(start) > 200*time.Millisecond {
		t.Errorf("delay not removed: %v after %v", err, time.Since(start))
	}

	d.SetDelay("slow.test", time.Hour)
	// Close while a delayed TCP query is being held: wait until the
	// server counted it (it counts before the delay).
	held := d.Queries("slow.test", dns.TypeA) + 1
	go func() { _, _ = exchange(d, "tcp", "slow.test", dns.TypeA, 5*time.Second) }()
	for deadline := time.Now().Add(5 * time.Second); d.Queries("slow.test", dns.TypeA) < held; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the delayed TCP query never reached the server")
		}
	}
	start = time.Now()
	d.Close()
	d.Close()
	if time.Since(start) > 3*time.Second {
		t.Errorf("Close waited for the delayed answer: %v", time.Since(start))
	}
	if _, err := exchange(d, "tcp", "slow.test", dns.TypeA, 500*time.Millisecond); err == nil {
		t.Error("server still answering after Close")
	}
}

func TestDNSFixedAddrAndConcurrency(t *testing.T) {
	d := StartDNS(t)
	_, port, _ := net.SplitHostPort(d.Addr())
	if _, err := NewDNS("127.0.0.1:" + port); err == nil {
		t.Error("second server on a used port should fail")
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			name := fmt.Sprintf("h%d.test", i)
			for j := range 20 {
				d.SetA(name, fmt.Sprintf("127.0.0.%d", j+1))
				r, err := exchange(d, "udp", name, dns.TypeA, 2*time.Second)
				if err != nil || len(r.Answer) != 1 {
					t.Errorf("%s: %v %v", name, err, r)
					return
				}
			}
		})
	}
	wg.Wait()
	if n := d.Queries("h3.test", dns.TypeA); n != 20 {
		t.Errorf("queries = %d, want 20", n)
	}
}
