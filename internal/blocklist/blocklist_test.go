package blocklist

import (
	"context"
	"encoding/json"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/posthorn/posthorn/internal/config"
	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/store/sqlite"
	"github.com/posthorn/posthorn/internal/testkit"
)

func TestReverseIP(t *testing.T) {
	if got := reverseIP(netip.MustParseAddr("192.0.2.99")); got != "99.2.0.192" {
		t.Errorf("v4: %s", got)
	}
	if got := reverseIP(netip.MustParseAddr("2001:db8::1")); got != "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2" {
		t.Errorf("v6: %s", got)
	}
}

func alerts(t *testing.T, st store.Store, typ string) []AlertDetail {
	t.Helper()
	evs, err := st.Events(context.Background(), store.EventFilter{Type: typ})
	if err != nil {
		t.Fatal(err)
	}
	var out []AlertDetail
	for _, e := range evs {
		var d AlertDetail
		if err := json.Unmarshal([]byte(e.Detail), &d); err != nil {
			t.Fatalf("detail %q: %v", e.Detail, err)
		}
		out = append(out, d)
	}
	return out
}

// TestListingsFireAndResolve: against a fake zen.test zone on the test
// kit's DNS server, a listed IP and a listed domain raise alert_fired
// with the list's meaning, weight and removal page; a second check does
// not fire again; delisting resolves both; a zone that times out and one
// that answers SERVFAIL are unknown and change nothing.
func TestListingsFireAndResolve(t *testing.T) {
	d := testkit.StartDNS(t)
	d.SetTTL(0)
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "posthorn.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	d.SetA("2.0.0.127.zen.test", "127.0.0.4")    // 127.0.0.2: the list's test entry
	d.SetA("spam.example.dbl.test", "127.0.1.2") // a listed domain
	d.SetRcode("2.0.0.127.broken.test", 0, dns.RcodeServerFailure)
	d.SetDelay("2.0.0.127.slow.test", 3*time.Second)
	m, err := New(Config{
		IPZones:     []string{"zen.test", "broken.test", "slow.test"},
		DomainZones: []string{"dbl.test"},
		IPs: func() []netip.Addr {
			return []netip.Addr{netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.3")}
		},
		Domains:   func(context.Context) []string { return []string{"spam.example", "fine.example"} },
		DNSServer: d.Addr(), Timeout: 500 * time.Millisecond, Events: st, StateFile: filepath.Join(t.TempDir(), "blocklists.json"),
		Lists: []config.BlocklistInfo{
			{Zone: "zen.test", Name: "Test ZEN", Weight: 9, RemovalURL: "https://zen.test/remove", Codes: map[string]string{"127.0.0.4": "XBL: exploited host"}},
			{Zone: "dbl.test", Name: "Test DBL", Weight: 10, RemovalURL: "https://dbl.test/remove", Codes: map[string]string{"127.0.1.2": "DBL: spam domain"}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rs, err := m.Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Result{}
	for _, r := range rs {
		got[r.Target+" "+r.Zone] = r
	}
	for k, want := range map[string]string{
		"127.0.0.2 zen.test": Listed, "127.0.0.3 zen.test": Clean, "spam.example dbl.test": Listed, "fine.example dbl.test": Clean,
		"127.0.0.2 broken.test": Unknown, "127.0.0.2 slow.test": Unknown,
	} {
		if got[k].Listed != want {
			t.Errorf("%s: %+v, want listed=%s", k, got[k], want)
		}
	}
	if r := got["127.0.0.2 zen.test"]; r.Code != "127.0.0.4" || r.Meaning != "XBL: exploited host" || r.Weight != 9 {
		t.Errorf("listed IP: %+v", r)
	}
	// A restart (a new monitor on the same state file) does not fire the
	// listings again.
	m, err = New(m.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Check(ctx); err != nil {
		t.Fatal(err)
	}
	fired := alerts(t, st, EventAlertFired)
	if len(fired) != 2 {
		t.Fatalf("fired %+v, want the IP and the domain", fired)
	}
	for _, a := range fired {
		switch a.Target {
		case "127.0.0.2":
			if a.List != "Test ZEN" || a.Meaning != "XBL: exploited host" || a.RemovalURL != "https://zen.test/remove" || a.Weight != 9 {
				t.Errorf("IP alert %+v", a)
			}
		case "spam.example":
			if a.Meaning != "DBL: spam domain" || a.RemovalURL != "https://dbl.test/remove" || a.Kind != "domain" {
				t.Errorf("domain alert %+v", a)
			}
		default:
			t.Errorf("alert for %+v", a)
		}
	}
	// Still listed: no second alert. The zen zone failing now changes nothing.
	d.SetRcode("2.0.0.127.zen.test", 0, dns.RcodeServerFailure)
	if _, err := m.Check(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(alerts(t, st, EventAlertFired)); n != 2 {
		t.Fatalf("%d alerts fired after a repeat check", n)
	}
	if n := len(alerts(t, st, EventAlertResolved)); n != 0 {
		t.Fatalf("an unknown answer resolved %d alerts", n)
	}
	// Delisted: both resolve.
	d.SetRcode("2.0.0.127.zen.test", 0, dns.RcodeSuccess)
	d.Remove("2.0.0.127.zen.test")
	d.Remove("spam.example.dbl.test")
	if _, err := m.Check(ctx); err != nil {
		t.Fatal(err)
	}
	res := alerts(t, st, EventAlertResolved)
	if len(res) != 2 {
		t.Fatalf("resolved %+v", res)
	}
	for _, l := range m.Listings() {
		if l.Listed {
			t.Errorf("still listed: %+v", l)
		}
	}
}

// TestRefusedQueryIsUnknown: Spamhaus answers 127.255.255.254 to queries
// through public resolvers; that is no listing.
func TestRefusedQueryIsUnknown(t *testing.T) {
	d := testkit.StartDNS(t)
	d.SetA("2.0.0.127.zen.spamhaus.org", "127.255.255.254")
	m, err := New(Config{IPZones: []string{"zen.spamhaus.org"}, IPs: func() []netip.Addr { return []netip.Addr{netip.MustParseAddr("127.0.0.2")} },
		DNSServer: d.Addr(), Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := m.Check(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 || rs[0].Listed != Unknown || rs[0].Code != "127.255.255.254" || rs[0].Meaning == "" {
		t.Fatalf("%+v", rs)
	}
}
