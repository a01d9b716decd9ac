package smtpscript

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

func TestReadReply(t *testing.T) {
	long := "250 " + strings.Repeat("x", MaxReplyLine)
	cases := []struct {
		in    string
		code  int
		lines int
		err   error // nil, io.EOF, io.ErrUnexpectedEOF or ErrMalformedReply
	}{
		{"220 hello\r\n", 220, 1, nil},
		{"250-a\r\n250-b\r\n250 c\r\nextra", 250, 3, nil},
		{"250\r\n", 250, 1, nil},
		{"250 bare lf\n", 250, 1, nil},
		{"250-a\n250 b\n", 250, 2, nil},
		{"", 0, 0, io.EOF},
		{"250-a\r\n", 250, 1, io.ErrUnexpectedEOF},
		{"250 partial", 0, 0, io.ErrUnexpectedEOF},
		{"250-a\r\n251 b\r\n", 250, 2, ErrMalformedReply},
		{"25\r\n", 0, 1, ErrMalformedReply},
		{"150 too low\r\n", 0, 1, ErrMalformedReply},
		{"650 too high\r\n", 0, 1, ErrMalformedReply},
		{"2x0 no\r\n", 0, 1, ErrMalformedReply},
		{"250_x\r\n", 0, 1, ErrMalformedReply},
		{"250 a\x00b\r\n", 0, 1, ErrMalformedReply},
		{long + "\r\n", 0, 0, ErrMalformedReply},
	}
	for _, c := range cases {
		r := bufio.NewReaderSize(strings.NewReader(c.in), 16)
		rep, err := ReadReply(r)
		switch {
		case c.err == nil && err != nil:
			t.Errorf("ReadReply(%q): %v", c.in, err)
		case c.err != nil && !errors.Is(err, c.err):
			t.Errorf("ReadReply(%q) error %v, want %v", c.in, err, c.err)
		}
		if rep.Code != c.code || len(rep.Lines) != c.lines {
			t.Errorf("ReadReply(%q) = %d %q, want code %d with %d lines", c.in, rep.Code, rep.Lines, c.code, c.lines)
		}
	}
	// Lines are returned without line endings and the rest stays buffered.
	r := bufio.NewReader(strings.NewReader("250-a\r\n250 b\r\n354 go\r\n"))
	rep, _ := ReadReply(r)
	if rep.String() != "250-a | 250 b" || !rep.Multiline() {
		t.Errorf("reply %q", rep.String())
	}
	if rep, _ = ReadReply(r); rep.Code != 354 {
		t.Errorf("second reply %+v", rep)
	}
}

// runSrc parses src and runs it against addr with a short timeout.
func runSrc(t *testing.T, addr, src string) []CaseResult {
	t.Helper()
	s, err := Parse("fake.scr", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return s.Run(ctx, Target{Addr: addr, Timeout: 300 * time.Millisecond})
}

func TestRunAgainstFake(t *testing.T) {
	f := &fakeSMTP{greeting: "220-fake\r\n220 multiline greeting\r\n", respond: okServer}
	addr := fakeServer(t, f.serve)
	src := `
proc hello {
	expect smtp
	writeln "EHLO me"
	expect smtp helo
}
test-case name "ok" {
	call hello
	writeln "MAIL FROM:<a@b>"
	writeln "RCPT TO:<c@d>"
	repeat 2 expect smtp ok
	writeln "BAD"
	expect smtp permfail
	writeln "TEMP"
	expect smtp tempfail
	writeln "QUIT"
	expect smtp ok
	expect disconnect
}
test-case name "greeting is multiline" { expect smtp ok }
test-case name "helo reply is multiline" { expect smtp
	writeln "EHLO me"
	expect smtp ok }
test-case name "wrong class" { call hello
	writeln "BAD"
	expect smtp tempfail }
test-case name "no disconnect" { call hello
	expect disconnect }
test-case name "input left" { call hello
	writeln "NOOP"
	writeln "QUIT"
	sleep 100
	expect smtp ok
	expect disconnect }
test-case name "reply after close" { call hello
	writeln "QUIT"
	expect smtp
	expect disconnect
	expect smtp }
test-case name "xfail" expect fail { fail "on purpose" }
test-case name "xpass" expect fail { call hello }
test-case name "skipped" skip { fail "never" }
test-case name "manual" no-autoconnect {
	connect "localhost" port 25
	expect smtp
	disconnect
	writeln "x" }
test-case name "raw write" {
	expect smtp
	write "NOOP
NOOP"
	writeln ""
	expect smtp ok
	expect smtp ok
}
`
	res := runSrc(t, addr, src)
	want := []struct {
		outcome string
		err     string
	}{
		{"pass", ""},
		{"FAIL", "line 20: expect smtp ok: single-line reply expected, got 2 lines: 220-fake | 220 multiline greeting"},
		{"FAIL", "expect smtp ok: single-line reply expected, got 3 lines"},
		{"FAIL", "expect smtp tempfail: got 500 no"},
		{"FAIL", "expect disconnect: connection still open after 300ms"},
		{"FAIL", "expect disconnect: 9 bytes of input left: \"221 bye\\r\\n\""},
		{"FAIL", "line 39: expected a reply but not connected"},
		{"xfail", ""},
		{"FAIL", "case succeeded but is marked expect fail"},
		{"skip", "skipped"},
		{"FAIL", "line 47: write: not connected"},
		{"pass", ""},
	}
	if len(res) != len(want) {
		t.Fatalf("%d results, want %d", len(res), len(want))
	}
	for i, w := range want {
		r := res[i]
		if r.Outcome() != w.outcome || !strings.Contains(r.Err, w.err) || (w.err == "" && r.Err != "") {
			t.Errorf("case %d %q: %s %q, want %s %q\n%s", i+1, r.Name, r.Outcome(), r.Err, w.outcome, w.err, r.Transcript)
		}
		if r.File != "fake.scr" || r.Index != i+1 {
			t.Errorf("case %d: file %q index %d", i+1, r.File, r.Index)
		}
	}
	for _, s := range []string{"C: EHLO me", "S: 250-PIPELINING", "S: 221 bye", "-- server closed the connection"} {
		if !strings.Contains(res[0].Transcript, s) {
			t.Errorf("transcript of case 1 lacks %q:\n%s", s, res[0].Transcript)
		}
	}
	if !strings.Contains(res[7].Transcript, "failed as expected") {
		t.Errorf("xfail transcript:\n%s", res[7].Transcript)
	}
	if !strings.Contains(res[11].Transcript, `C: NOOP\nNOOP [no CRLF]`) || !strings.Contains(res[11].Transcript, "C: \n") {
		t.Errorf("raw write transcript:\n%s", res[11].Transcript)
	}
	// Bytes on the wire: writeln appends CRLF, write sends exactly its
	// string, and a raw newline stays a bare LF.
	if got := f.received(); !strings.Contains(got, "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n") ||
		!strings.Contains(got, "NOOP\nNOOP\r\n") {
		t.Errorf("server received %q", got)
	}
}

func TestRunServerHangsUpAndCancel(t *testing.T) {
	// A server that greets, reads one line, then closes without replying.
	addr := fakeServer(t, func(c net.Conn) {
		c.Write([]byte("220 hi\r\n"))
		bufio.NewReader(c).ReadString('\n')
	})
	res := runSrc(t, addr, "test-case { expect smtp\n writeln \"QUIT\"\n expect disconnect }\n"+
		"test-case { expect smtp\n writeln \"HELO x\"\n expect smtp ok }")
	if !res[0].Pass {
		t.Errorf("expect disconnect after hang-up: %s", res[0].Err)
	}
	if res[1].Pass || !strings.Contains(res[1].Err, "connection closed while waiting for a reply") {
		t.Errorf("reply after hang-up: %s", res[1].Err)
	}

	// A server that never answers: cancelling the context ends the case
	// long before the 10s timeout.
	silent := fakeServer(t, func(c net.Conn) { io.Copy(io.Discard, c) })
	s, err := Parse("c.scr", []byte("test-case { expect smtp }"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	r := s.Run(ctx, Target{Addr: silent, Timeout: 10 * time.Second})[0]
	if r.Pass || !strings.Contains(r.Err, "context canceled") || time.Since(start) > 5*time.Second {
		t.Errorf("cancelled run: pass=%v err=%q after %v", r.Pass, r.Err, time.Since(start))
	}

	// Nothing listening: a harness error, which "expect fail" does not excuse.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	r = runSrc(t, dead, "test-case expect fail { expect smtp }")[0]
	if r.Pass || !strings.Contains(r.Err, "connect "+dead) {
		t.Errorf("connect to closed port: pass=%v err=%q", r.Pass, r.Err)
	}
}

func TestRunSTARTTLS(t *testing.T) {
	certPEM, keyPEM := selfSignedPEM(t)
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeSMTP{greeting: "220 fake\r\n", respond: okServer, tlsCert: &cert}
	addr := fakeServer(t, f.serve)
	src := `test-case { expect smtp ok
	writeln "EHLO x"
	expect smtp helo
	writeln "STARTTLS"
	expect smtp ok
	starttls
	writeln "EHLO x"
	expect smtp helo }
test-case { expect smtp
	starttls }
`
	res := runSrc(t, addr, src)
	if !res[0].Pass || !strings.Contains(res[0].Transcript, "-- TLS established (TLS 1.3") {
		t.Errorf("starttls case: %s\n%s", res[0].Err, res[0].Transcript)
	}
	// Handshake against a server that does not speak TLS must fail.
	if res[1].Pass || !strings.Contains(res[1].Err, "starttls: handshake") {
		t.Errorf("starttls without server support: %q", res[1].Err)
	}

	// Plaintext sent after the STARTTLS reply (command injection) is
	// reported instead of being read through TLS.
	inj := fakeServer(t, func(c net.Conn) {
		c.Write([]byte("220 hi\r\n"))
		bufio.NewReader(c).ReadString('\n')
		c.Write([]byte("220 go ahead\r\n250 injected\r\n"))
		io.Copy(io.Discard, c) // keep the connection open until the client is done
	})
	r := runSrc(t, inj, "test-case { expect smtp\n writeln \"STARTTLS\"\n sleep 100\n expect smtp ok\n starttls }")[0]
	if r.Pass || !strings.Contains(r.Err, "plaintext bytes received before the handshake") {
		t.Errorf("injection: %q", r.Err)
	}
}

func TestRunDialogueAgainstFake(t *testing.T) {
	f := &fakeSMTP{greeting: "220 fake\r\n", respond: okServer}
	addr := fakeServer(t, f.serve)
	tg := Target{Addr: addr, Timeout: 300 * time.Millisecond}
	ctx := context.Background()
	good := Dialogue{ID: "T.good", File: "d.json", Index: 3, Steps: []DialogueStep{
		{Send: "EHLO x", ExpectCode: 250}, {Send: "BAD", ExpectCode: 500}, {Send: "QUIT", ExpectCode: 221}}}
	if r := RunDialogue(ctx, tg, good); !r.Pass || r.Name != "T.good" || r.File != "d.json" || r.Index != 3 {
		t.Errorf("good dialogue: %+v", r)
	}
	bad := Dialogue{ID: "T.bad", Steps: []DialogueStep{{Send: "NOOP", ExpectCode: 250}, {Send: "BAD", ExpectCode: 501}}}
	if r := RunDialogue(ctx, tg, bad); r.Pass || r.Err != "step 2 (BAD): expected 501, got 500 no" {
		t.Errorf("bad dialogue: %q", r.Err)
	}
	// A non-220 greeting fails before any step.
	busy := fakeServer(t, func(c net.Conn) { c.Write([]byte("554 go away\r\n")) })
	if r := RunDialogue(ctx, Target{Addr: busy, Timeout: time.Second}, good); r.Pass || !strings.Contains(r.Err, "greeting: expected 220, got 554 go away") {
		t.Errorf("busy server: %q", r.Err)
	}
	if got := f.received(); !strings.Contains(got, "EHLO x\r\nBAD\r\nQUIT\r\n") {
		t.Errorf("server received %q", got)
	}
}

func TestDialogueDecorators(t *testing.T) {
	d := Dialogue{ID: "TestSMTP.test_x", ClassDecorators: []string{"controller_data(\n    decode_data=True,\n    auth_required=True,\n)"},
		TestDecorators: []string{"controller_data(decode_data=False)"}}
	if d.Class() != "TestSMTP" || !d.HasDecorator("auth_required=True") || !d.HasDecorator("decode_data = False") ||
		d.HasDecorator("enable_SMTPUTF8") || len(d.Decorators()) != 2 {
		t.Errorf("decorator helpers wrong for %+v", d)
	}
	if got := FilterDialogues([]Dialogue{d, {ID: "Other.y"}}, func(d Dialogue) bool { return d.Class() == "Other" }); len(got) != 1 || got[0].ID != "Other.y" {
		t.Errorf("FilterDialogues: %+v", got)
	}
}
