package e2e

import (
	"strings"
	"testing"
)

const smallLimits = `
[smtp]
max_message_size = 20000
max_recipients = 5
max_line_length = 1000
max_auth_failures = 3
max_errors = 4
`

// expect runs one command and checks the reply code and, when given, the
// enhanced status code.
func expect(t *testing.T, c *Conn, line string, code int, enhanced string) {
	t.Helper()
	text, err := c.Cmd(code, line)
	if err != nil {
		t.Fatalf("%v", err)
	}
	if enhanced != "" && !strings.Contains(text, " "+enhanced+" ") {
		t.Fatalf("%s: reply %q lacks %s", clip(line), text, enhanced)
	}
}

func TestSubmissionPolicy(t *testing.T) {
	in := Start(t, Options{Config: smallLimits})

	t.Run("no open relay", func(t *testing.T) {
		c, err := Dial(in.SMTP)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		expect(t, c, "EHLO relay.test", 250, "")
		expect(t, c, "MAIL FROM:<spammer@relay.test>", 530, "5.7.0")
		// Without a sender there is no transaction to add to.
		if text, _ := c.Cmd(0, "RCPT TO:<victim@example.com>"); !strings.HasPrefix(text, "5") {
			t.Fatalf("RCPT without MAIL: %q", text)
		}
	})

	t.Run("auth failures", func(t *testing.T) {
		c, err := Dial(in.SMTP)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		expect(t, c, "EHLO client.test", 250, "")
		expect(t, c, "AUTH PLAIN "+plain(in.Creds.SMTPUsername, "wrong"), 535, "5.7.8")
		expect(t, c, "AUTH PLAIN "+plain("nobody", "wrong"), 535, "5.7.8")
		expect(t, c, "AUTH PLAIN !!!notbase64", 501, "5.5.2") // RFC 4954 §4
		expect(t, c, "AUTH CRAM-MD5", 504, "")
		expect(t, c, "MAIL FROM:<a@b.test>", 530, "5.7.0")
	})

	t.Run("auth login", func(t *testing.T) {
		c, err := Dial(in.SMTP)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		expect(t, c, "EHLO client.test", 250, "")
		expect(t, c, "AUTH LOGIN", 334, "")
		expect(t, c, b64(in.Creds.SMTPUsername), 334, "")
		expect(t, c, b64(in.Creds.SMTPPassword), 235, "")
		expect(t, c, "MAIL FROM:<a@b.test>", 250, "")
	})

	authed := func(t *testing.T) *Conn {
		c, err := Dial(in.SMTP)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		expect(t, c, "EHLO client.test", 250, "")
		expect(t, c, "AUTH PLAIN "+plain(in.Creds.SMTPUsername, in.Creds.SMTPPassword), 235, "")
		return c
	}

	t.Run("bad addresses", func(t *testing.T) {
		c := authed(t)
		for _, bad := range []string{"MAIL FROM:<a b@c.test>", "MAIL FROM:<a@-bad-.test>", "MAIL FROM:<user>", "MAIL FROM:<a..b@c.test>"} {
			text, err := c.Cmd(0, bad)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(text, "5") {
				t.Errorf("%s: got %q, want 5xx", bad, text)
			}
		}
		expect(t, c, "MAIL FROM:<ok@sender.test>", 250, "")
		for _, bad := range []string{"RCPT TO:<>", "RCPT TO:<user%other@relay.test@x>", "RCPT TO:<a@[300.0.0.1]>", "RCPT TO:<üser@example.com>", "RCPT TO:<x@y.test> FOO=BAR"} {
			text, err := c.Cmd(0, bad)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(text, "5") {
				t.Errorf("%s: got %q, want 5xx", bad, text)
			}
		}
	})

	t.Run("too many recipients", func(t *testing.T) {
		c := authed(t)
		expect(t, c, "MAIL FROM:<ok@sender.test>", 250, "")
		for i := 0; i < 5; i++ {
			expect(t, c, "RCPT TO:<r"+string(rune('a'+i))+"@example.com>", 250, "")
		}
		expect(t, c, "RCPT TO:<one-too-many@example.com>", 452, "4.5.3")
	})

	t.Run("oversized", func(t *testing.T) {
		c := authed(t)
		expect(t, c, "MAIL FROM:<ok@sender.test> SIZE=30000", 552, "5.3.4")
		expect(t, c, "MAIL FROM:<ok@sender.test>", 250, "")
		expect(t, c, "RCPT TO:<r@example.com>", 250, "")
		expect(t, c, "DATA", 354, "")
		big := strings.Repeat(strings.Repeat("x", 100)+"\r\n", 300)
		expect(t, c, "Subject: big\r\n\r\n"+big+".", 552, "5.3.4")
		// The session is still usable.
		expect(t, c, "NOOP", 250, "")
	})

	t.Run("NUL in data", func(t *testing.T) {
		c := authed(t)
		expect(t, c, "MAIL FROM:<ok@sender.test>", 250, "")
		expect(t, c, "RCPT TO:<r@example.com>", 250, "")
		expect(t, c, "DATA", 354, "")
		expect(t, c, "Subject: nul\r\n\r\nbad \x00 byte\r\n.", 554, "5.6.0")
	})

	t.Run("line too long", func(t *testing.T) {
		c := authed(t)
		text, err := c.Cmd(0, "NOOP "+strings.Repeat("x", 3000))
		if err == nil && !strings.HasPrefix(text, "5") {
			t.Fatalf("long line: got %q", text)
		}
	})

	t.Run("unknown commands end the session", func(t *testing.T) {
		c, err := Dial(in.SMTP)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for i := 0; i < 3; i++ {
			if text, _ := c.Cmd(0, "BOGUS"); !strings.HasPrefix(text, "50") {
				t.Fatalf("BOGUS: %q", text)
			}
		}
		c.Write("BOGUS\r\n")
		closed, said421 := false, false
		for i := 0; i < 4 && !closed; i++ {
			code, _, err := c.Read()
			closed = err != nil
			said421 = said421 || code == 421
		}
		if !closed || !said421 {
			t.Fatalf("after 4 bad commands: closed %v, 421 sent %v", closed, said421)
		}
	})

	t.Run("lockout after failures", func(t *testing.T) {
		c, err := Dial(in.SMTP)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		expect(t, c, "EHLO client.test", 250, "")
		// Two failures above already counted for this IP; one more reaches 3.
		c.Cmd(535, "AUTH PLAIN "+plain(in.Creds.SMTPUsername, "wrong"))
		expect(t, c, "AUTH PLAIN "+plain(in.Creds.SMTPUsername, in.Creds.SMTPPassword), 421, "4.7.0")
	})

	// Nothing above was queued.
	var list struct {
		Count int `json:"count"`
	}
	in.CLI(&list, "queue", "list", "--state", "all")
	if list.Count != 0 {
		t.Fatalf("bad input queued %d deliveries", list.Count)
	}
}
