package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/testkit"
)

// TestSmarthost relays everything through one host, reusing one
// connection across messages and recipient domains.
func TestSmarthost(t *testing.T) {
	relay := testkit.StartMX(t, "127.0.0.9", 0, testkit.Script{StartTLS: true})
	in := Start(t, Options{Smarthost: relay.Addr()})
	// One after the other: each finds the previous connection idle and
	// reuses it, whatever the recipient domain.
	for i := 0; i < 6; i++ {
		id := in.Send("sender@app.test", []string{fmt.Sprintf("u%d@dom%d.test", i, i%3)}, msgBody("relay"))
		d := in.WaitFinal(id, 20*time.Second)
		if dl := d.Deliveries[0]; dl.State != store.Delivered || dl.LastIP != "127.0.0.9" {
			t.Fatalf("%s: %+v", id, dl)
		}
	}
	if n := len(relay.Messages()); n != 6 {
		t.Fatalf("relay got %d messages, want 6", n)
	}
	if c := relay.Connections(); c > 2 {
		t.Fatalf("%d connections for 6 messages sent one after another: connections are not reused", c)
	}
}

// TestRoute sends one domain through a relay that requires STARTTLS and
// AUTH, and the rest to MX hosts.
func TestRoute(t *testing.T) {
	dns := testkit.StartDNS(t)
	group := testkit.StartMXGroup(t, testkit.Script{StartTLS: true}, "127.0.0.2", "127.0.0.8")
	mx, relay := group[0], group[1]
	relay.SetScript(testkit.Script{StartTLS: true, RequireTLS: true, RequireAuth: true, Auth: map[string]string{"relayuser": "relaypass"}})
	dns.SetMX("direct.test", testkit.MX{Pref: 10, Host: "mx.direct.test"})
	dns.SetA("mx.direct.test", "127.0.0.2")
	cfg := fmt.Sprintf(`
[[route]]
domain = "routed.test"
host = "%s"
username = "relayuser"
password = "relaypass"
tls = "opportunistic"
`, relay.Addr())
	in := Start(t, Options{DNS: dns.Addr(), DeliveryPort: mx.Port(), Config: cfg})
	id := in.Send("sender@app.test", []string{"a@routed.test", "b@direct.test"}, msgBody("route"))
	d := in.WaitFinal(id, 20*time.Second)
	if dl := delivery(t, d, "a@routed.test"); dl.State != store.Delivered || dl.LastIP != "127.0.0.8" {
		t.Fatalf("routed: %+v", dl)
	}
	if dl := delivery(t, d, "b@direct.test"); dl.State != store.Delivered || dl.LastIP != "127.0.0.2" {
		t.Fatalf("direct: %+v", dl)
	}
	msgs := relay.Messages()
	if len(msgs) != 1 || msgs[0].AuthUser != "relayuser" || !msgs[0].TLS || strings.Join(msgs[0].To, ",") != "a@routed.test" {
		t.Fatalf("relay got %+v", msgs)
	}
}

// TestRouteAuthFailure: wrong relay credentials defer the mail with the
// relay's exact reply (an operator fixes the config, then flushes).
func TestRouteAuthFailure(t *testing.T) {
	relay := testkit.StartMX(t, "127.0.0.8", 0, testkit.Script{StartTLS: true, RequireAuth: true, Auth: map[string]string{"relayuser": "right"}})
	cfg := fmt.Sprintf("[[route]]\ndomain = \"*\"\nhost = \"%s\"\nusername = \"relayuser\"\npassword = \"wrong\"\n", relay.Addr())
	in := Start(t, Options{Config: cfg, RetryMin: time.Hour, RetryMax: time.Hour})
	id := in.Send("sender@app.test", []string{"x@any.test"}, msgBody("auth"))
	deadline := time.Now().Add(15 * time.Second)
	for {
		d := in.Show(id)
		if dl := d.Deliveries[0]; dl.State == store.Deferred {
			if dl.LastPhase != "auth" || dl.LastReply.Code != 535 {
				t.Fatalf("deferred with %+v, want the relay's 535 at auth", dl)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not deferred: %+v", d.Deliveries)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
