package deliverylog

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/smtpproto"
	"github.com/posthorn/posthorn/internal/store"
)

func TestLine(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	acc := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	LogAttempt(log, Attempt{QueueID: "Q1", DeliveryID: 7, To: "a@example.org", Attempt: 2, Accepted: acc,
		Outcome: store.Outcome{State: store.Deferred, Class: "deferred", MX: "mx.example.org", IP: "192.0.2.1",
			Reply: smtpproto.Reply{Code: 451, Text: "try later"}, StartedAt: acc.Add(90 * time.Second), Duration: 1500 * time.Millisecond,
			NextAt: acc.Add(10 * time.Minute)}})
	line := buf.String()
	for _, want := range []string{"msg=delivery", "queue_id=Q1", "delivery=7", "to=<a@example.org>", "relay=mx.example.org[192.0.2.1]",
		"delay=91.50", "delays=90.00/0.00/0.00/1.50", "attempt=2", "dsn=4.0.0", "status=deferred", "next_attempt=2026-01-01T00:10:00Z", `reply="451 try later"`} {
		if !strings.Contains(line, want) {
			t.Errorf("line lacks %q: %s", want, line)
		}
	}
	// With the worker's times: queue until taken, the lease and the rest
	// before the connection, the connection's setup, the transaction.
	buf.Reset()
	LogAttempt(log, Attempt{QueueID: "Q2", DeliveryID: 8, To: "b@example.org", Attempt: 1, Accepted: acc,
		Taken: acc.Add(13 * time.Second), Setup: 250 * time.Millisecond,
		Outcome: store.Outcome{State: store.Delivered, Reply: smtpproto.Reply{Code: 250, Text: "ok"},
			StartedAt: acc.Add(13*time.Second + 300*time.Millisecond), Duration: 20 * time.Millisecond}})
	if line := buf.String(); !strings.Contains(line, "delay=13.32 delays=13.00/0.05/0.25/0.02 ") {
		t.Errorf("delays split: %s", line)
	}
	cases := []struct {
		st    store.State
		r     smtpproto.Reply
		dsn   string
		reply string
	}{
		{store.Delivered, smtpproto.Reply{Code: 250, Enhanced: "2.0.0", Text: "ok"}, "2.0.0", "250 2.0.0 ok"},
		{store.Bounced, smtpproto.Reply{Code: 550, Text: "no"}, "5.0.0", "550 no"},
		{store.Deferred, smtpproto.Reply{}, "4.0.0", "(connection refused)"},
		{store.DeadLetter, smtpproto.Reply{}, "5.0.0", "(connection refused)"},
	}
	for _, c := range cases {
		if got := DSN(c.st, c.r); got != c.dsn {
			t.Errorf("DSN(%s, %v) = %s, want %s", c.st, c.r, got, c.dsn)
		}
		if got := ReplyText(c.r, "connection refused"); got != c.reply {
			t.Errorf("ReplyText(%v) = %s, want %s", c.r, got, c.reply)
		}
	}
	if Relay("", "") != "none" || Relay("", "192.0.2.1") != "[192.0.2.1]" || Status(store.Delivered) != "sent" {
		t.Error("relay or status words")
	}
}
