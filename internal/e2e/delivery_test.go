package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/api"
	"github.com/posthorn/posthorn/internal/queue/ops"
	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/testkit"
)

// world is a test DNS server and fake MX hosts on 127.0.0.2-9, all on one
// port, with a posthorn pointed at them.
type world struct {
	dns *testkit.DNS
	mx  map[string]*testkit.MXServer // by ip
	in  *Instance
}

func newWorld(t *testing.T, o Options, ips ...string) *world {
	t.Helper()
	w := &world{dns: testkit.StartDNS(t), mx: map[string]*testkit.MXServer{}}
	group := testkit.StartMXGroup(t, testkit.Script{StartTLS: true}, ips...)
	for _, m := range group {
		w.mx[m.IP()] = m
	}
	o.DNS, o.DeliveryPort = w.dns.Addr(), group[0].Port()
	w.in = Start(t, o)
	return w
}

// domain publishes domain with one MX host per ip, preference in order.
func (w *world) domain(domain string, ips ...string) {
	var mxs []testkit.MX
	for i, ip := range ips {
		host := fmt.Sprintf("mx%d.%s", i+1, domain)
		w.dns.SetA(host, ip)
		mxs = append(mxs, testkit.MX{Pref: uint16(10 * (i + 1)), Host: host})
	}
	w.dns.SetMX(domain, mxs...)
}

func waitMessages(t *testing.T, m *testkit.MXServer, n int) []testkit.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	msgs, err := m.WaitMessages(ctx, n)
	if err != nil {
		t.Fatalf("mx %s: waiting for %d messages, have %d: %v", m.IP(), n, len(m.Messages()), err)
	}
	return msgs
}

func delivery(t *testing.T, d api.MessageDetail, rcpt string) store.Delivery {
	t.Helper()
	for _, dl := range d.Deliveries {
		if dl.Recipient == rcpt {
			return dl
		}
	}
	t.Fatalf("no delivery for %s in %+v", rcpt, d.Deliveries)
	return store.Delivery{}
}

func eventTypes(d api.MessageDetail, rcpt string) []string {
	var out []string
	for _, e := range d.Events {
		if e.Recipient == rcpt {
			out = append(out, e.Type)
		}
	}
	return out
}

func msgBody(subject string) string {
	return "From: sender@app.test\r\nTo: someone\r\nSubject: " + subject + "\r\n\r\nHello.\r\n.leading dot line\r\n"
}

func TestDelivery(t *testing.T) {
	ips := []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6", "127.0.0.7"}
	w := newWorld(t, Options{RetryMin: 300 * time.Millisecond, RetryMax: time.Second, Lifetime: 5 * time.Second}, ips...)
	in := w.in

	t.Run("plain success", func(t *testing.T) {
		w.domain("plain.test", "127.0.0.2")
		id := in.Send("sender@app.test", []string{"alice@plain.test"}, msgBody("plain"))
		d := in.WaitFinal(id, 20*time.Second)
		dl := delivery(t, d, "alice@plain.test")
		if dl.State != store.Delivered || dl.Attempts != 1 || dl.LastReply.Code != 250 || dl.LastMX != "mx1.plain.test" || dl.LastIP != "127.0.0.2" {
			t.Fatalf("delivery: %+v", dl)
		}
		if got := eventTypes(d, "alice@plain.test"); strings.Join(got, ",") != "queued,delivered" {
			t.Fatalf("events: %v", got)
		}
		if len(d.Attempts) != 1 || !d.Attempts[0].TLS {
			t.Fatalf("attempts (want one, over STARTTLS): %+v", d.Attempts)
		}
		var got *testkit.Message
		for _, m := range waitMessages(t, w.mx["127.0.0.2"], 1) {
			if len(m.To) == 1 && m.To[0] == "alice@plain.test" {
				got = &m
			}
		}
		if got == nil || got.From != "sender@app.test" || !got.TLS {
			t.Fatalf("mx did not get the message over TLS: %+v", got)
		}
		data := string(got.Data)
		for _, h := range []string{"Received: from client.test", "Message-ID: <" + id + "@posthorn.test>", "Date: ", "Subject: plain", "\r\n.leading dot line\r\n"} {
			if !strings.Contains(data, h) {
				t.Errorf("delivered message lacks %q:\n%s", h, data)
			}
		}
	})

	t.Run("three domains", func(t *testing.T) {
		w.domain("d1.test", "127.0.0.3")
		w.domain("d2.test", "127.0.0.4")
		w.domain("d3.test", "127.0.0.4")
		rcpts := []string{"a@d1.test", "b@d1.test", "c@d2.test", "d@d3.test"}
		id := in.Send("sender@app.test", rcpts, msgBody("three"))
		d := in.WaitFinal(id, 20*time.Second)
		for _, r := range rcpts {
			if dl := delivery(t, d, r); dl.State != store.Delivered {
				t.Errorf("%s: %s", r, dl.State)
			}
		}
		// Both d1 recipients in one transaction.
		var d1 []testkit.Message
		for _, m := range w.mx["127.0.0.3"].Messages() {
			if strings.Contains(string(m.Data), id) {
				d1 = append(d1, m)
			}
		}
		if len(d1) != 1 || strings.Join(d1[0].To, ",") != "a@d1.test,b@d1.test" {
			t.Fatalf("d1.test transactions: %+v", d1)
		}
	})

	t.Run("4xx then success", func(t *testing.T) {
		w.domain("retry.test", "127.0.0.5")
		w.mx["127.0.0.5"].SetScript(testkit.Script{DataReplies: []testkit.Reply{{Code: 451, Text: "4.3.0 Temporary local problem"}}})
		id := in.Send("sender@app.test", []string{"r@retry.test"}, msgBody("retry"))
		d := in.WaitFinal(id, 20*time.Second)
		dl := delivery(t, d, "r@retry.test")
		if dl.State != store.Delivered || dl.Attempts != 2 {
			t.Fatalf("delivery: %+v", dl)
		}
		if len(d.Attempts) != 2 || d.Attempts[0].Reply.Code != 451 || d.Attempts[0].Reply.Enhanced != "4.3.0" || d.Attempts[0].Reply.Text != "Temporary local problem" {
			t.Fatalf("first attempt should keep the exact 451 reply: %+v", d.Attempts)
		}
		if got := strings.Join(eventTypes(d, "r@retry.test"), ","); got != "queued,deferred,delivered" {
			t.Fatalf("events: %s", got)
		}
	})

	t.Run("per-recipient 5xx", func(t *testing.T) {
		w.domain("mixed.test", "127.0.0.6")
		w.mx["127.0.0.6"].SetScript(testkit.Script{RcptReplies: map[string]testkit.Reply{
			"nobody@mixed.test": {Code: 550, Text: "5.1.1 The email account that you tried to reach does not exist"},
		}})
		id := in.Send("sender@app.test", []string{"ok1@mixed.test", "nobody@mixed.test", "ok2@mixed.test"}, msgBody("mixed"))
		d := in.WaitFinal(id, 20*time.Second)
		bad := delivery(t, d, "nobody@mixed.test")
		if bad.State != store.Bounced || bad.LastReply.Code != 550 || bad.LastReply.Enhanced != "5.1.1" || bad.LastPhase != "rcpt" {
			t.Fatalf("bounced delivery: %+v", bad)
		}
		for _, r := range []string{"ok1@mixed.test", "ok2@mixed.test"} {
			if dl := delivery(t, d, r); dl.State != store.Delivered {
				t.Fatalf("%s: %+v", r, dl)
			}
		}
		msgs := w.mx["127.0.0.6"].Messages()
		if len(msgs) != 1 || strings.Join(msgs[0].To, ",") != "ok1@mixed.test,ok2@mixed.test" {
			t.Fatalf("mx transactions: %+v", msgs)
		}
	})

	t.Run("first MX refuses, second accepts", func(t *testing.T) {
		w.domain("fallback.test", "127.0.0.7", "127.0.0.3")
		w.mx["127.0.0.7"].Stop() // connection refused
		defer w.mx["127.0.0.7"].Start()
		id := in.Send("sender@app.test", []string{"f@fallback.test"}, msgBody("fallback"))
		d := in.WaitFinal(id, 20*time.Second)
		dl := delivery(t, d, "f@fallback.test")
		if dl.State != store.Delivered || dl.LastMX != "mx2.fallback.test" || dl.LastIP != "127.0.0.3" || dl.Attempts != 1 {
			t.Fatalf("delivery: %+v", dl)
		}
	})

	t.Run("no MX: A fallback", func(t *testing.T) {
		w.dns.SetA("nomx.test", "127.0.0.4")
		id := in.Send("sender@app.test", []string{"n@nomx.test"}, msgBody("nomx"))
		d := in.WaitFinal(id, 20*time.Second)
		dl := delivery(t, d, "n@nomx.test")
		if dl.State != store.Delivered || dl.LastMX != "nomx.test" || dl.LastIP != "127.0.0.4" {
			t.Fatalf("delivery: %+v", dl)
		}
	})

	t.Run("nonexistent domain bounces", func(t *testing.T) {
		id := in.Send("sender@app.test", []string{"x@does-not-exist.test"}, msgBody("nx"))
		d := in.WaitFinal(id, 20*time.Second)
		if dl := delivery(t, d, "x@does-not-exist.test"); dl.State != store.Bounced || dl.LastClass != "dns_error" {
			t.Fatalf("delivery: %+v", dl)
		}
	})

	t.Run("failing until the lifetime ends", func(t *testing.T) {
		w.domain("down.test", "127.0.0.5")
		w.mx["127.0.0.5"].SetScript(testkit.Script{Rcpt: func(string) testkit.Reply {
			return testkit.Reply{Code: 451, Text: "4.7.1 Greylisted, please try again later"}
		}})
		start := time.Now()
		id := in.Send("sender@app.test", []string{"g@down.test"}, msgBody("down"))
		d := in.WaitFinal(id, 30*time.Second)
		dl := delivery(t, d, "g@down.test")
		if dl.State != store.DeadLetter || dl.LastReply.Code != 451 || dl.LastReply.Enhanced != "4.7.1" ||
			dl.LastReply.Text != "Greylisted, please try again later" || dl.Attempts < 3 {
			t.Fatalf("delivery: %+v", dl)
		}
		if el := time.Since(start); el < 5*time.Second {
			t.Fatalf("dead-lettered after %s, before its 5s lifetime", el)
		}
		// The dead letter is listed, and requeue gives it a fresh lifetime.
		var list api.QueueList
		in.CLI(&list, "queue", "list", "--state", "dead_letter")
		if list.Count != 1 || list.Items[0].MessageID != id {
			t.Fatalf("dead letters: %+v", list)
		}
		w.mx["127.0.0.5"].SetScript(testkit.Script{})
		var res ops.OpResult
		in.CLI(&res, "queue", "requeue", "--dead")
		if res.Changed != 1 {
			t.Fatalf("requeue: %+v", res)
		}
		d = in.WaitFinal(id, 20*time.Second)
		if dl := delivery(t, d, "g@down.test"); dl.State != store.Delivered {
			t.Fatalf("after requeue: %+v", dl)
		}
	})
}
