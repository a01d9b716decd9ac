package delivery

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/classify"
	"github.com/posthorn/posthorn/internal/testkit"
)

// TestDANE delivers with DNSSEC on, through a resolver on loopback that
// sets the AD bit: a certificate matching the host's TLSA records is
// accepted (DANE-EE whatever its name and dates; DANE-TA with them), one
// that does not match and a host without STARTTLS are tls_policy
// failures; DANE comes before an MTA-STS policy; and the AD bit of a
// resolver that is not trusted, or of an unsigned MX answer, is ignored.
func TestDANE(t *testing.T) {
	e := newTLSEnv(t, "both.test")
	e.dns.SetAD(true)
	mxs := testkit.StartMXGroup(t, testkit.Script{}, "127.0.0.2", "127.0.0.3", "127.0.0.4")
	// An expired certificate for another name: fine for DANE-EE.
	eeCert, err := e.ca.IssueValid(time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour), "not-the-mx.test")
	if err != nil {
		t.Fatal(err)
	}
	mxs[0].SetScript(testkit.Script{StartTLS: true, TLSCert: &eeCert})
	taCert := e.cert("mx.ta.test")
	mxs[1].SetScript(testkit.Script{StartTLS: true, TLSCert: taCert})
	mxs[2].SetScript(testkit.Script{}) // no STARTTLS
	other := e.cert("other.test")

	setMX := func(domain, host, ip string, recs ...testkit.TLSA) {
		e.dns.SetMX(domain, testkit.MX{Pref: 10, Host: host})
		e.dns.SetA(host, ip)
		e.dns.SetTLSA("_25._tcp."+host, recs...)
	}
	setMX("ee.test", "mx.ee.test", "127.0.0.2", testkit.TLSAFor(eeCert.Leaf, 3, 1, 1))
	setMX("ee-full.test", "mx.ee-full.test", "127.0.0.2", testkit.TLSAFor(other.Leaf, 3, 1, 1), testkit.TLSAFor(eeCert.Leaf, 3, 0, 2))
	setMX("ta.test", "mx.ta.test", "127.0.0.3", testkit.TLSAFor(e.ca.Cert, 2, 0, 1))
	setMX("ta-name.test", "mx.ta-name.test", "127.0.0.3", testkit.TLSAFor(e.ca.Cert, 2, 1, 0)) // certificate not for this name
	setMX("mismatch.test", "mx.mismatch.test", "127.0.0.2", testkit.TLSAFor(other.Leaf, 3, 1, 1))
	setMX("plain.test", "mx.plain.test", "127.0.0.4", testkit.TLSAFor(other.Leaf, 3, 1, 1))
	setMX("unusable.test", "mx.unusable.test", "127.0.0.4", testkit.TLSAFor(other.Leaf, 1, 1, 1)) // PKIX-EE only: encrypt
	setMX("insecure.test", "mx.insecure.test", "127.0.0.2", testkit.TLSAFor(other.Leaf, 3, 1, 1))
	e.dns.SetInsecure("insecure.test", true) // the MX answer is not validated: DANE does not apply
	// DANE before MTA-STS: the policy lists another MX, DANE decides.
	setMX("both.test", "mx.both.test", "127.0.0.2", testkit.TLSAFor(eeCert.Leaf, 3, 1, 1))
	e.setSTS("both.test", "1", "version: STSv1\nmode: enforce\nmx: elsewhere.test\nmax_age: 600\n")

	cfg := Config{Hostname: "out.example.test", Port: mxs[0].Port(), ConnectTimeout: 5 * time.Second, CommandTimeout: 5 * time.Second,
		TLS: TLSConfig{DANE: true, MTASTS: e.manager("", nil), Roots: e.ca.Pool, Reports: e.reports}}
	e.res.EnableDNSSEC(TrustedResolver(nil))
	if !e.res.DNSSECTrusted() {
		t.Fatal("a resolver on loopback is not trusted")
	}
	d := New(cfg, e.res)
	ctx := context.Background()
	for dom, want := range map[string]string{"ee.test": "dane-ee 3 1 1", "ee-full.test": "dane-ee 3 0 2", "ta.test": "dane-ta 2 0 1",
		"both.test": "dane-ee 3 1 1", "insecure.test": "not verified: "} {
		c, f := d.Dial(ctx, dom)
		if f != nil {
			t.Fatalf("%s: %v", dom, f)
		}
		if !c.TLS || !strings.HasPrefix(c.TLSInfo.Result, want) {
			t.Errorf("%s: TLS info %+v, want result %q", dom, c.TLSInfo, want)
		}
		if res := c.Send(Message{Sender: "a@out.example.test", Body: []byte("Subject: x\r\n\r\nhi\r\n")}, []string{"b@" + dom}); res[0].Reply.Code != 250 {
			t.Errorf("%s: send %+v", dom, res[0])
		}
		c.Close()
	}
	for dom, want := range map[string]string{
		"mismatch.test": "no TLSA record matches",
		"ta-name.test":  "mx.ta-name.test",
		"plain.test":    "does not offer STARTTLS",
		"unusable.test": "does not offer STARTTLS",
	} {
		c, f := d.Dial(ctx, dom)
		if f == nil {
			c.Close()
			t.Fatalf("%s: delivered despite DANE", dom)
		}
		if f.Class != classify.TLSPolicy || !strings.HasPrefix(f.Err, "tls_policy: dane") || !strings.Contains(f.Err, want) {
			t.Errorf("%s: %+v, want tls_policy with %q", dom, f, want)
		}
	}

	// The same records through a resolver that is not trusted: its AD bit
	// means nothing, so there is no DANE and delivery is opportunistic.
	res2, err := NewResolver(e.dns.Addr())
	if err != nil {
		t.Fatal(err)
	}
	res2.EnableDNSSEC(func(string) bool { return false }) // as if it were not on loopback and not listed
	cfg.TLS.MTASTS = nil
	d2 := New(cfg, res2)
	c, f := d2.Dial(ctx, "mismatch.test")
	if f != nil {
		t.Fatalf("untrusted resolver: %v", f)
	}
	if c.TLSInfo.Policy != "may" {
		t.Errorf("untrusted resolver: policy %q, want may", c.TLSInfo.Policy)
	}
	c.Close()
}

func TestTrustedResolver(t *testing.T) {
	tr := TrustedResolver([]string{"192.0.2.53", " 2001:db8::53"})
	for s, want := range map[string]bool{"127.0.0.1:53": true, "[::1]:53": true, "192.0.2.53:53": true, "[2001:db8::53]:5353": true,
		"192.0.2.54:53": false, "8.8.8.8:53": false, "resolver.example:53": false} {
		if tr(s) != want {
			t.Errorf("%s: trusted %v", s, !want)
		}
	}
}
