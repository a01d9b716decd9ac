package e2e

import (
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/testkit"
)

// TestDNSFailureStaysWithItsDomain: good.test and bad.test share one
// provider destination (their MX hosts match a [[provider]] rule). Once
// bad.test disappears from DNS (NXDOMAIN), its mail bounces; good.test's
// mail, ready in the same destination at the same moment, is delivered.
func TestDNSFailureStaysWithItsDomain(t *testing.T) {
	cfg := "[[provider]]\nname = \"acme\"\nmx_suffixes = [\".acme-mail.test\"]\n" +
		"[[destination]]\nname = \"provider:acme\"\nmax_connections = 1\n"
	w := newWorld(t, Options{Config: cfg}, "127.0.0.2")
	w.dns.SetTTL(0) // no caching: bad.test's removal is seen at once
	w.dns.SetA("in1.acme-mail.test", "127.0.0.2")
	for _, d := range []string{"good.test", "bad.test"} {
		w.dns.SetMX(d, testkit.MX{Pref: 10, Host: "in1.acme-mail.test"})
	}
	in := w.in
	// Both domains are learned as acme's.
	for _, r := range []string{"a@bad.test", "a@good.test"} {
		d := in.WaitFinal(in.Send("s@app.test", []string{r}, msgBody("learn")), 20*time.Second)
		if dl := d.Deliveries[0]; dl.State != store.Delivered || dl.Provider != "acme" {
			t.Fatalf("%s: %+v", r, dl)
		}
	}
	w.dns.Remove("bad.test")
	// One message: its bad.test job comes first, good.test's waits behind
	// it in the same destination (one connection allowed).
	id := in.Send("s@app.test", []string{"b@bad.test", "g@good.test"}, msgBody("mixed"))
	d := in.WaitFinal(id, 20*time.Second)
	if dl := delivery(t, d, "b@bad.test"); dl.State != store.Bounced || dl.LastClass != "dns_error" {
		t.Fatalf("bad.test: %+v", dl)
	}
	if dl := delivery(t, d, "g@good.test"); dl.State != store.Delivered {
		t.Fatalf("good.test's mail was given bad.test's DNS failure: %+v", dl)
	}
	var sup struct {
		Items []store.Suppression `json:"items"`
	}
	in.CLI(&sup, "suppression", "list")
	for _, s := range sup.Items {
		if s.Value == "g@good.test" {
			t.Fatalf("good.test's recipient suppressed: %+v", s)
		}
	}
}

// TestLifetimeWhileDestinationPaused: a destination that answers every
// connection with 421 4.7.28 is paused for longer and longer; deliveries
// waiting for it still end in dead_letter within retry_min of the end of
// their queue lifetime, with the 421 kept as their last reply.
func TestLifetimeWhileDestinationPaused(t *testing.T) {
	const lifetime, retryMin = 6 * time.Second, time.Second
	w := newWorld(t, Options{Lifetime: lifetime, RetryMin: retryMin, RetryMax: 2 * time.Second}, "127.0.0.2")
	w.domain("paused.test", "127.0.0.2")
	w.mx["127.0.0.2"].SetScript(testkit.Script{Greeting: testkit.Reply{Code: 421, Text: "4.7.28 rate limited, slow down", Close: true}})
	in := w.in
	var ids []string
	for i := 0; i < 3; i++ {
		ids = append(ids, in.Send("s@app.test", []string{"u@paused.test"}, msgBody("paused")))
	}
	for _, id := range ids {
		d := in.WaitFinal(id, lifetime+20*time.Second)
		dl := d.Deliveries[0]
		if dl.State != store.DeadLetter || dl.LastReply.Code != 421 || dl.LastReply.Enhanced != "4.7.28" {
			t.Fatalf("%s: %+v", id, dl)
		}
		// Given up within retry_min of the end of its lifetime (by
		// posthorn's own clock, so the CLI's polling does not count; a
		// second of slack for timers on a loaded machine).
		late := dl.UpdatedAt.Sub(dl.ExpiresAt)
		t.Logf("%s: final %v after its lifetime ended, %d attempts", id, late, dl.Attempts)
		if late > retryMin+time.Second {
			t.Errorf("%s: dead-lettered %v after its lifetime ended, want within %v", id, late, retryMin)
		}
	}
}

// TestShutdownDuringData: SIGTERM while an MX stalls after the message
// data ends posthorn promptly (not after the data timeout); the delivery
// is kept and delivered after the restart.
func TestShutdownDuringData(t *testing.T) {
	w := newWorld(t, Options{}, "127.0.0.2")
	w.domain("slow.test", "127.0.0.2")
	mx := w.mx["127.0.0.2"]
	mx.SetScript(testkit.Script{Stall: testkit.Stalls{EndOfData: 5 * time.Minute}})
	in := w.in
	id := in.Send("s@app.test", []string{"u@slow.test"}, msgBody("stalled"))
	deadline := time.Now().Add(20 * time.Second)
	for !hasCommand(mx, "DATA") {
		if time.Now().After(deadline) {
			t.Fatal("the message never reached DATA")
		}
		time.Sleep(20 * time.Millisecond)
	}
	start := time.Now()
	in.Stop()
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("shutdown took %v with a delivery in DATA", d)
	}
	mx.SetScript(testkit.Script{})
	in.Restart()
	if dl := in.WaitFinal(id, 20*time.Second).Deliveries[0]; dl.State != store.Delivered {
		t.Fatalf("after the restart: %+v", dl)
	}
}

func hasCommand(m *testkit.MXServer, line string) bool {
	for _, c := range m.Commands() {
		if c.Line == line {
			return true
		}
	}
	return false
}
