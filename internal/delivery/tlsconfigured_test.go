package delivery

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/classify"
	"github.com/posthorn/posthorn/internal/testkit"
)

// TestConfiguredPolicies: tls_policy entries override the automatic
// choice: none sends in cleartext though STARTTLS is offered, encrypt
// takes a self-signed certificate but refuses a host without STARTTLS,
// verify refuses a self-signed certificate; a domain's own entry beats its
// provider's, which beats "*".
func TestConfiguredPolicies(t *testing.T) {
	e := newTLSEnv(t)
	mxs := testkit.StartMXGroup(t, testkit.Script{StartTLS: true}, "127.0.0.2", "127.0.0.3")
	mxs[1].SetScript(testkit.Script{}) // no STARTTLS
	for dom, ip := range map[string]string{"none.test": "127.0.0.2", "enc.test": "127.0.0.2", "enc-plain.test": "127.0.0.3",
		"verify.test": "127.0.0.2", "corp.test": "127.0.0.2", "other.test": "127.0.0.2"} {
		e.dns.SetMX(dom, testkit.MX{Pref: 10, Host: "mx." + strings.TrimSuffix(dom, ".test") + ".corp-mx.test"})
		e.dns.SetA("mx."+strings.TrimSuffix(dom, ".test")+".corp-mx.test", ip)
	}
	d := New(Config{Hostname: "out.example.test", Port: mxs[0].Port(), ConnectTimeout: 5 * time.Second, CommandTimeout: 5 * time.Second,
		Providers: []Provider{{Name: "corp", MXSuffixes: []string{".corp-mx.test"}}},
		TLS: TLSConfig{Roots: e.ca.Pool, Policies: map[string]string{"none.test": "none", "enc.test": "encrypt", "enc-plain.test": "encrypt",
			"verify.test": "verify", "provider:corp": "may", "*": "verify"}}}, e.res)
	ctx := context.Background()
	for dom, want := range map[string]struct {
		tls    bool
		policy string
	}{
		"none.test":  {false, "none (configured)"},
		"enc.test":   {true, "encrypt (configured)"},
		"corp.test":  {true, "may (configured)"}, // the provider's entry, not "*"
		"other.test": {true, "may (configured)"},
	} {
		c, f := d.Dial(ctx, dom)
		if f != nil {
			t.Fatalf("%s: %v", dom, f)
		}
		if c.TLS != want.tls || c.TLSInfo.Policy != want.policy {
			t.Errorf("%s: tls %v info %+v, want tls %v policy %q", dom, c.TLS, c.TLSInfo, want.tls, want.policy)
		}
		if c.TLS && !strings.HasPrefix(c.TLSInfo.Result, "not verified: ") {
			t.Errorf("%s: the self-signed certificate's check: %q", dom, c.TLSInfo.Result)
		}
		c.Close()
	}
	for dom, want := range map[string]string{"enc-plain.test": "does not offer STARTTLS", "verify.test": "is not acceptable"} {
		c, f := d.Dial(ctx, dom)
		if f == nil {
			c.Close()
			t.Fatalf("%s: connected despite its policy", dom)
		}
		if f.Class != classify.TLSPolicy || !strings.Contains(f.Err, want) {
			t.Errorf("%s: %+v, want tls_policy with %q", dom, f, want)
		}
	}
	// A required policy and a STARTTLS that is refused or breaks: a
	// tls_policy failure whatever the reply rules would say of the reply.
	refuse := testkit.StartMX(t, "127.0.0.4", mxs[0].Port(), testkit.Script{Ehlo: testkit.Reply{Code: 250, Text: "mx\nSTARTTLS"}})
	broken := testkit.StartMX(t, "127.0.0.5", mxs[0].Port(), testkit.Script{StartTLS: true, BreakTLS: true})
	for dom, ip := range map[string]string{"refuse.test": refuse.IP(), "broken.test": broken.IP()} {
		e.dns.SetMX(dom, testkit.MX{Pref: 10, Host: "mx." + dom})
		e.dns.SetA("mx."+dom, ip)
		d.cfg.TLS.Policies[dom] = "encrypt"
	}
	for dom, want := range map[string]string{"refuse.test": "STARTTLS was answered 502", "broken.test": "the handshake failed"} {
		c, f := d.Dial(ctx, dom)
		if f == nil {
			c.Close()
			t.Fatalf("%s: connected without TLS under encrypt", dom)
		}
		if f.Class != classify.TLSPolicy || f.Reply.Code != 0 || !strings.Contains(f.Err, want) {
			t.Errorf("%s: %+v, want tls_policy without a reply to reclassify, text %q", dom, f, want)
		}
	}
	// "*" applies to a domain of no provider.
	e.dns.SetMX("star.test", testkit.MX{Pref: 10, Host: "mx.star.test"})
	e.dns.SetA("mx.star.test", "127.0.0.2")
	if c, f := d.Dial(ctx, "star.test"); f == nil || f.Class != classify.TLSPolicy {
		if c != nil {
			c.Close()
		}
		t.Errorf("star.test under \"*\" = verify with a self-signed certificate: %+v", f)
	}
}
