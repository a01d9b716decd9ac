package inbound

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/posthorn/posthorn/internal/smtpd"
	"github.com/posthorn/posthorn/internal/smtpproto"
	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/store/sqlite"
	"github.com/posthorn/posthorn/internal/store/storetest"
	"github.com/posthorn/posthorn/internal/suppress"
	"github.com/posthorn/posthorn/internal/verp"
)

func dsn(rp, rcpt string) []byte {
	return []byte("From: MAILER-DAEMON@mx.y.test\r\nTo: " + rp + "\r\nSubject: failure\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n" +
		"--b\r\nContent-Type: text/plain\r\n\r\nNot delivered.\r\n" +
		"--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.y.test\r\n\r\n" +
		"Final-Recipient: rfc822; " + rcpt + "\r\nAction: failed\r\nStatus: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 user unknown\r\n\r\n" +
		"--b\r\nContent-Type: text/rfc822-headers\r\n\r\nReturn-Path: <" + rp + ">\r\nSubject: hi\r\n\r\n--b--\r\n")
}

// arf is a feedback report that names no recipient (as redacting
// feedback loops send them), found through the returned Return-Path.
func arf(rp string) []byte {
	return []byte("From: fbl@isp.test\r\nTo: fbl@b.test\r\nSubject: complaint\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/report; report-type=feedback-report; boundary=\"b\"\r\n\r\n" +
		"--b\r\nContent-Type: text/plain\r\n\r\nAbuse report.\r\n" +
		"--b\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\nUser-Agent: fbl/1\r\nVersion: 1\r\n\r\n" +
		"--b\r\nContent-Type: text/rfc822-headers\r\n\r\nReturn-Path: <" + rp + ">\r\nSubject: hi\r\n\r\n--b--\r\n")
}

// TestReportsChangeOnlyTheirDelivery: a report changes the delivery its
// return path names when it names that recipient (or nobody), and records
// every other claim as report_ignored; message-level tokens count only
// for one-recipient messages.
func TestReportsChangeOnlyTheirDelivery(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sup, err := suppress.Load(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	signer := verp.New([]byte(strings.Repeat("k", 32)), "b.test", 30*24*time.Hour)
	srv := New(Config{Hostname: "in.test"}, signer, st, sup, slog.New(slog.NewTextHandler(io.Discard, nil)))

	pair := storetest.NewTestMessage(ulid.Make().String(), "alice@y.test", "bob@y.test", "carol@y.test")
	solo := storetest.NewTestMessage(ulid.Make().String(), "solo@y.test")
	if err := st.InsertMessages(ctx, []*store.NewMessage{pair, solo}); err != nil {
		t.Fatal(err)
	}
	rp := func(nm *store.NewMessage, i int) string {
		a, err := signer.ReturnPath(nm.Message.ID, nm.Deliveries[i].ID)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	legacy := func(nm *store.NewMessage) string {
		a, err := signer.MessageReturnPath(nm.Message.ID)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	deliver := func(to string, body []byte) {
		t.Helper()
		s := &session{srv: srv}
		if err := s.Rcpt(mustPath(t, to)); err != nil {
			t.Fatalf("rcpt %s: %v", to, err)
		}
		if reply, err := s.Data(body); err != nil || reply.Code != 250 {
			t.Fatalf("data: %v %v", reply, err)
		}
	}
	state := func(nm *store.NewMessage, rcpt string) store.State {
		t.Helper()
		ds, err := st.MessageDeliveries(ctx, nm.Message.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			if d.Recipient == rcpt {
				return d.State
			}
		}
		t.Fatalf("no delivery for %s", rcpt)
		return ""
	}
	ignored := func(nm *store.NewMessage) []store.Event {
		evs, err := st.Events(ctx, store.EventFilter{MessageID: nm.Message.ID, Type: store.EventReportIgnored})
		if err != nil {
			t.Fatal(err)
		}
		return evs
	}

	// On alice's return path: a DSN about bob, and one about an address
	// the message never went to, change nothing.
	deliver(rp(pair, 0), dsn(rp(pair, 0), "bob@y.test"))
	deliver(rp(pair, 0), dsn(rp(pair, 0), "fwd@elsewhere.test"))
	if s := state(pair, "bob@y.test"); s != store.Queued {
		t.Fatalf("bob after alice's DSN: %s", s)
	}
	if s := state(pair, "alice@y.test"); s != store.Queued {
		t.Fatalf("alice after DSNs naming others: %s", s)
	}
	if _, ok := sup.Check("t1", "bob@y.test"); ok {
		t.Fatal("bob suppressed by alice's DSN")
	}
	evs := ignored(pair)
	if len(evs) != 2 || evs[0].DeliveryID != pair.Deliveries[0].ID || !strings.Contains(evs[0].Detail+evs[1].Detail, "bob@y.test") ||
		!strings.Contains(evs[0].Detail+evs[1].Detail, "fwd@elsewhere.test") {
		t.Fatalf("report_ignored events: %+v", evs)
	}
	// Her own address, in another case: alice bounces.
	deliver(rp(pair, 0), dsn(rp(pair, 0), "Alice@Y.TEST"))
	if s := state(pair, "alice@y.test"); s != store.Bounced {
		t.Fatalf("alice after her DSN: %s", s)
	}
	if x, ok := sup.Check("t1", "alice@y.test"); !ok || x.Reason != suppress.HardBounce {
		t.Fatalf("alice not suppressed: %+v", x)
	}
	// A complaint naming nobody, to fbl@, is bob's through the Return-Path.
	deliver("fbl@b.test", arf(rp(pair, 1)))
	if x, ok := sup.Check("t1", "bob@y.test"); !ok || x.Reason != suppress.Complaint {
		t.Fatalf("bob's complaint: %+v %v", x, ok)
	}
	// Message-level tokens: not for a message with several recipients...
	deliver(legacy(pair), dsn(legacy(pair), "carol@y.test"))
	if s := state(pair, "carol@y.test"); s != store.Queued {
		t.Fatalf("carol after a message-level DSN: %s", s)
	}
	if evs := ignored(pair); len(evs) != 3 || evs[2].DeliveryID != 0 || !strings.Contains(evs[2].Detail, "carol@y.test") {
		t.Fatalf("report_ignored events: %+v", evs)
	}
	// ... only for the one recipient of a one-recipient message.
	deliver(legacy(solo), dsn(legacy(solo), "other@y.test"))
	if s := state(solo, "solo@y.test"); s != store.Queued || len(ignored(solo)) != 1 {
		t.Fatalf("solo after a message-level DSN naming another: %s %+v", s, ignored(solo))
	}
	deliver(legacy(solo), dsn(legacy(solo), "solo@y.test"))
	if s := state(solo, "solo@y.test"); s != store.Bounced {
		t.Fatalf("solo after its message-level DSN: %s", s)
	}
}

func mustPath(t *testing.T, addr string) smtpd.Path {
	t.Helper()
	a, err := smtpproto.ParseAddress(addr, false)
	if err != nil {
		t.Fatal(err)
	}
	return smtpd.Path{Addr: a}
}
