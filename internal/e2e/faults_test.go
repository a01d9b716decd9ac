package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/posthorn/posthorn/internal/api"
	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/testkit"
)

// possibleDuplicate starts the error of an attempt that sent the whole
// message and got no reply: the receiver may have it already.
const possibleDuplicate = "possible duplicate"

// faultConfig shortens the delivery timeouts so that a stalled receiver
// costs the test a second, keeps the throttle's cool-down after a 421
// short, and lets one message carry the 10,000 recipients of the slow
// receiver case.
const faultConfig = `
[delivery]
command_timeout = "1500ms"
data_timeout = "1500ms"
connect_timeout = "2s"
cooldown = "500ms"

[smtp]
max_recipients = 10000
`

// TestReceiverFaults is the receiver fault matrix: every way a receiving
// server (or DNS) misbehaves must end each delivery in the state the
// classifier and RFC 5321 call for, with the reason recorded, and leave
// nothing stuck in sending or queued. Faults that heal are healed once
// posthorn recorded the failure, and the delivery must then go through.
func TestReceiverFaults(t *testing.T) {
	var ips []string
	for i := 2; i <= 17; i++ {
		ips = append(ips, fmt.Sprintf("127.0.0.%d", i))
	}
	w := newWorld(t, Options{RetryMin: 300 * time.Millisecond, RetryMax: time.Second, Config: faultConfig}, ips...)
	in := w.in

	t.Run("connection dropped mid-DATA", func(t *testing.T) {
		mx := w.mx["127.0.0.2"]
		w.domain("drop.test", mx.IP())
		mx.SetScript(testkit.Script{DropDataAfter: 100})
		// Bigger than the fake MX's read buffer, so the drop leaves our data
		// unread: the receiver provably never saw the final dot.
		body := msgBody("drop") + strings.Repeat("0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrst\r\n", 200)
		id := in.Send("sender@app.test", []string{"a@drop.test"}, body)
		d := waitDelivery(t, in, id, "a@drop.test", "deferred after the drop", func(dl store.Delivery) bool {
			return dl.State == store.Deferred && dl.Attempts >= 1
		})
		dl := delivery(t, d, "a@drop.test")
		if dl.LastClass != "connection_error" || dl.LastPhase != "data-end" {
			t.Fatalf("deferred delivery: %+v", dl)
		}
		if a := d.Attempts[0]; strings.Contains(a.Error, possibleDuplicate) {
			t.Errorf("a drop before the final dot flagged as a possible duplicate: %+v", a)
		}
		mx.SetScript(testkit.Script{})
		d = in.WaitFinal(id, 20*time.Second)
		wantDelivered(t, d, "a@drop.test")
		if got := accepted(mx, id); got != 1 {
			t.Fatalf("mx accepted the message %d times", got)
		}
	})

	t.Run("no reply after the final dot", func(t *testing.T) {
		mx := w.mx["127.0.0.3"]
		w.domain("stall.test", mx.IP())
		mx.SetScript(testkit.Script{Stall: testkit.Stalls{EndOfData: time.Hour}})
		id := in.Send("sender@app.test", []string{"a@stall.test"}, msgBody("stall"))
		d := waitDelivery(t, in, id, "a@stall.test", "deferred after the timeout", func(dl store.Delivery) bool {
			return dl.State == store.Deferred && dl.Attempts >= 1
		})
		dl := delivery(t, d, "a@stall.test")
		if dl.LastClass != "connection_error" || dl.LastPhase != "data-end" {
			t.Fatalf("deferred delivery: %+v", dl)
		}
		a := d.Attempts[0]
		if !strings.HasPrefix(a.Error, possibleDuplicate) || !strings.Contains(a.Error, "timeout") {
			t.Fatalf("attempt not flagged as a possible duplicate: %+v", a)
		}
		if !hasEvent(d, "a@stall.test", store.EventDeferred, possibleDuplicate) {
			t.Fatalf("no deferred event naming the possible duplicate: %+v", d.Events)
		}
		mx.SetScript(testkit.Script{})
		d = in.WaitFinal(id, 20*time.Second)
		wantDelivered(t, d, "a@stall.test")
	})

	t.Run("garbage reply", func(t *testing.T) {
		mx := w.mx["127.0.0.4"]
		w.domain("garbage.test", mx.IP())
		mx.SetScript(testkit.Script{Rcpt: func(string) testkit.Reply {
			return testkit.Reply{Code: 250, Raw: "HELLO? \x00\x01 this is not SMTP\r\n"}
		}})
		id := in.Send("sender@app.test", []string{"a@garbage.test"}, msgBody("garbage"))
		d := waitDelivery(t, in, id, "a@garbage.test", "deferred after the garbage", func(dl store.Delivery) bool {
			return dl.State == store.Deferred && dl.Attempts >= 1
		})
		if dl := delivery(t, d, "a@garbage.test"); dl.LastClass != "protocol_error" {
			t.Fatalf("deferred delivery: %+v", dl)
		}
		mx.SetScript(testkit.Script{})
		wantDelivered(t, in.WaitFinal(id, 20*time.Second), "a@garbage.test")

		// Garbage instead of a greeting.
		w.domain("garbage-banner.test", mx.IP())
		mx.SetScript(testkit.Script{Greeting: testkit.Reply{Raw: "SSH-2.0-OpenSSH_9.6\r\n"}})
		id = in.Send("sender@app.test", []string{"a@garbage-banner.test"}, msgBody("garbage banner"))
		d = waitDelivery(t, in, id, "a@garbage-banner.test", "deferred after the garbage greeting", func(dl store.Delivery) bool {
			return dl.State == store.Deferred || dl.State.Final()
		})
		if dl := delivery(t, d, "a@garbage-banner.test"); dl.State != store.Deferred || dl.LastClass != "protocol_error" || dl.LastPhase != "connect" {
			t.Fatalf("garbage greeting: %+v", dl)
		}
		mx.SetScript(testkit.Script{})
		wantDelivered(t, in.WaitFinal(id, 20*time.Second), "a@garbage-banner.test")
	})

	t.Run("second unsolicited reply", func(t *testing.T) {
		// Two replies to MAIL: every later reply answers the wrong command,
		// and the 250 meant for RCPT arrives as the answer to DATA. Nothing
		// was sent, so nothing may count as delivered.
		mx := w.mx["127.0.0.5"]
		w.domain("twice.test", mx.IP())
		mx.SetScript(testkit.Script{Mail: func(string) testkit.Reply {
			return testkit.Reply{Code: 250, Raw: "250 2.1.0 OK\r\n250 2.1.0 OK, I said\r\n"}
		}})
		id := in.Send("sender@app.test", []string{"a@twice.test"}, msgBody("twice"))
		d := waitDelivery(t, in, id, "a@twice.test", "a final or deferred state", func(dl store.Delivery) bool {
			return dl.State == store.Deferred || dl.State.Final()
		})
		if dl := delivery(t, d, "a@twice.test"); dl.State != store.Deferred || dl.LastClass != "protocol_error" {
			t.Fatalf("after an out-of-sequence reply: %+v (mx has %d messages)", dl, len(mx.Messages()))
		}
		mx.SetScript(testkit.Script{})
		wantDelivered(t, in.WaitFinal(id, 20*time.Second), "a@twice.test")
		if got := accepted(mx, id); got != 1 {
			t.Fatalf("mx accepted the message %d times", got)
		}
	})

	t.Run("452 4.5.3 too many recipients", func(t *testing.T) {
		// RFC 5321 §4.5.3.1.10: the refused recipients go in the next
		// transaction, at once, on the same connection.
		mx := w.mx["127.0.0.6"]
		w.domain("many.test", mx.IP())
		mx.SetScript(testkit.Script{MaxRcptsPerTxn: 2})
		rcpts := []string{"r1@many.test", "r2@many.test", "r3@many.test", "r4@many.test", "r5@many.test"}
		id := in.Send("sender@app.test", rcpts, msgBody("many"))
		d := in.WaitFinal(id, 20*time.Second)
		for _, r := range rcpts {
			dl := delivery(t, d, r)
			if dl.State != store.Delivered || dl.Attempts != 1 {
				t.Errorf("%s: %+v", r, dl)
			}
			if got := strings.Join(eventTypes(d, r), ","); got != "queued,delivered" {
				t.Errorf("%s events: %s", r, got)
			}
		}
		var txns []string
		conns := map[int]bool{}
		for _, m := range mx.Messages() {
			if strings.Contains(string(m.Data), id) {
				txns = append(txns, strings.Join(m.To, ","))
				conns[m.Conn] = true
			}
		}
		if strings.Join(txns, " ") != "r1@many.test,r2@many.test r3@many.test,r4@many.test r5@many.test" || len(conns) != 1 {
			t.Fatalf("transactions %q on %d connections", txns, len(conns))
		}
	})

	t.Run("552 after DATA", func(t *testing.T) {
		mx := w.mx["127.0.0.7"]
		w.domain("552.test", mx.IP())
		mx.SetScript(testkit.Script{Data: func(m *testkit.Message, _ int) testkit.Reply {
			switch m.To[0] {
			case "full@552.test":
				return testkit.Reply{Code: 552, Text: "5.2.2 Mailbox full"}
			case "big@552.test":
				return testkit.Reply{Code: 552, Text: "5.3.4 Message too big for system"}
			}
			return testkit.Reply{}
		}})
		full := in.Send("sender@app.test", []string{"full@552.test"}, msgBody("full"))
		big := in.Send("sender@app.test", []string{"big@552.test"}, msgBody("big"))
		// Message too big: permanent, the address itself is fine.
		d := in.WaitFinal(big, 20*time.Second)
		if dl := delivery(t, d, "big@552.test"); dl.State != store.Bounced || dl.LastClass != "policy_block" || dl.LastReply.Enhanced != "5.3.4" {
			t.Fatalf("552 5.3.4: %+v", dl)
		}
		// Mailbox full: temporary whatever the 5xx says; retried, not bounced.
		d = waitDelivery(t, in, full, "full@552.test", "a second deferral", func(dl store.Delivery) bool {
			return dl.State.Final() || dl.State == store.Deferred && dl.Attempts >= 2
		})
		if dl := delivery(t, d, "full@552.test"); dl.State != store.Deferred || dl.LastClass != "mailbox_full" {
			t.Fatalf("552 5.2.2: %+v", dl)
		}
		mx.SetScript(testkit.Script{})
		wantDelivered(t, in.WaitFinal(full, 20*time.Second), "full@552.test")
	})

	t.Run("421 at the banner", func(t *testing.T) {
		bad, good := w.mx["127.0.0.8"], w.mx["127.0.0.9"]
		bad.SetScript(testkit.Script{Greeting: testkit.Reply{Code: 421, Text: "4.3.2 Service shutting down", Close: true}})
		// With a second MX host, it takes the message at once.
		w.domain("banner2.test", bad.IP(), good.IP())
		id := in.Send("sender@app.test", []string{"a@banner2.test"}, msgBody("banner2"))
		d := in.WaitFinal(id, 20*time.Second)
		if dl := delivery(t, d, "a@banner2.test"); dl.State != store.Delivered || dl.LastMX != "mx2.banner2.test" || dl.Attempts != 1 {
			t.Fatalf("with a backup MX: %+v", dl)
		}
		// Alone, it defers the message until it greets again.
		w.domain("banner1.test", bad.IP())
		id = in.Send("sender@app.test", []string{"a@banner1.test"}, msgBody("banner1"))
		d = waitDelivery(t, in, id, "a@banner1.test", "deferred", func(dl store.Delivery) bool {
			return dl.State == store.Deferred || dl.State.Final()
		})
		if dl := delivery(t, d, "a@banner1.test"); dl.State != store.Deferred || dl.LastReply.Code != 421 || dl.LastPhase != "connect" {
			t.Fatalf("421 banner: %+v", dl)
		}
		bad.SetScript(testkit.Script{})
		wantDelivered(t, in.WaitFinal(id, 20*time.Second), "a@banner1.test")
	})

	t.Run("TLS handshake failure", func(t *testing.T) {
		mx := w.mx["127.0.0.10"]
		w.domain("notls.test", mx.IP())
		mx.SetScript(testkit.Script{StartTLS: true, BreakTLS: true})
		id := in.Send("sender@app.test", []string{"a@notls.test"}, msgBody("notls"))
		d := in.WaitFinal(id, 20*time.Second)
		dl := delivery(t, d, "a@notls.test")
		if dl.State != store.Delivered || dl.Attempts != 1 {
			t.Fatalf("delivery: %+v", dl)
		}
		if len(d.Attempts) != 1 || d.Attempts[0].TLS || !strings.Contains(d.Attempts[0].Error, "STARTTLS failed") {
			t.Fatalf("attempt should record the cleartext fallback: %+v", d.Attempts)
		}
		if msgs := mx.Messages(); len(msgs) != 1 || msgs[0].TLS {
			t.Fatalf("mx messages: %+v", msgs)
		}
	})

	t.Run("DNS SERVFAIL", func(t *testing.T) {
		mx := w.mx["127.0.0.11"]
		w.domain("servfail.test", mx.IP())
		w.dns.SetRcode("servfail.test", dns.TypeMX, dns.RcodeServerFailure)
		// A domain without MX whose address lookup fails: the implicit MX
		// must not turn a DNS outage into "no such host".
		w.dns.SetMX("servfail-a.test")
		w.dns.SetA("servfail-a.test", mx.IP())
		w.dns.SetRcode("servfail-a.test", dns.TypeA, dns.RcodeServerFailure)
		w.dns.SetRcode("servfail-a.test", dns.TypeAAAA, dns.RcodeServerFailure)
		ids := map[string]string{
			"a@servfail.test":   in.Send("sender@app.test", []string{"a@servfail.test"}, msgBody("servfail")),
			"a@servfail-a.test": in.Send("sender@app.test", []string{"a@servfail-a.test"}, msgBody("servfail-a")),
		}
		for rcpt, id := range ids {
			d := waitDelivery(t, in, id, rcpt, "retried", func(dl store.Delivery) bool {
				return dl.State.Final() || dl.State == store.Deferred && dl.Attempts >= 2
			})
			if dl := delivery(t, d, rcpt); dl.State != store.Deferred || dl.LastClass != "dns_error" {
				t.Fatalf("%s during SERVFAIL: %+v", rcpt, dl)
			}
		}
		w.dns.SetRcode("servfail.test", dns.TypeMX, dns.RcodeSuccess)
		w.dns.SetRcode("servfail-a.test", dns.TypeA, dns.RcodeSuccess)
		w.dns.SetRcode("servfail-a.test", dns.TypeAAAA, dns.RcodeSuccess)
		for rcpt, id := range ids {
			wantDelivered(t, in.WaitFinal(id, 20*time.Second), rcpt)
		}
	})

	t.Run("DNS timeout", func(t *testing.T) {
		mx := w.mx["127.0.0.12"]
		w.domain("dnsslow.test", mx.IP())
		w.dns.SetDelay("dnsslow.test", time.Minute) // beyond the resolver's timeout
		id := in.Send("sender@app.test", []string{"a@dnsslow.test"}, msgBody("dnsslow"))
		d := waitDelivery(t, in, id, "a@dnsslow.test", "deferred", func(dl store.Delivery) bool {
			return dl.State.Final() || dl.State == store.Deferred
		})
		if dl := delivery(t, d, "a@dnsslow.test"); dl.State != store.Deferred || dl.LastClass != "dns_error" {
			t.Fatalf("during the DNS timeout: %+v", dl)
		}
		w.dns.SetDelay("dnsslow.test", 0)
		wantDelivered(t, in.WaitFinal(id, 20*time.Second), "a@dnsslow.test")
	})

	t.Run("MX pointing to a CNAME", func(t *testing.T) {
		// RFC 2181 §10.3 forbids it, but mail servers follow the alias; so
		// does posthorn. The domain itself being an alias is RFC 5321 §5.1.
		mx := w.mx["127.0.0.13"]
		w.dns.SetMX("cname.test", testkit.MX{Pref: 10, Host: "alias.cname.test"})
		w.dns.SetCNAME("alias.cname.test", "real.cname.test")
		w.dns.SetA("real.cname.test", mx.IP())
		w.dns.SetCNAME("alias-domain.test", "cname.test")
		id := in.Send("sender@app.test", []string{"a@cname.test", "b@alias-domain.test"}, msgBody("cname"))
		d := in.WaitFinal(id, 20*time.Second)
		wantDelivered(t, d, "a@cname.test")
		wantDelivered(t, d, "b@alias-domain.test")
		if dl := delivery(t, d, "a@cname.test"); dl.LastIP != mx.IP() {
			t.Fatalf("delivered via %s", dl.LastIP)
		}
	})

	t.Run("MX pointing to an IP literal", func(t *testing.T) {
		// Invalid (an MX names a host) but seen: posthorn uses the address.
		mx := w.mx["127.0.0.14"]
		w.dns.SetMX("literal.test", testkit.MX{Pref: 10, Host: mx.IP()})
		id := in.Send("sender@app.test", []string{"a@literal.test", "b@literal.test"}, msgBody("literal"))
		d := in.WaitFinal(id, 20*time.Second)
		wantDelivered(t, d, "a@literal.test")
		wantDelivered(t, d, "b@literal.test")
		if dl := delivery(t, d, "a@literal.test"); dl.LastIP != mx.IP() || dl.Attempts != 1 {
			t.Fatalf("delivery: %+v", dl)
		}
	})

	t.Run("MX pointing to itself", func(t *testing.T) {
		// A server that greets with posthorn's own name stands for posthorn
		// itself: sending there would loop.
		self, primary := w.mx["127.0.0.15"], w.mx["127.0.0.16"]
		self.SetScript(testkit.Script{Hostname: "posthorn.test"})
		w.dns.SetA("posthorn.test", self.IP())
		w.dns.SetMX("loop-name.test", testkit.MX{Pref: 10, Host: "posthorn.test"})
		w.dns.SetA("other-name.loop.test", self.IP())
		w.dns.SetMX("loop-greeting.test", testkit.MX{Pref: 10, Host: "other-name.loop.test"})
		for _, rcpt := range []string{"a@loop-name.test", "a@loop-greeting.test"} {
			id := in.Send("sender@app.test", []string{rcpt}, msgBody("loop"))
			d := in.WaitFinal(id, 20*time.Second)
			dl := delivery(t, d, rcpt)
			if dl.State != store.Bounced || dl.LastClass != "dns_error" || !strings.Contains(d.Attempts[0].Error, "loops back to myself") {
				t.Fatalf("%s: %+v %+v", rcpt, dl, d.Attempts)
			}
		}
		// posthorn as the backup MX: only the primary may be used (RFC 5321
		// §5.1); while it is down the mail waits.
		primary.Stop()
		w.dns.SetA("mx1.backup.test", primary.IP())
		w.dns.SetMX("backup.test", testkit.MX{Pref: 10, Host: "mx1.backup.test"}, testkit.MX{Pref: 20, Host: "posthorn.test"})
		id := in.Send("sender@app.test", []string{"a@backup.test"}, msgBody("backup"))
		d := waitDelivery(t, in, id, "a@backup.test", "retried", func(dl store.Delivery) bool {
			return dl.State.Final() || dl.State == store.Deferred && dl.Attempts >= 2
		})
		if dl := delivery(t, d, "a@backup.test"); dl.State != store.Deferred || dl.LastClass != "connection_error" {
			t.Fatalf("primary down: %+v", dl)
		}
		if err := primary.Start(); err != nil {
			t.Fatal(err)
		}
		wantDelivered(t, in.WaitFinal(id, 20*time.Second), "a@backup.test")
		if n := self.Connections(); n != 1 {
			// Only the greeting check of loop-greeting.test reached it.
			t.Fatalf("the self MX saw %d connections", n)
		}
		if got := len(self.Messages()); got != 0 {
			t.Fatalf("posthorn delivered %d messages to itself", got)
		}
	})

	t.Run("10000 recipients, slowly", func(t *testing.T) {
		// One message, 10,000 recipients, split into transactions of 100 on
		// one connection; each transaction takes a while, so the session
		// lasts several times every timeout of posthorn's.
		mx := w.mx["127.0.0.17"]
		w.domain("slow.test", mx.IP())
		mx.SetScript(testkit.Script{DiscardData: true, Stall: testkit.Stalls{Mail: 25 * time.Millisecond, EndOfData: 25 * time.Millisecond}})
		const n = 10000
		rcpts := make([]string, n)
		for i := range rcpts {
			rcpts[i] = fmt.Sprintf("user%05d@slow.test", i)
		}
		start := time.Now()
		in.Send("sender@app.test", rcpts, msgBody("slow"))
		deadline := time.Now().Add(60 * time.Second)
		for {
			var pending api.QueueList
			in.CLI(&pending, "queue", "list", "--domain", "slow.test", "--limit", "1")
			if pending.Count == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("still pending after 60s: %+v", pending.Items)
			}
			time.Sleep(200 * time.Millisecond)
		}
		took := time.Since(start)
		var done api.QueueList
		in.CLI(&done, "queue", "list", "--state", "delivered", "--domain", "slow.test", "--limit", "0")
		if done.Count != n {
			t.Fatalf("%d of %d delivered", done.Count, n)
		}
		for _, dl := range done.Items {
			if dl.Attempts != 1 {
				t.Fatalf("retried: %+v", dl)
			}
		}
		got := 0
		for _, m := range mx.Messages() {
			if strings.HasPrefix(m.To[0], "user") {
				got += len(m.To)
			}
		}
		if got != n || mx.Connections() != 1 {
			t.Fatalf("mx got %d recipients over %d connections", got, mx.Connections())
		}
		t.Logf("10000 recipients in %d transactions in %s", mx.Transactions(), took.Round(time.Millisecond))
	})

	// Nothing is left in a pending state (scheduled, queued, sending,
	// deferred, held), and every delivery's events end in its final state.
	var pending api.QueueList
	in.CLI(&pending, "queue", "list", "--limit", "0")
	if pending.Count != 0 {
		t.Fatalf("left pending: %+v", pending.Items)
	}
	var all api.QueueList
	in.CLI(&all, "queue", "list", "--state", "all", "--limit", "0")
	checked := map[string]bool{}
	for _, dl := range all.Items {
		if dl.Domain == "slow.test" || checked[dl.MessageID] {
			continue
		}
		checked[dl.MessageID] = true
		d := in.Show(dl.MessageID)
		for _, x := range d.Deliveries {
			evs := eventTypes(d, x.Recipient)
			if len(evs) < 2 || evs[0] != store.EventQueued || evs[len(evs)-1] != string(x.State) {
				t.Errorf("%s: state %s, events %v", x.Recipient, x.State, evs)
			}
		}
	}
}

// waitDelivery polls message id until rcpt's delivery satisfies ok.
func waitDelivery(t *testing.T, in *Instance, id, rcpt, what string, ok func(store.Delivery) bool) api.MessageDetail {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		d := in.Show(id)
		for _, dl := range d.Deliveries {
			if dl.Recipient == rcpt && ok(dl) {
				return d
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %s after 20s: %+v", rcpt, what, d.Deliveries)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// wantDelivered checks rcpt ended delivered, with a delivered event last.
func wantDelivered(t *testing.T, d api.MessageDetail, rcpt string) {
	t.Helper()
	dl := delivery(t, d, rcpt)
	evs := eventTypes(d, rcpt)
	if dl.State != store.Delivered || len(evs) == 0 || evs[len(evs)-1] != store.EventDelivered {
		t.Fatalf("%s: %+v, events %v", rcpt, dl, evs)
	}
}

func hasEvent(d api.MessageDetail, rcpt, typ, text string) bool {
	for _, e := range d.Events {
		if e.Recipient == rcpt && e.Type == typ && strings.Contains(e.Reply.Text, text) {
			return true
		}
	}
	return false
}

// accepted counts the copies of message id the MX accepted.
func accepted(mx *testkit.MXServer, id string) int {
	n := 0
	for _, m := range mx.Messages() {
		if strings.Contains(string(m.Data), "<"+id+"@") {
			n++
		}
	}
	return n
}
