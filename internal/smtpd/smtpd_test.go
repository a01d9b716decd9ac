package smtpd

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/testkit"
)

// recorder is a backend that accepts everything and records bodies.
type recorder struct {
	mu     sync.Mutex
	bodies []string
	froms  []Path
}

func (r *recorder) NewSession(c *Conn) Session { return &recSession{r: r} }

type recSession struct{ r *recorder }

func (s *recSession) AuthMechanisms() []string { return []string{"PLAIN", "LOGIN"} }
func (s *recSession) Auth(mech, id, user, pass string) error {
	if user == "u" && pass == "p" {
		return nil
	}
	return Reply(535, "5.7.8", "bad")
}
func (s *recSession) Mail(from Path, p MailParams) error {
	s.r.mu.Lock()
	s.r.froms = append(s.r.froms, from)
	s.r.mu.Unlock()
	return nil
}
func (s *recSession) Rcpt(to Path) error {
	if to.Addr.Local == "reject" {
		return Reply(550, "5.1.1", "no such user")
	}
	return nil
}
func (s *recSession) Data(body []byte) (*Error, error) {
	s.r.mu.Lock()
	s.r.bodies = append(s.r.bodies, string(body))
	s.r.mu.Unlock()
	return nil, nil
}
func (s *recSession) Reset() {}
func (s *recSession) Close() {}

func start(t *testing.T, cfg Config) (string, *recorder) {
	t.Helper()
	rec := &recorder{}
	if cfg.Hostname == "" {
		cfg.Hostname = "test.example"
	}
	if cfg.MaxMessageSize == 0 {
		cfg.MaxMessageSize = 1 << 20
	}
	if cfg.MaxRecipients == 0 {
		cfg.MaxRecipients = 5
	}
	cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := NewServer(cfg, rec)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return ln.Addr().String(), rec
}

// dialogue writes input in one go (pipelined) and returns the reply codes.
func dialogue(t *testing.T, addr, input string) []string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte(input))
	var codes []string
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return codes
		}
		if len(line) >= 4 && line[3] == ' ' {
			codes = append(codes, line[:3])
			if strings.HasPrefix(line, "221") {
				return codes
			}
		}
	}
}

func TestSequenceAndPipelining(t *testing.T) {
	addr, rec := start(t, Config{})
	got := dialogue(t, addr, "MAIL FROM:<a@b.example>\r\nEHLO c\r\nRCPT TO:<x@y.example>\r\nMAIL FROM:<a@b.example>\r\nMAIL FROM:<a@b.example>\r\n"+
		"RCPT TO:<reject@y.example>\r\nRCPT TO:<ok@y.example>\r\nDATA\r\nhello\r\n..dot\r\n.\r\nQUIT\r\n")
	want := "220 503 250 503 250 503 550 250 354 250 221"
	if strings.Join(got, " ") != want {
		t.Fatalf("codes %v, want %s", got, want)
	}
	if len(rec.bodies) != 1 || rec.bodies[0] != "hello\r\n.dot\r\n" {
		t.Fatalf("body %q", rec.bodies)
	}
}

func TestSmugglingSequencesDoNotEndData(t *testing.T) {
	for _, seq := range []string{"\n.\n", "\n.\r\n", "\r.\r", "\r\n\x00.\r\n", "\r\n.\n"} {
		addr, rec := start(t, Config{})
		body := "first" + seq + "MAIL FROM:<evil@x.example>\r\n"
		got := dialogue(t, addr, "EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<ok@y.example>\r\nDATA\r\n"+body+"\r\n.\r\nQUIT\r\n")
		if strings.Join(got, " ") != "220 250 250 250 354 250 221" {
			t.Fatalf("%q: codes %v", seq, got)
		}
		if len(rec.bodies) != 1 || !strings.Contains(rec.bodies[0], "evil") || len(rec.froms) != 1 {
			t.Fatalf("%q ended the message early: %q, %d MAILs", seq, rec.bodies, len(rec.froms))
		}
	}
}

func TestLimits(t *testing.T) {
	addr, rec := start(t, Config{MaxMessageSize: 100, MaxLineLength: 200, MaxErrors: 3})
	big := strings.Repeat("x", 60) + "\r\n" + strings.Repeat("y", 60) + "\r\n"
	got := dialogue(t, addr, "EHLO c\r\nMAIL FROM:<a@b.example> SIZE=1000\r\nMAIL FROM:<a@b.example> FOO=1\r\nMAIL FROM:<a@b.example>\r\n"+
		"RCPT TO:<ok@y.example>\r\nDATA\r\n"+big+".\r\nNOOP "+strings.Repeat("z", 300)+"\r\nNOOP\r\nQUIT\r\n")
	if strings.Join(got, " ") != "220 250 552 555 250 250 354 552 500 250 221" {
		t.Fatalf("codes %v", got)
	}
	if len(rec.bodies) != 0 {
		t.Fatal("oversized body reached the backend")
	}
	got = dialogue(t, addr, "FOO\r\nBAR\r\nBAZ\r\nNOOP\r\n")
	if strings.Join(got, " ") != "220 500 500 500 421" {
		t.Fatalf("too many errors: %v", got)
	}
}

func TestAuth(t *testing.T) {
	addr, _ := start(t, Config{})
	got := dialogue(t, addr, "AUTH PLAIN AHUAcA==\r\nEHLO c\r\nAUTH PLAIN AHUAeA==\r\nAUTH PLAIN !!\r\nAUTH LOGIN\r\ndQ==\r\ncA==\r\nAUTH PLAIN AHUAcA==\r\nQUIT\r\n")
	if strings.Join(got, " ") != "220 503 250 535 501 334 334 235 503 221" {
		t.Fatalf("codes %v", got)
	}
}

func TestStartTLSInjection(t *testing.T) {
	cert, _, err := testkit.NewCert("test.example")
	if err != nil {
		t.Fatal(err)
	}
	addr, rec := start(t, Config{TLS: &tls.Config{Certificates: []tls.Certificate{cert}}})
	// Commands pipelined behind STARTTLS must not be run.
	got := dialogue(t, addr, "EHLO c\r\nSTARTTLS\r\nMAIL FROM:<injected@x.example>\r\n")
	if strings.Join(got, " ") != "220 250 220" || len(rec.froms) != 0 {
		t.Fatalf("codes %v, MAILs %d", got, len(rec.froms))
	}
	// A proper upgrade works and starts the session over.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	readCode := func(r *bufio.Reader) string {
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if l[3] == ' ' {
				return l[:3]
			}
		}
	}
	readCode(r)
	c.Write([]byte("EHLO c\r\n"))
	readCode(r)
	c.Write([]byte("STARTTLS\r\n"))
	if code := readCode(r); code != "220" {
		t.Fatalf("STARTTLS: %s", code)
	}
	tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true})
	tr := bufio.NewReader(tc)
	tc.Write([]byte("MAIL FROM:<a@b.example>\r\n"))
	if code := readCode(tr); code != "503" {
		t.Fatalf("MAIL right after TLS (no new EHLO): %s", code)
	}
}

func TestPaths(t *testing.T) {
	for in, ok := range map[string]bool{"": true, "@": true, "a@b.example": true, `"a b"@c.example`: true,
		"@r1.example,@r2.example:a@b.example": true, "relay:a@b.example": true, "@b.example": false, "a@": false, "a": false} {
		p, err := parsePath(in, true)
		if (err == nil) != ok {
			t.Errorf("parsePath(%q) = %+v, %v", in, p, err)
		}
	}
	for in, want := range map[string]string{"<a@b.example> SIZE=1": "a@b.example", `"a b"@c.example SIZE=1`: `"a b"@c.example`, "<\"x>y\"@c.example>": "\"x>y\"@c.example"} {
		p, _, ok := splitPath(in)
		if !ok || p != want {
			t.Errorf("splitPath(%q) = %q %v", in, p, ok)
		}
	}
}

func FuzzCommandParsing(f *testing.F) {
	for _, s := range []string{"<a@b.example> SIZE=10 BODY=8BITMIME", `"a b"@c.d x=y`, "<@a,@b:c@d>", "<>", "<\"\\\">\"@x>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, rest, ok := splitPath(s)
		if !ok {
			return
		}
		if path, err := parsePath(p, true); err == nil && !path.Null && path.Addr.Domain == "" {
			t.Fatalf("accepted %q without a domain", p)
		}
		parseParams(rest)
	})
}

// TestCRLFAcrossBuffer: a data line whose CR ends the read buffer and whose
// LF starts the next read still ends the line, so the "." after it ends
// the message.
func TestCRLFAcrossBuffer(t *testing.T) {
	addr, rec := start(t, Config{MaxLineLength: 20000, MaxMessageSize: 1 << 20})
	line := strings.Repeat("a", 8191) + "\r\n"
	got := dialogue(t, addr, "EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<ok@y.example>\r\nDATA\r\n"+line+".\r\nQUIT\r\n")
	if strings.Join(got, " ") != "220 250 250 250 354 250 221" || len(rec.bodies) != 1 || rec.bodies[0] != line {
		t.Fatalf("codes %v, %d bodies", got, len(rec.bodies))
	}
}
