package testkit

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/smtp"
	"net/textproto"
	"slices"
	"strings"
	"testing"
	"time"
)

// deliver sends one message with net/smtp on a new connection, returning
// the first error (a *textproto.Error for SMTP replies). Recipients that
// are refused are skipped, as a real client would.
func deliver(addr, from string, to []string, body string) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		return err
	}
	if err := send(c, from, to, body); err != nil {
		return err
	}
	return c.Quit()
}

func send(c *smtp.Client, from string, to []string, body string) error {
	if err := c.Mail(from); err != nil {
		return err
	}
	var rcptErr error
	ok := 0
	for _, r := range to {
		if err := c.Rcpt(r); err != nil {
			rcptErr = err
			continue
		}
		ok++
	}
	if ok == 0 {
		return rcptErr
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write([]byte(body)); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return rcptErr
}

func code(err error) int {
	var te *textproto.Error
	if errors.As(err, &te) {
		return te.Code
	}
	return 0
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// raw is a hand-driven client connection for wire-level checks.
type raw struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *raw {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	return &raw{t: t, c: c, r: bufio.NewReader(c)}
}

func (r *raw) write(s string) {
	r.t.Helper()
	if _, err := r.c.Write([]byte(s)); err != nil {
		r.t.Fatal(err)
	}
}

// reply reads one (possibly multi-line) reply as its lines.
func (r *raw) reply() []string {
	r.t.Helper()
	var lines []string
	for {
		l, err := r.r.ReadString('\n')
		if err != nil {
			r.t.Fatalf("reading reply after %q: %v", lines, err)
		}
		if !strings.HasSuffix(l, "\r\n") {
			r.t.Fatalf("reply line without CRLF: %q", l)
		}
		l = strings.TrimSuffix(l, "\r\n")
		lines = append(lines, l)
		if len(l) < 4 || l[3] == ' ' {
			return lines
		}
	}
}

// expect reads one reply and checks its last line starts with prefix.
func (r *raw) expect(prefix string) []string {
	r.t.Helper()
	lines := r.reply()
	if !strings.HasPrefix(lines[len(lines)-1], prefix) {
		r.t.Fatalf("got %q, want %q...", lines, prefix)
	}
	return lines
}

func (r *raw) expectEOF() {
	r.t.Helper()
	if l, err := r.r.ReadString('\n'); err == nil {
		r.t.Fatalf("connection still open, got %q", l)
	}
}

func TestMXAcceptRecordsMessage(t *testing.T) {
	m := StartMX(t, "127.0.0.1", 0, Script{})
	body := "Subject: hi\n\nline one\n.leading dot\n..two dots\n.\nend\n"
	if err := deliver(m.Addr(), "from@a.test", []string{"x@b.test", "y@b.test"}, body); err != nil {
		t.Fatal(err)
	}
	msgs, err := m.WaitMessages(ctxT(t), 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 {
		t.Fatalf("%d messages", len(msgs))
	}
	g := msgs[0]
	wantData := "Subject: hi\r\n\r\nline one\r\n.leading dot\r\n..two dots\r\n.\r\nend\r\n"
	if string(g.Data) != wantData {
		t.Errorf("data = %q, want %q", g.Data, wantData)
	}
	if g.From != "from@a.test" || !slices.Equal(g.To, []string{"x@b.test", "y@b.test"}) {
		t.Errorf("envelope = %q %q", g.From, g.To)
	}
	if g.Helo != "client.test" || g.TLS || g.AuthUser != "" || g.Conn != 1 || g.Txn != 1 || g.Attempt != 1 || g.BareLF {
		t.Errorf("message = %+v", g)
	}
	if !slices.Contains(g.MailParams, "BODY=8BITMIME") || !slices.Contains(g.MailParams, "SMTPUTF8") {
		t.Errorf("MAIL params = %q", g.MailParams)
	}
	if g.Reply.Code != 250 || time.Since(g.Time) > time.Minute {
		t.Errorf("reply %v time %v", g.Reply, g.Time)
	}
	if m.Connections() != 1 || m.Transactions() != 1 || len(m.Attempts()) != 1 {
		t.Errorf("connections %d transactions %d attempts %d", m.Connections(), m.Transactions(), len(m.Attempts()))
	}
	var verbs []string
	for _, c := range m.Commands() {
		verb, _, _ := strings.Cut(c.Line, " ")
		verbs = append(verbs, verb)
		if c.Conn != 1 {
			t.Errorf("command %q on conn %d", c.Line, c.Conn)
		}
	}
	if want := []string{"EHLO", "MAIL", "RCPT", "RCPT", "DATA", "QUIT"}; !slices.Equal(verbs, want) {
		t.Errorf("commands %v, want %v", verbs, want)
	}
	if err := m.Wait(ctxT(t), func() bool { return m.ActiveConnections() == 0 }); err != nil {
		t.Errorf("connection not closed after QUIT: %v", err)
	}
	if m.MaxActiveConnections() != 1 {
		t.Errorf("max active = %d", m.MaxActiveConnections())
	}
}

func TestMXEHLOAdvertisement(t *testing.T) {
	m := StartMX(t, "127.0.0.1", 0, Script{Hostname: "mx.example.test", MaxSize: 1000})
	r := dialRaw(t, m.Addr())
	if g := r.expect("220 "); g[0] != "220 mx.example.test ESMTP testkit" {
		t.Errorf("greeting %q", g)
	}
	r.write("EHLO me.test\r\n")
	got := r.expect("250 ")
	want := []string{"250-mx.example.test greets me.test", "250-PIPELINING", "250-8BITMIME", "250-SMTPUTF8", "250-SIZE 1000", "250 ENHANCEDSTATUSCODES"}
	if !slices.Equal(got, want) {
		t.Errorf("EHLO reply\n got %q\nwant %q", got, want)
	}
	m.SetScript(Script{StartTLS: true, Auth: map[string]string{"u": "p"}, OmitExtensions: []string{"pipelining", "SIZE"}})
	r.write("EHLO me.test\r\n")
	got = r.expect("250 ")
	want = []string{"250-mx-127-0-0-1.testkit greets me.test", "250-8BITMIME", "250-SMTPUTF8", "250-ENHANCEDSTATUSCODES", "250-STARTTLS", "250 AUTH PLAIN LOGIN"}
	if !slices.Equal(got, want) {
		t.Errorf("EHLO reply\n got %q\nwant %q", got, want)
	}
	r.write("QUIT\r\n")
	r.expect("221 2.0.0")
	r.expectEOF()
}

func TestMXPipelining(t *testing.T) {
	m := StartMX(t, "127.0.0.1", 0, Script{RcptReplies: map[string]Reply{"Bad@B.test": {Code: 550, Text: "5.1.1 no such user"}}})
	r := dialRaw(t, m.Addr())
	r.expect("220 ")
	// Everything up to DATA in one write, as a PIPELINING client does.
	r.write("EHLO c.test\r\nMAIL FROM:<a@a.test> SIZE=20\r\nRCPT TO:<x@b.test>\r\nRCPT TO:<bad@b.test>\r\nRCPT TO:<y@b.test>\r\nDATA\r\n")
	r.expect("250 ENHANCEDSTATUSCODES")
	r.expect("250 2.1.0")
	r.expect("250 2.1.5")
	r.expect("550 5.1.1 no such user")
	r.expect("250 2.1.5")
	r.expect("354 ")
	// Data, then a second transaction on the same connection, in one write.
	r.write("one\r\n..dot\r\n.\r\nMAIL FROM:<>\r\nRCPT TO:<z@b.test>\r\nDATA\r\n")
	r.expect("250 2.0.0 OK queued as 1.1")
	r.expect("250 2.1.0")
	r.expect("250 2.1.5")
	r.expect("354 ")
	r.write("two\r\n.\r\nRSET\r\nNOOP\r\nRCPT TO:<q@b.test>\r\nBOGUS\r\nQUIT\r\n")
	r.expect("250 2.0.0 OK queued as 1.2")
	r.expect("250 2.0.0")
	r.expect("250 2.0.0")
	r.expect("503 5.5.1")
	r.expect("500 5.5.2")
	r.expect("221 ")
	r.expectEOF()

	msgs := m.Messages()
	if len(msgs) != 2 {
		t.Fatalf("%d messages", len(msgs))
	}
	if string(msgs[0].Data) != "one\r\n.dot\r\n" || !slices.Equal(msgs[0].To, []string{"x@b.test", "y@b.test"}) || !slices.Equal(msgs[0].MailParams, []string{"SIZE=20"}) {
		t.Errorf("first = %+v", msgs[0])
	}
	if msgs[1].From != "" || string(msgs[1].Data) != "two\r\n" || msgs[1].Conn != msgs[0].Conn || msgs[1].Txn != 2 {
		t.Errorf("second = %+v", msgs[1])
	}
	if m.Transactions() != 2 || m.Resets() != 1 || m.Connections() != 1 {
		t.Errorf("transactions %d resets %d connections %d", m.Transactions(), m.Resets(), m.Connections())
	}
	if n := len(m.Commands()); n != 14 {
		t.Errorf("%d commands logged, want 14: %v", n, m.Commands())
	}
}

func TestMXSequenceErrors(t *testing.T) {
	m := StartMX(t, "127.0.0.1", 0, Script{Rcpt: func(rcpt string) Reply {
		if strings.HasPrefix(rcpt, "no") {
			return Reply{Code: 550, Text: "5.1.1 unknown"}
		}
		return Reply{}
	}})
	r := dialRaw(t, m.Addr())
	r.expect("220 ")
	r.write("MAIL FROM:<a@a.test>\r\n")
	r.expect("503 5.5.1")
	r.write("HELO\r\n")
	r.expect("501 ")
	r.write("HELO c.test\r\n")
	if g := r.expect("250 "); len(g) != 1 {
		t.Errorf("HELO reply %q", g)
	}
	r.write("RCPT TO:<x@b.test>\r\n")
	r.expect("503 ")
	r.write("DATA\r\n")
	r.expect("503 ")
	r.write("MAIL FROM:a@a.test\r\n")
	r.expect("501 ")
	r.write("MAIL FROM:<a@a.test>\r\n")
	r.expect("250 ")
	r.write("MAIL FROM:<a@a.test>\r\n")
	r.expect("503 ")
	r.write("RCPT TO:<no1@b.test>\r\nDATA\r\n")
	r.expect("550 5.1.1 unknown")
	r.expect("554 5.5.1 No valid recipients")
	r.write("STARTTLS\r\nAUTH PLAIN\r\nVRFY x\r\nHELP\r\n")
	r.expect("502 ")
	r.expect("502 ")
	r.expect("252 ")
	r.expect("214 ")
	if len(m.Messages()) != 0 || m.Transactions() != 1 {
		t.Errorf("messages %d transactions %d", len(m.Messages()), m.Transactions())
	}
}

func TestMXPerRecipientReject(t *testing.T) {
	m := StartMX(t, "127.0.0.1", 0, Script{RcptReplies: map[string]Reply{
		"bad@b.test":  {Code: 550, Text: "5.1.1 no such user\n5.1.1 really not"},
		"full@b.test": {Code: 452, Text: "4.2.2 mailbox full"},
	}})
	c, err := smtp.Dial(m.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Mail("a@a.test"); err != nil {
		t.Fatal(err)
	}
	err = c.Rcpt("bad@b.test")
	var te *textproto.Error
	if !errors.As(err, &te) || te.Code != 550 || te.Msg != "5.1.1 no such user\n5.1.1 really not" {
		t.Errorf("bad rcpt: %#v", err)
	}
	if err := c.Rcpt("full@b.test"); code(err) != 452 {
		t.Errorf("full rcpt: %v", err)
	}
	if err := c.Rcpt("good@b.test"); err != nil {
		t.Errorf("good rcpt: %v", err)
	}
	w, _ := c.Data()
	fmt.Fprint(w, "hello\r\n")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	_ = c.Quit()
	msgs := m.Messages()
	if len(msgs) != 1 || !slices.Equal(msgs[0].To, []string{"good@b.test"}) {
		t.Errorf("messages = %+v", msgs)
	}
}

func TestMXDataRetry(t *testing.T) {
	m := StartMX(t, "127.0.0.1", 0, Script{DataReplies: []Reply{{Code: 451, Text: "4.3.0 try again"}}})
	err := deliver(m.Addr(), "a@a.test", []string{"x@b.test"}, "body\r\n")
	if code(err) != 451 {
		t.Fatalf("first attempt: %v, want 451", err)
	}
	if err := deliver(m.Addr(), "a@a.test", []string{"x@b.test"}, "body\r\n"); err != nil {
		t.Fatalf("second attempt: %v", err)
	}
	att := m.Attempts()
	if len(att) != 2 || att[0].Reply.Code != 451 || att[1].Reply.Code != 250 || att[1].Attempt != 2 || att[1].Conn != 2 {
		t.Errorf("attempts = %+v", att)
	}
	if msgs := m.Messages(); len(msgs) != 1 || msgs[0].Attempt != 2 {
		t.Errorf("messages = %+v", msgs)
	}

	// The same with a func, which sees the message; SetScript restarts the count.
	m.SetScript(Script{Data: func(msg *Message, attempt int) Reply {
		if strings.Contains(string(msg.Data), "reject") {
			return Reply{Code: 554, Text: "5.7.1 content rejected"}
		}
		if attempt == 1 {
			return Reply{Code: 421, Text: "4.4.2 bye", Close: true}
		}
		return Reply{}
	}})
	if err := deliver(m.Addr(), "a@a.test", []string{"x@b.test"}, "x\r\n"); code(err) != 421 {
		t.Errorf("attempt 1: %v", err)
	}
	if err := deliver(m.Addr(), "a@a.test", []string{"x@b.test"}, "please reject\r\n"); code(err) != 554 {
		t.Errorf("content: %v", err)
	}
	if err := deliver(m.Addr(), "a@a.test", []string{"x@b.test"}, "x\r\n"); err != nil {
		t.Errorf("attempt 3: %v", err)
	}
	if n := len(m.Messages()); n != 2 {
		t.Errorf("%d accepted, want 2", n)
	}
}
