package testkit

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/smtp"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestMXDrops(t *testing.T) {
	m := StartMX(t, "127.0.0.1", 0, Script{DropDataAfter: 100})
	body := strings.Repeat("0123456789abcdef\r\n", 100)
	if err := deliver(m.Addr(), "a@a.test", []string{"x@b.test"}, body); err == nil {
		t.Error("drop mid-DATA: delivery succeeded")
	}
	if len(m.Attempts()) != 0 || m.Transactions() != 1 {
		t.Errorf("attempts %d transactions %d", len(m.Attempts()), m.Transactions())
	}

	m.SetScript(Script{DataCmd: Reply{Code: 354, Text: "go ahead", Close: true}})
	r := dialRaw(t, m.Addr())
	r.expect("220 ")
	r.write("EHLO c\r\nMAIL FROM:<a@a.test>\r\nRCPT TO:<b@b.test>\r\nDATA\r\n")
	r.expect("250 ENH")
	r.expect("250 ")
	r.expect("250 ")
	r.expect("354 go ahead")
	r.expectEOF()

	m.SetScript(Script{Greeting: Reply{Code: 220, Text: "hello", Close: true}})
	r = dialRaw(t, m.Addr())
	r.expect("220 hello")
	r.expectEOF()

	m.SetScript(Script{Greeting: Reply{Code: CodeDrop}})
	r = dialRaw(t, m.Addr())
	r.expectEOF()

	m.SetScript(Script{Greeting: Reply{Code: 554, Text: "5.7.1 go away"}})
	if _, err := smtp.Dial(m.Addr()); code(err) != 554 {
		t.Errorf("554 greeting: %v", err)
	}

	// Dropping instead of the RCPT reply flushes the replies due before.
	m.SetScript(Script{Rcpt: func(string) Reply { return Reply{Code: CodeDrop} }})
	r = dialRaw(t, m.Addr())
	r.expect("220 ")
	r.write("HELO c\r\nMAIL FROM:<a@a.test>\r\nRCPT TO:<b@b.test>\r\n")
	r.expect("250 ")
	r.expect("250 ")
	r.expectEOF()

	m.SetScript(Script{})
	if err := deliver(m.Addr(), "a@a.test", []string{"x@b.test"}, body); err != nil {
		t.Errorf("after drops: %v", err)
	}
	if msgs := m.Messages(); len(msgs) != 1 || string(msgs[0].Data) != body {
		t.Errorf("messages = %d", len(msgs))
	}
}

func TestMXStall(t *testing.T) {
	m := StartMX(t, "127.0.0.1", 0, Script{Stall: Stalls{Rcpt: 300 * time.Millisecond, EndOfData: 200 * time.Millisecond}})
	start := time.Now()
	if err := deliver(m.Addr(), "a@a.test", []string{"x@b.test", "y@b.test"}, "x\r\n"); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 800*time.Millisecond {
		t.Errorf("delivery took %v, want ≥ 800ms of stalls", d)
	}

	// A client with a short timeout gives up during a stall.
	m.SetScript(Script{Stall: Stalls{Ehlo: time.Hour}})
	r := dialRaw(t, m.Addr())
	r.expect("220 ")
	r.write("EHLO c\r\n")
	_ = r.c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	var ne net.Error
	if _, err := r.r.ReadString('\n'); !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("expected timeout during stall, got %v", err)
	}
	// Stop cuts stalls short.
	m.SetScript(Script{Stall: Stalls{Greeting: time.Hour}})
	r2 := dialRaw(t, m.Addr())
	if err := m.Wait(ctxT(t), func() bool { return m.ActiveConnections() == 2 }); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	m.Stop()
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Stop took %v", d)
	}
	r2.expectEOF()
	if m.ActiveConnections() != 0 {
		t.Errorf("active = %d after Stop", m.ActiveConnections())
	}
}

func TestMXRateLimit(t *testing.T) {
	m := StartMX(t, "127.0.0.1", 0, Script{RateLimit: RateLimit{Messages: 2, Window: time.Hour}})
	for i := range 3 {
		err := deliver(m.Addr(), "a@a.test", []string{"x@b.test"}, "x\r\n")
		if i < 2 && err != nil {
			t.Errorf("message %d: %v", i, err)
		}
		if i == 2 && (code(err) != 421 || !strings.Contains(err.Error(), "4.7.28")) {
			t.Errorf("message 3: %v, want 421 4.7.28", err)
		}
	}
	if n := len(m.Messages()); n != 2 {
		t.Errorf("%d accepted", n)
	}

	// Concurrent senders: exactly the limit gets through.
	m2 := StartMX(t, "127.0.0.1", 0, Script{
		RateLimit: RateLimit{Messages: 3, Window: time.Hour, AtEndOfData: true},
		Data: func(*Message, int) Reply {
			time.Sleep(50 * time.Millisecond) // widen the race window
			return Reply{}
		},
	})
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() { _ = deliver(m2.Addr(), "a@a.test", []string{"x@b.test"}, "x\r\n") })
	}
	wg.Wait()
	if n := len(m2.Messages()); n != 3 {
		t.Errorf("concurrent: %d accepted, want 3", n)
	}
	if n := len(m2.Attempts()); n != 10 {
		t.Errorf("concurrent: %d attempts, want 10", n)
	}

	// Sliding window, and a custom reply that keeps the connection.
	m3 := StartMX(t, "127.0.0.1", 0, Script{RateLimit: RateLimit{Messages: 1, Window: 300 * time.Millisecond,
		Reply: Reply{Code: 450, Text: "4.7.28 slow down"}}})
	c, err := smtp.Dial(m3.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := send(c, "a@a.test", []string{"x@b.test"}, "1\r\n"); err != nil {
		t.Fatal(err)
	}
	if err := send(c, "a@a.test", []string{"x@b.test"}, "2\r\n"); code(err) != 450 {
		t.Fatalf("second within window: %v", err)
	}
	time.Sleep(350 * time.Millisecond) // the window (300ms) passing is what is tested; no event to wait on
	if err := send(c, "a@a.test", []string{"x@b.test"}, "3\r\n"); err != nil {
		t.Errorf("after window: %v", err)
	}
	if msgs := m3.Messages(); len(msgs) != 2 || msgs[0].Conn != msgs[1].Conn || msgs[1].Txn != 2 {
		t.Errorf("messages = %+v", msgs)
	}
}

func TestMXMaxConns(t *testing.T) {
	m := StartMX(t, "127.0.0.1", 0, Script{MaxConns: 2})
	r1, r2 := dialRaw(t, m.Addr()), dialRaw(t, m.Addr())
	r1.expect("220 ")
	r2.expect("220 ")
	r3 := dialRaw(t, m.Addr())
	r3.expect("421 4.7.0")
	r3.expectEOF()
	r1.write("QUIT\r\n")
	r1.expect("221 ")
	if err := m.Wait(ctxT(t), func() bool { return m.ActiveConnections() == 1 }); err != nil {
		t.Fatal(err)
	}
	r4 := dialRaw(t, m.Addr())
	r4.expect("220 ")
	if m.Connections() != 4 || m.MaxActiveConnections() != 3 {
		t.Errorf("connections %d max active %d", m.Connections(), m.MaxActiveConnections())
	}
}

func TestMXStartTLS(t *testing.T) {
	m := StartMX(t, "127.0.0.2", 0, Script{StartTLS: true, RequireTLS: true})
	c, err := smtp.Dial(m.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("c.test"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := c.Extension("STARTTLS"); !ok {
		t.Fatal("STARTTLS not advertised")
	}
	if err := c.Mail("a@a.test"); code(err) != 530 {
		t.Errorf("MAIL before STARTTLS: %v, want 530", err)
	}
	if err := c.StartTLS(&tls.Config{ServerName: "127.0.0.2", RootCAs: m.CertPool()}); err != nil {
		t.Fatal(err)
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		t.Error("STARTTLS advertised again inside TLS")
	}
	if err := send(c, "a@a.test", []string{"x@b.test"}, "secret\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = c.Quit()
	msgs := m.Messages()
	if len(msgs) != 1 || !msgs[0].TLS || string(msgs[0].Data) != "secret\r\n" {
		t.Errorf("messages = %+v", msgs)
	}

	// Plaintext pipelined after STARTTLS is an injection: hang up.
	r := dialRaw(t, m.Addr())
	r.expect("220 ")
	r.write("EHLO c\r\n")
	r.expect("250 ")
	r.write("STARTTLS\r\nMAIL FROM:<evil@x>\r\n")
	r.expect("220 ")
	r.expectEOF()
}

// loginAuth is the AUTH LOGIN mechanism, which net/smtp lacks.
type loginAuth struct{ user, pass string }

func (a loginAuth) Start(*smtp.ServerInfo) (string, []byte, error) { return "LOGIN", nil, nil }

func (a loginAuth) Next(from []byte, more bool) ([]byte, error) {
	switch {
	case !more:
		return nil, nil
	case string(from) == "Username:":
		return []byte(a.user), nil
	case string(from) == "Password:":
		return []byte(a.pass), nil
	}
	return nil, fmt.Errorf("unexpected challenge %q", from)
}

func TestMXAuth(t *testing.T) {
	m := StartMX(t, "127.0.0.1", 0, Script{Auth: map[string]string{"user": "pw"}, RequireAuth: true})
	for _, c := range []struct {
		name string
		auth smtp.Auth
		want int
	}{
		{"plain", smtp.PlainAuth("", "user", "pw", "127.0.0.1"), 0},
		{"login", loginAuth{"user", "pw"}, 0},
		{"bad password", smtp.PlainAuth("", "user", "nope", "127.0.0.1"), 535},
		{"bad login", loginAuth{"who", "pw"}, 535},
		{"none", nil, 530},
	} {
		t.Run(c.name, func(t *testing.T) {
			cl, err := smtp.Dial(m.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			if err := cl.Hello("c.test"); err != nil {
				t.Fatal(err)
			}
			if c.auth != nil {
				err = cl.Auth(c.auth)
			}
			if err == nil {
				err = send(cl, "a@a.test", []string{"x@b.test"}, c.name+"\r\n")
			}
			if code(err) != c.want {
				t.Fatalf("got %v, want code %d", err, c.want)
			}
		})
	}
	msgs := m.Messages()
	if len(msgs) != 2 || msgs[0].AuthUser != "user" || msgs[1].AuthUser != "user" {
		t.Errorf("messages = %+v", msgs)
	}

	// Initial responses, and cancelling.
	r := dialRaw(t, m.Addr())
	r.expect("220 ")
	r.write("EHLO c\r\n")
	r.expect("250 ")
	r.write("AUTH LOGIN\r\n")
	r.expect("334 VXNlcm5hbWU6")
	r.write("*\r\n")
	r.expect("501 ")
	r.write("AUTH CRAM-MD5\r\n")
	r.expect("504 ")
	r.write("AUTH PLAIN\r\n")
	if got := r.reply(); got[0] != "334 " {
		t.Errorf("empty challenge = %q", got)
	}
	r.write(base64.StdEncoding.EncodeToString([]byte("\x00user\x00pw")) + "\r\n")
	r.expect("235 2.7.0")
	r.write("AUTH PLAIN\r\n")
	r.expect("503 ")
}

func TestMXSamePortSeveralIPs(t *testing.T) {
	group := StartMXGroup(t, Script{}, "127.0.0.2", "127.0.0.3")
	port := group[0].Port()
	if group[1].Port() != port || group[1].Addr() != fmt.Sprintf("127.0.0.3:%d", port) {
		t.Fatalf("ports %d %d", port, group[1].Port())
	}
	extra := StartMX(t, "127.0.0.4", FreePort(t), Script{Hostname: "mx4"})
	third := StartMX(t, "127.0.0.5", extra.Port(), Script{})
	for _, m := range append(group, extra, third) {
		if err := deliver(m.Addr(), "a@a.test", []string{"to@" + m.IP()}, "for "+m.IP()+"\r\n"); err != nil {
			t.Fatalf("%s: %v", m.Addr(), err)
		}
	}
	for _, m := range append(group, extra, third) {
		msgs := m.Messages()
		if len(msgs) != 1 || msgs[0].To[0] != "to@"+m.IP() || m.Connections() != 1 {
			t.Errorf("%s got %+v", m.Addr(), msgs)
		}
	}
}

func TestMXStopRestart(t *testing.T) {
	m, err := NewMX("127.0.0.1", 0, Script{})
	if err != nil {
		t.Fatal(err)
	}
	if err := deliver(m.Addr(), "a@a.test", []string{"x@b.test"}, "1\r\n"); err != nil {
		t.Fatal(err)
	}
	m.Stop()
	m.Stop()
	if c, err := net.DialTimeout("tcp", m.Addr(), time.Second); err == nil {
		c.Close()
		t.Fatal("connected to a stopped server")
	}
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	if err := deliver(m.Addr(), "a@a.test", []string{"x@b.test"}, "2\r\n"); err != nil {
		t.Fatal(err)
	}
	r := dialRaw(t, m.Addr())
	r.expect("220 ")
	if err := m.Restart(); err != nil {
		t.Fatal(err)
	}
	r.expectEOF()
	if msgs := m.Messages(); len(msgs) != 2 || msgs[1].Conn != 2 || m.Connections() != 3 {
		t.Errorf("records lost across restart: %d messages, %d connections", len(msgs), m.Connections())
	}
	m.ClearRecords()
	if len(m.Messages()) != 0 || m.Connections() != 0 || len(m.Commands()) != 0 {
		t.Error("ClearRecords kept records")
	}
	m.Close()
	m.Close()
	if err := m.Start(); err == nil {
		t.Error("Start after Close succeeded")
	}
	if _, err := net.DialTimeout("tcp", m.Addr(), time.Second); err == nil {
		t.Error("connected to a closed server")
	}
}

func TestMXLimits(t *testing.T) {
	m := StartMX(t, "127.0.0.1", 0, Script{MaxSize: 120, MaxLineLength: 50})
	r := dialRaw(t, m.Addr())
	r.expect("220 ")
	r.write("EHLO " + strings.Repeat("x", 5000) + "\r\nEHLO c\r\n")
	r.expect("500 5.5.2")
	r.expect("250 ")
	r.write("MAIL FROM:<a@a.test> SIZE=121\r\n")
	r.expect("552 5.3.4")
	send := func(data string) {
		r.write("MAIL FROM:<a@a.test>\r\nRCPT TO:<b@b.test>\r\nDATA\r\n")
		r.expect("250 ")
		r.expect("250 ")
		r.expect("354 ")
		r.write(data + ".\r\n")
	}
	send(strings.Repeat("0123456789\r\n", 9))
	r.expect("250 ")
	send(strings.Repeat("0123456789\r\n", 11))
	r.expect("552 5.3.4 Message size")
	send(strings.Repeat("x", 60) + "\r\n")
	r.expect("552 5.3.4 Message line")
	send("bare\nlf\r\n")
	r.expect("250 ")
	if msgs := m.Messages(); len(msgs) != 2 || len(msgs[0].Data) != 108 || !msgs[1].BareLF || msgs[0].BareLF {
		t.Errorf("messages = %+v", msgs)
	}
	if n := len(m.Attempts()); n != 4 {
		t.Errorf("%d attempts", n)
	}
}

func TestMXIdleTimeoutAndHELOFallback(t *testing.T) {
	m := StartMX(t, "127.0.0.1", 0, Script{IdleTimeout: 200 * time.Millisecond, Ehlo: Reply{Code: 502, Text: "5.5.1 no EHLO"}})
	r := dialRaw(t, m.Addr())
	r.expect("220 ")
	r.expectEOF()

	m.SetScript(Script{Ehlo: Reply{Code: 502, Text: "5.5.1 no EHLO"}})
	if err := deliver(m.Addr(), "a@a.test", []string{"x@b.test"}, "x\r\n"); err != nil {
		t.Fatal(err)
	}
	if msgs := m.Messages(); len(msgs) != 1 || msgs[0].Helo != "client.test" || len(msgs[0].MailParams) != 0 {
		t.Errorf("messages = %+v", msgs)
	}
}

func TestMXWaitTimeout(t *testing.T) {
	m := StartMX(t, "127.0.0.1", 0, Script{})
	ctx := ctxT(t)
	go func() {
		time.Sleep(100 * time.Millisecond) // deliver after WaitMessages started waiting
		_ = deliver(m.Addr(), "a@a.test", []string{"x@b.test"}, "x\r\n")
	}()
	if msgs, err := m.WaitMessages(ctx, 1); err != nil || len(msgs) != 1 {
		t.Fatalf("wait: %v %d", err, len(msgs))
	}
	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if msgs, err := m.WaitMessages(short, 2); err == nil || len(msgs) != 1 {
		t.Errorf("wait for 2: %v %d", err, len(msgs))
	}
}
