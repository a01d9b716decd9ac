package delivery

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/posthorn/posthorn/internal/testkit"
)

func TestWithoutSelf(t *testing.T) {
	d := New(Config{Hostname: "out.example.test"}, nil)
	mxs := []MXHost{{Name: "a.example.test", Pref: 5}, {Name: "OUT.example.test", Pref: 10}, {Name: "b.example.test", Pref: 10}, {Name: "c.example.test", Pref: 20}}
	kept, self := d.withoutSelf(mxs)
	if self != "OUT.example.test" || len(kept) != 1 || kept[0].Name != "a.example.test" {
		t.Fatalf("backup MX: kept %+v, self %q", kept, self)
	}
	if kept, self := d.withoutSelf(mxs[1:]); len(kept) != 0 || self == "" {
		t.Fatalf("best MX: kept %+v, self %q", kept, self)
	}
	if kept, self := d.withoutSelf(mxs[2:]); len(kept) != 2 || self != "" {
		t.Fatalf("not listed: kept %+v, self %q", kept, self)
	}
	// Names misconfigured receivers greet with are never taken for us.
	for _, own := range []string{"localhost", "localhost.localdomain", "mail"} {
		if (&Deliverer{cfg: Config{Hostname: own}}).isSelf(own) {
			t.Errorf("%q taken for this server", own)
		}
	}
}

// TestDialFaults dials real fake MX hosts through the test DNS server.
func TestDialFaults(t *testing.T) {
	dnsSrv := testkit.StartDNS(t)
	mxs := testkit.StartMXGroup(t, testkit.Script{}, "127.0.0.2", "127.0.0.3")
	mxs[1].SetScript(testkit.Script{Hostname: "out.example.test"}) // greets with our name
	res, err := NewResolver(dnsSrv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	d := New(Config{Hostname: "out.example.test", Port: mxs[0].Port()}, res)
	ctx := context.Background()

	// No MX and the address lookup fails: temporary, not "nowhere to deliver".
	dnsSrv.SetMX("servfail.test")
	dnsSrv.SetRcode("servfail.test", 0, dns.RcodeServerFailure)
	if _, f := d.Dial(ctx, "servfail.test"); f == nil || f.Permanent {
		t.Fatalf("SERVFAIL on the implicit MX: %+v", f)
	}
	// No MX and no address: permanent.
	dnsSrv.SetMX("noaddr.test")
	if _, f := d.Dial(ctx, "noaddr.test"); f == nil || !f.Permanent {
		t.Fatalf("no address: %+v", f)
	}
	// A host that greets with our own name is a loop, unless a better host
	// failed before it.
	dnsSrv.SetA("mx.loop.test", "127.0.0.3")
	dnsSrv.SetMX("loop.test", testkit.MX{Pref: 10, Host: "mx.loop.test"})
	if _, f := d.Dial(ctx, "loop.test"); f == nil || !f.Permanent || !strings.Contains(f.Err, "loops back to myself") {
		t.Fatalf("greeting loop: %+v", f)
	}
	dnsSrv.SetA("down.loop2.test", "127.0.0.4") // nothing listens there
	dnsSrv.SetMX("loop2.test", testkit.MX{Pref: 10, Host: "down.loop2.test"}, testkit.MX{Pref: 20, Host: "mx.loop.test"})
	if _, f := d.Dial(ctx, "loop2.test"); f == nil || f.Permanent || f.Class != "connection_error" {
		t.Fatalf("loop behind a failed primary: %+v", f)
	}
	// An MX target that is an IP address is used as one.
	dnsSrv.SetMX("literal.test", testkit.MX{Pref: 10, Host: "127.0.0.2"})
	c, f := d.Dial(ctx, "literal.test")
	if f != nil || c.IP != "127.0.0.2" {
		t.Fatalf("IP literal MX: %+v", f)
	}
	c.Close()
}

// TestSendFaults: what Conn.Send reports when the receiver misbehaves in
// the transaction.
func TestSendFaults(t *testing.T) {
	dnsSrv := testkit.StartDNS(t)
	mx := testkit.StartMX(t, "127.0.0.2", 0, testkit.Script{})
	dnsSrv.SetA("faulty.test", "127.0.0.2")
	res, err := NewResolver(dnsSrv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	d := New(Config{Hostname: "out.example.test", Port: mx.Port(), DataTimeout: 200 * time.Millisecond}, res)
	msg := Message{Sender: "s@out.example.test", Body: []byte("Subject: x\r\n\r\n" + strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef\r\n", 300))}
	send := func(s testkit.Script) Result {
		t.Helper()
		mx.SetScript(s)
		c, f := d.Dial(context.Background(), "faulty.test")
		if f != nil {
			t.Fatal(f)
		}
		defer c.Close()
		return c.Send(msg, []string{"a@faulty.test"})[0]
	}
	// A second reply to MAIL: the 250 meant for RCPT answers DATA.
	r := send(testkit.Script{Mail: func(string) testkit.Reply {
		return testkit.Reply{Code: 250, Raw: "250 2.1.0 OK\r\n250 2.1.0 OK again\r\n"}
	}})
	if r.Class != "protocol_error" || r.Reply.Code != 0 || strings.HasPrefix(r.Err, PossibleDuplicate) {
		t.Errorf("unsolicited reply: %+v", r)
	}
	// Dropped mid-DATA, our data unread: a connection error, no duplicate.
	r = send(testkit.Script{DropDataAfter: 100})
	if r.Class != "connection_error" || r.Phase != "data-end" || r.Reply.Code != 0 || strings.HasPrefix(r.Err, PossibleDuplicate) {
		t.Errorf("drop mid-DATA: %+v", r)
	}
	// No reply after the final dot: a possible duplicate.
	r = send(testkit.Script{Stall: testkit.Stalls{EndOfData: time.Minute}})
	if r.Class != "connection_error" || r.Phase != "data-end" || !strings.HasPrefix(r.Err, PossibleDuplicate) {
		t.Errorf("no reply after the dot: %+v", r)
	}
	// STARTTLS offered but broken: sent in cleartext, and the result says so.
	r = send(testkit.Script{StartTLS: true, BreakTLS: true})
	if r.Reply.Code != 250 || !strings.Contains(r.Err, "STARTTLS failed") {
		t.Errorf("broken STARTTLS: %+v", r)
	}
}
