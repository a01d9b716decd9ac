package testkit

import (
	"crypto/tls"
	"net/smtp"
	"strings"
	"testing"
)

// TestMXRawReplies: Raw replaces a reply byte for byte, so a script can send
// garbage or a second, unsolicited reply; Code still drives the server.
func TestMXRawReplies(t *testing.T) {
	m := StartMX(t, "127.0.0.1", 0, Script{
		Rcpt: func(rcpt string) Reply {
			if strings.HasPrefix(rcpt, "garbage") {
				return Reply{Code: 250, Raw: "HELLO? this is no reply\r\n"}
			}
			return Reply{Code: 250, Raw: "250 2.1.5 OK\r\n250 2.1.5 and again\r\n"}
		},
	})
	r := dialRaw(t, m.Addr())
	r.expect("220 ")
	r.write("HELO c\r\nMAIL FROM:<a@a.test>\r\nRCPT TO:<garbage@b.test>\r\n")
	r.expect("250 ")
	r.expect("250 ")
	if l, err := r.r.ReadString('\n'); err != nil || l != "HELLO? this is no reply\r\n" {
		t.Fatalf("garbage reply: %q %v", l, err)
	}
	r.write("RCPT TO:<twice@b.test>\r\n")
	r.expect("250 2.1.5 OK")
	r.expect("250 2.1.5 and again")
	// Code 250 accepted both recipients.
	r.write("DATA\r\n")
	r.expect("354 ")
	r.write("x\r\n.\r\n")
	r.expect("250 ")
	if msgs := m.Messages(); len(msgs) != 1 || strings.Join(msgs[0].To, ",") != "garbage@b.test,twice@b.test" {
		t.Fatalf("messages: %+v", msgs)
	}

	// Raw with Close hangs up after the bytes.
	m.SetScript(Script{Greeting: Reply{Raw: "220 half a greeting", Close: true}})
	r = dialRaw(t, m.Addr())
	if l, _ := r.r.ReadString('\n'); l != "220 half a greeting" {
		t.Fatalf("cut greeting: %q", l)
	}
}

// TestMXMaxRcptsPerTxn: the recipients after the limit get 452 4.5.3 and
// the next transaction starts afresh.
func TestMXMaxRcptsPerTxn(t *testing.T) {
	m := StartMX(t, "127.0.0.1", 0, Script{MaxRcptsPerTxn: 2})
	r := dialRaw(t, m.Addr())
	r.expect("220 ")
	r.write("HELO c\r\nMAIL FROM:<a@a.test>\r\nRCPT TO:<1@b.test>\r\nRCPT TO:<2@b.test>\r\nRCPT TO:<3@b.test>\r\nDATA\r\n")
	r.expect("250 ")
	r.expect("250 ")
	r.expect("250 ")
	r.expect("250 ")
	r.expect("452 4.5.3 ")
	r.expect("354 ")
	r.write("x\r\n.\r\n")
	r.expect("250 ")
	r.write("MAIL FROM:<a@a.test>\r\nRCPT TO:<3@b.test>\r\nDATA\r\n")
	r.expect("250 ")
	r.expect("250 ")
	r.expect("354 ")
	r.write("x\r\n.\r\n")
	r.expect("250 ")
	msgs := m.Messages()
	if len(msgs) != 2 || strings.Join(msgs[0].To, ",") != "1@b.test,2@b.test" || strings.Join(msgs[1].To, ",") != "3@b.test" {
		t.Fatalf("messages: %+v", msgs)
	}
}

// TestMXBreakTLS: STARTTLS is offered and accepted, then the handshake
// fails; without STARTTLS the same server delivers.
func TestMXBreakTLS(t *testing.T) {
	m := StartMX(t, "127.0.0.1", 0, Script{StartTLS: true, BreakTLS: true})
	c, err := smtp.Dial(m.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.StartTLS(&tls.Config{RootCAs: m.CertPool(), ServerName: "localhost"}); err == nil {
		t.Fatal("TLS handshake succeeded")
	}
	if err := deliver(m.Addr(), "a@a.test", []string{"x@b.test"}, "x\r\n"); err != nil {
		t.Fatalf("cleartext delivery: %v", err)
	}
	if msgs := m.Messages(); len(msgs) != 1 || msgs[0].TLS {
		t.Fatalf("messages: %+v", msgs)
	}
}
