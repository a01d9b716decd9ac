package delivery

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/classify"
	"github.com/posthorn/posthorn/internal/delivery/tlsrpt"
	"github.com/posthorn/posthorn/internal/testkit"
)

const stsEnforce = "version: STSv1\r\nmode: enforce\r\nmx: mx.good.test\r\nmx: *.wild.test\r\nmax_age: 86400\r\n"

// TestMTASTSEnforce delivers under an enforce-mode policy: to a listed MX
// with a valid certificate it goes over verified TLS; an unlisted MX, a
// certificate not valid for the MX name and an MX without STARTTLS are
// each a tls_policy failure (a deferral), saying why.
func TestMTASTSEnforce(t *testing.T) {
	domains := []string{"good.test", "unlisted.test", "badcert.test", "plain.test", "wild.test"}
	e := newTLSEnv(t, domains...)
	mxs := testkit.StartMXGroup(t, testkit.Script{}, "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5")
	mxs[0].SetScript(testkit.Script{StartTLS: true, TLSCert: e.cert("mx.good.test", "mx.unlisted.test", "a.wild.test")})
	mxs[1].SetScript(testkit.Script{StartTLS: true, TLSCert: e.cert("someone-else.test")}) // valid chain, wrong name
	mxs[2].SetScript(testkit.Script{})                                                     // no STARTTLS
	for _, d := range domains {
		e.setSTS(d, "1", strings.ReplaceAll(stsEnforce, "mx.good.test", "mx."+d))
	}
	e.setSTS("unlisted.test", "1", stsEnforce) // lists mx.good.test only
	e.dns.SetMX("good.test", testkit.MX{Pref: 10, Host: "mx.good.test"})
	e.dns.SetA("mx.good.test", "127.0.0.2")
	e.dns.SetMX("unlisted.test", testkit.MX{Pref: 10, Host: "mx.unlisted.test"})
	e.dns.SetA("mx.unlisted.test", "127.0.0.2") // the certificate is fine; the policy does not list it
	e.dns.SetMX("badcert.test", testkit.MX{Pref: 10, Host: "mx.badcert.test"})
	e.dns.SetA("mx.badcert.test", "127.0.0.3")
	e.dns.SetMX("plain.test", testkit.MX{Pref: 10, Host: "mx.plain.test"})
	e.dns.SetA("mx.plain.test", "127.0.0.4")
	e.dns.SetMX("wild.test", testkit.MX{Pref: 10, Host: "a.wild.test"})
	e.dns.SetA("a.wild.test", "127.0.0.2")

	d := New(Config{Hostname: "out.example.test", Port: mxs[0].Port(), ConnectTimeout: 5 * time.Second, CommandTimeout: 5 * time.Second,
		TLS: TLSConfig{MTASTS: e.manager("", nil), Roots: e.ca.Pool, Reports: e.reports}}, e.res)
	ctx := context.Background()

	for _, dom := range []string{"good.test", "wild.test"} {
		c, f := d.Dial(ctx, dom)
		if f != nil {
			t.Fatalf("%s: enforce policy, listed MX, valid certificate: %v", dom, f)
		}
		if !c.TLS || c.TLSInfo.Policy != "mta-sts enforce" || c.TLSInfo.Result != "pkix ok" || c.TLSInfo.Version == "" || c.TLSInfo.Cipher == "" {
			t.Fatalf("%s: TLS info %+v", dom, c.TLSInfo)
		}
		res := c.Send(Message{Sender: "a@out.example.test", Body: []byte("Subject: x\r\n\r\nhi\r\n")}, []string{"b@" + dom})
		if res[0].Reply.Code != 250 {
			t.Fatalf("%s: send: %+v", dom, res[0])
		}
		c.Close()
	}
	if m := mxs[0].Messages(); len(m) != 2 || !m[0].TLS {
		t.Fatalf("messages at the listed MX: %+v", m)
	}

	for dom, want := range map[string]string{
		"unlisted.test": "is not in the MTA-STS policy of unlisted.test",
		"badcert.test":  "certificate of mx.badcert.test is not acceptable",
		"plain.test":    "mx.plain.test does not offer STARTTLS",
	} {
		c, f := d.Dial(ctx, dom)
		if f == nil {
			c.Close()
			t.Fatalf("%s: delivered despite the enforce policy", dom)
		}
		if f.Class != classify.TLSPolicy || f.Permanent || !strings.HasPrefix(f.Err, "tls_policy: ") || !strings.Contains(f.Err, want) {
			t.Fatalf("%s: failure %+v, want tls_policy containing %q", dom, f, want)
		}
		if f.TLS.Policy != "mta-sts enforce" {
			t.Fatalf("%s: failure TLS info %+v", dom, f.TLS)
		}
	}
	if n := len(mxs[1].Messages()) + len(mxs[2].Messages()); n != 0 {
		t.Fatalf("%d messages reached hosts the policy refuses", n)
	}
	// TLS-RPT saw two successes and three failures of the right types.
	got := map[string]int{}
	for _, s := range e.reports.list() {
		if s.Type != tlsrpt.STS {
			t.Fatalf("session under policy type %q", s.Type)
		}
		if s.Success {
			got["ok "+s.Domain]++
		} else {
			got[s.ResultType+" "+s.Domain]++
		}
	}
	want := map[string]int{"ok good.test": 1, "ok wild.test": 1, "validation-failure unlisted.test": 1,
		"certificate-host-mismatch badcert.test": 1, "starttls-not-supported plain.test": 1}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("TLS-RPT sessions %v, want %v", got, want)
			break
		}
	}
}

// TestMTASTSTesting: a testing-mode policy reports failures and delivers
// anyway; the attempt's TLS result says what failed.
func TestMTASTSTesting(t *testing.T) {
	e := newTLSEnv(t, "testing.test")
	m := e.mx("testing.test", "mx.testing.test", "127.0.0.2", 0, testkit.Script{StartTLS: true, TLSCert: e.cert("wrong-name.test")})
	e.setSTS("testing.test", "1", "version: STSv1\nmode: testing\nmx: mx.testing.test\nmax_age: 600\n")
	d := New(Config{Hostname: "out.example.test", Port: m.Port(), ConnectTimeout: 5 * time.Second, CommandTimeout: 5 * time.Second,
		TLS: TLSConfig{MTASTS: e.manager("", nil), Roots: e.ca.Pool, Reports: e.reports}}, e.res)
	c, f := d.Dial(context.Background(), "testing.test")
	if f != nil {
		t.Fatalf("testing mode refused delivery: %v", f)
	}
	defer c.Close()
	if !c.TLS || c.TLSInfo.Policy != "mta-sts testing" || !strings.HasPrefix(c.TLSInfo.Result, "failed (not enforced): ") {
		t.Fatalf("TLS info %+v", c.TLSInfo)
	}
	if res := c.Send(Message{Sender: "a@out.example.test", Body: []byte("Subject: x\r\n\r\nhi\r\n")}, []string{"b@testing.test"}); res[0].Reply.Code != 250 {
		t.Fatalf("send: %+v", res[0])
	}
	s := e.reports.list()
	if len(s) != 1 || s[0].Success || s[0].ResultType != tlsrpt.CertificateHostMismatch || s[0].ReceivingMX != "mx.testing.test" ||
		s[0].ReceivingIP != "127.0.0.2" || s[0].SendingIP == "" || len(s[0].MXHosts) != 1 {
		t.Fatalf("TLS-RPT sessions: %+v", s)
	}
}

// TestMTASTSCache: a policy is fetched once and used from the cache until
// its max_age runs out or the TXT id changes; the cache survives a restart
// (a new manager on the same file).
func TestMTASTSCache(t *testing.T) {
	e := newTLSEnv(t, "cache.test")
	e.setSTS("cache.test", "a1", "version: STSv1\nmode: enforce\nmx: mx.cache.test\nmax_age: 3600\n")
	file := filepath.Join(t.TempDir(), "mta-sts.json")
	clk := &clock{t: time.Now()}
	mgr := e.manager(file, clk.now)
	ctx := context.Background()
	check := func(step string, wantFetches int32, wantMX string) {
		t.Helper()
		l := mgr.Policy(ctx, "cache.test")
		if l.Policy == nil || l.Policy.MX[0] != wantMX {
			t.Fatalf("%s: policy %+v (fetch error %v)", step, l.Policy, l.FetchErr)
		}
		if n := e.fetches.Load(); n != wantFetches {
			t.Fatalf("%s: %d fetches, want %d", step, n, wantFetches)
		}
	}
	check("first use", 1, "mx.cache.test")
	check("again", 1, "mx.cache.test")
	clk.add(29 * time.Minute)
	check("younger than half its max_age", 1, "mx.cache.test")

	// A new id: fetched again at once.
	e.setSTS("cache.test", "a2", "version: STSv1\nmode: enforce\nmx: mx2.cache.test\nmax_age: 3600\n")
	check("new id", 2, "mx2.cache.test")

	// A restart keeps the cached policy.
	mgr = e.manager(file, clk.now)
	check("after restart", 2, "mx2.cache.test")

	// Older than half its max_age: fetched again, though the id is the
	// same, so that it is renewed before it expires.
	clk.add(31 * time.Minute)
	check("refreshed", 3, "mx2.cache.test")
	check("refreshed, again", 3, "mx2.cache.test")

	// The policy server fails: the cached policy still holds until it expires.
	e.mu.Lock()
	delete(e.policy, "mta-sts.cache.test")
	e.mu.Unlock()
	e.setSTS("cache.test", "a3", "")
	e.mu.Lock()
	delete(e.policy, "mta-sts.cache.test")
	e.mu.Unlock()
	l := mgr.Policy(ctx, "cache.test")
	if l.Policy == nil || l.FetchErr == nil || !strings.Contains(l.FetchErr.Error(), "404") {
		t.Fatalf("fetch failure with a cached policy: %+v", l)
	}
	clk.add(2 * time.Hour)
	if l := mgr.Policy(ctx, "cache.test"); l.Policy != nil || l.FetchErr == nil {
		t.Fatalf("expired cache and failing fetch: %+v, want no policy and the error", l)
	}
}
