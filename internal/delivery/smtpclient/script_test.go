package smtpclient

import (
	"encoding/base64"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"
)

// Tests against the scripted raw server in fake_test.go.

func wantErr(t *testing.T, err error, phase Phase, code int, temporary bool) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T), want *Error", err, err)
	}
	if e.Phase != phase || e.Temporary != temporary {
		t.Errorf("error %v: phase %q temporary %v, want %q %v", err, e.Phase, e.Temporary, phase, temporary)
	}
	switch {
	case code == 0 && e.Reply != nil:
		t.Errorf("error %v has reply, want I/O error", err)
	case code != 0 && (e.Reply == nil || e.Reply.Code != code):
		t.Errorf("error %v, want reply code %d", err, code)
	}
	return e
}

func TestGreeting421(t *testing.T) {
	addr, wait := startFake(t, func(f *fakeConn) {
		f.send("421 4.3.2 shutting down")
		if _, err := f.r.ReadByte(); err != io.EOF {
			t.Errorf("client sent something after 421: %v", err)
		}
	})
	c, err := dialClient(t, addr, testOpts())
	if c != nil {
		t.Error("client returned with error")
	}
	e := wantErr(t, err, PhaseConnect, 421, true)
	if e.Reply.Enhanced != "4.3.2" || e.Reply.Text != "shutting down" {
		t.Errorf("reply %+v", e.Reply)
	}
	wait()
}

func TestGreeting554SendsQuit(t *testing.T) {
	addr, wait := startFake(t, func(f *fakeConn) {
		f.send("554 5.7.1 go away")
		f.expect("QUIT")
		f.send("221 bye")
	})
	_, err := dialClient(t, addr, testOpts())
	wantErr(t, err, PhaseConnect, 554, false)
	wait()
}

func TestMultiLineReplies(t *testing.T) {
	addr, wait := startFake(t, func(f *fakeConn) {
		f.send("220-fake.test ESMTP", "220-second line", "220 third line")
		f.ehlo("PIPELINING", "SIZE 1000", "AUTH=LOGIN", "8bitmime", "X-EXPERIMENT  a  b ")
		f.expect("MAIL FROM:<s@z.test> SIZE=5 BODY=8BITMIME")
		f.expect("RCPT TO:<a@x.test>")
		f.expect("RCPT TO:<b@x.test>")
		f.expect("DATA")
		f.send("250 2.1.0 ok", "550-5.1.1 first", "550-5.1.1 second", "550 5.1.1 third", "250 2.1.5 ok", "354 go")
		if got := f.data(); got != "h\u00e9\r\n" {
			t.Errorf("data %q", got)
		}
		f.send("250-2.0.0 queued as", "250 2.0.0 ABC123")
	})
	c := mustClient(t, addr)
	if g := c.Greeting(); g.Code != 220 || g.Text != "fake.test ESMTP\nsecond line\nthird line" {
		t.Errorf("greeting %+v", g)
	}
	for name, want := range map[string]string{"size": "1000", "AUTH": "LOGIN", "8BITMIME": "", "x-experiment": "a  b"} {
		if got, ok := c.Extension(name); !ok || got != want {
			t.Errorf("Extension(%q) = %q, %v; want %q", name, got, ok, want)
		}
	}
	res, err := c.Send("s@z.test", []string{"a@x.test", "b@x.test"}, []byte("h\u00e9\r\n"), SendOptions{Size: true, EightBit: true})
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if r := res.Rcpt[0]; r.Code != 550 || r.Enhanced != "5.1.1" || r.Text != "first\nsecond\nthird" {
		t.Errorf("Rcpt[0] = %+v", r)
	}
	if r := res.Data; r.Code != 250 || r.Text != "queued as\nABC123" {
		t.Errorf("Data = %+v", r)
	}
	if !slices.Equal(res.Accepted, []int{1}) {
		t.Errorf("Accepted %v", res.Accepted)
	}
	wait()
}

func TestDataEnd4xxThenRset(t *testing.T) {
	addr, wait := startFake(t, func(f *fakeConn) {
		f.send("220 fake")
		f.ehlo("PIPELINING")
		f.expect("MAIL FROM:<>")
		f.expect("RCPT TO:<a@x.test>")
		f.expect("DATA")
		f.send("250 ok", "250 ok", "354 go")
		f.data()
		f.send("452 4.3.1 insufficient storage")
		// The transaction may still be open on a sloppy server: RSET first.
		f.expect("RSET")
		f.send("250 ok")
		f.expect("MAIL FROM:<>")
		f.expect("RCPT")
		f.expect("DATA")
		f.send("250 ok", "250 ok", "354 go")
		f.data()
		f.send("250 ok")
	})
	c := mustClient(t, addr)
	res, err := c.Send("", []string{"a@x.test"}, []byte("x\r\n"), SendOptions{})
	e := wantErr(t, err, PhaseDataEnd, 452, true)
	if e.Reply.Enhanced != "4.3.1" || res.Data.Code != 452 || c.Broken() {
		t.Errorf("reply %+v, result %+v, broken %v", e.Reply, res, c.Broken())
	}
	if _, err := c.Send("", []string{"a@x.test"}, []byte("x\r\n"), SendOptions{}); err != nil {
		t.Fatalf("second Send: %v", err)
	}
	wait()
}

func TestServerClosesMidData(t *testing.T) {
	for _, size := range []int{100, 4 << 20} {
		addr, wait := startFake(t, func(f *fakeConn) {
			f.send("220 fake")
			f.ehlo("PIPELINING")
			f.expect("MAIL")
			f.expect("RCPT")
			f.expect("DATA")
			f.send("250 ok", "250 ok", "354 go")
			f.r.Peek(10)
			f.c.Close()
		})
		c := mustClient(t, addr)
		body := []byte(strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\r\n", size/66+1))
		_, err := c.Send("s@z.test", []string{"a@x.test"}, body, SendOptions{})
		e := wantErr(t, err, PhaseDataEnd, 0, true)
		if e.Err == nil || !c.Broken() {
			t.Errorf("size %d: error %v, broken %v", size, err, c.Broken())
		}
		if _, err := c.Send("s@z.test", []string{"a@x.test"}, body, SendOptions{}); !errors.Is(err, ErrBroken) {
			t.Errorf("Send on broken client: %v", err)
		}
		wait()
	}
}

func TestStallTimeout(t *testing.T) {
	stall := func(f *fakeConn) { io.Copy(io.Discard, f.r) } // never answers; reads until the client gives up
	opts := testOpts()
	opts.CommandTimeout, opts.DataTimeout, opts.GreetingTimeout = 150*time.Millisecond, 150*time.Millisecond, 150*time.Millisecond
	cases := map[string]func(f *fakeConn){
		"greeting": stall,
		"ehlo": func(f *fakeConn) {
			f.send("220 fake")
			stall(f)
		},
		"mid-reply": func(f *fakeConn) {
			f.send("220 fake")
			f.sendRaw("250-fake\r\n250-PIPELI")
			stall(f)
		},
		"data-end": func(f *fakeConn) {
			f.send("220 fake")
			f.ehlo("PIPELINING")
			f.expect("MAIL")
			f.expect("RCPT")
			f.expect("DATA")
			f.send("250 ok", "250 ok", "354 go")
			f.data()
			stall(f)
		},
	}
	for name, script := range cases {
		t.Run(name, func(t *testing.T) {
			addr, wait := startFake(t, script)
			start := time.Now()
			c, err := dialClient(t, addr, opts)
			if err == nil {
				err = c.Hello()
				if err == nil {
					_, err = c.Send("s@z.test", []string{"a@x.test"}, []byte("x\r\n"), SendOptions{})
				}
				c.Close()
			}
			var e *Error
			if !errors.As(err, &e) || !e.Timeout() || !e.Temporary || e.Reply != nil {
				t.Fatalf("error %v, want timeout", err)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("took %v", d)
			}
			wait()
		})
	}
}

func TestLockStep(t *testing.T) {
	addr, wait := startFake(t, func(f *fakeConn) {
		step := func(cmd string, reply ...string) {
			if l := f.line(); !strings.HasPrefix(l, cmd) || cmd == "MAIL FROM:<s@z.test>" && l != cmd {
				t.Errorf("got %q, want %q", l, cmd)
			}
			if !f.quiet(50 * time.Millisecond) {
				t.Errorf("client pipelined after %q without PIPELINING", cmd)
			}
			f.send(reply...)
		}
		f.send("220 fake")
		f.ehlo("SIZE", "ENHANCEDSTATUSCODES")
		// 1: one recipient refused.
		step("MAIL FROM:<s@z.test>", "250 ok")
		step("RCPT TO:<a@x.test>", "550 5.1.1 unknown")
		step("RCPT TO:<b@x.test>", "250 ok")
		step("DATA", "354 go")
		f.data()
		f.send("250 ok")
		// 2: MAIL refused: no RCPT follows.
		step("MAIL", "451 4.3.0 later")
		// 3: all recipients refused: no DATA follows.
		step("MAIL", "250 ok")
		step("RCPT", "550 no")
		f.expect("QUIT")
		f.send("221 bye")
	})
	c := mustClient(t, addr)
	res, err := c.Send("s@z.test", []string{"a@x.test", "b@x.test"}, []byte("x\r\n"), SendOptions{})
	if err != nil || !slices.Equal(res.Accepted, []int{1}) || res.Rcpt[0].Enhanced != "5.1.1" {
		t.Fatalf("Send: %v %+v", err, res)
	}
	res, err = c.Send("s@z.test", []string{"a@x.test"}, []byte("x\r\n"), SendOptions{})
	wantErr(t, err, PhaseMail, 451, true)
	if res.Rcpt[0].Code != 0 || res.Data.Code != 0 {
		t.Errorf("result %+v", res)
	}
	_, err = c.Send("s@z.test", []string{"a@x.test"}, []byte("x\r\n"), SendOptions{})
	wantErr(t, err, PhaseRcpt, 550, false)
	if err := c.Quit(); err != nil {
		t.Errorf("Quit: %v", err)
	}
	wait()
}

func TestHeloFallback(t *testing.T) {
	addr, wait := startFake(t, func(f *fakeConn) {
		f.send("220 fake")
		f.expect("EHLO client.test")
		f.send("502 5.5.1 what")
		f.expect("HELO client.test")
		f.send("250 fake")
		if l := f.line(); l != "MAIL FROM:<s@z.test>" {
			t.Errorf("got %q", l)
		}
		if !f.quiet(50 * time.Millisecond) {
			t.Error("client pipelined after HELO")
		}
		f.send("250 ok")
		f.expect("RCPT")
		f.send("250 ok")
		f.expect("DATA")
		f.send("354 go")
		f.data()
		f.send("250 ok")
	})
	c := mustClient(t, addr)
	if _, ok := c.Extension("PIPELINING"); ok {
		t.Error("extensions after HELO")
	}
	if _, err := c.Send("s@z.test", []string{"a@x.test"}, []byte("x\r\n"), SendOptions{Size: true, EightBit: true}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	wait()
}

func TestDataAcceptedWithoutRecipients(t *testing.T) {
	addr, wait := startFake(t, func(f *fakeConn) {
		f.send("220 fake")
		f.ehlo("PIPELINING")
		f.expect("MAIL")
		f.expect("RCPT")
		f.expect("DATA")
		f.send("250 ok", "550 5.1.1 unknown", "354 go (wrongly)")
		f.expect(".") // the empty message's terminator, nothing else
		if l := f.r.Buffered(); l != 0 {
			t.Errorf("client sent a body: %d bytes", l)
		}
		f.send("503 5.5.1 no valid recipients")
		// Failed MAIL, wrongly accepted DATA.
		f.expect("RSET")
		f.send("250 ok")
		f.expect("MAIL")
		f.expect("RCPT")
		f.expect("DATA")
		f.send("550 5.7.1 no", "503 5.5.1 need MAIL", "354 go (wrongly)")
		f.expect(".")
		f.send("503 5.5.1 no")
		f.expect("QUIT")
		f.send("221 bye")
	})
	c := mustClient(t, addr)
	res, err := c.Send("s@z.test", []string{"a@x.test"}, []byte(".x\r\n"), SendOptions{})
	wantErr(t, err, PhaseRcpt, 550, false)
	if res.Data.Code != 503 || len(res.Accepted) != 0 || c.Broken() {
		t.Errorf("result %+v, broken %v", res, c.Broken())
	}
	res, err = c.Send("s@z.test", []string{"a@x.test"}, []byte("x\r\n"), SendOptions{})
	wantErr(t, err, PhaseMail, 550, false)
	if res.Data.Code != 503 || res.Rcpt[0].Code != 503 {
		t.Errorf("result %+v", res)
	}
	if err := c.Quit(); err != nil {
		t.Errorf("Quit: %v", err)
	}
	wait()
}

func Test421MidPipeline(t *testing.T) {
	addr, wait := startFake(t, func(f *fakeConn) {
		f.send("220 fake")
		f.ehlo("PIPELINING")
		f.expect("MAIL")
		f.expect("RCPT")
		f.expect("RCPT")
		f.expect("DATA")
		f.send("250 ok", "421 4.7.0 too many errors, closing")
	})
	c := mustClient(t, addr)
	res, err := c.Send("s@z.test", []string{"a@x.test", "b@x.test"}, []byte("x\r\n"), SendOptions{})
	wantErr(t, err, PhaseRcpt, 421, true)
	if !c.Broken() || res.Rcpt[0].Code != 421 || res.Rcpt[1].Code != 0 {
		t.Errorf("broken %v, result %+v", c.Broken(), res)
	}
	if err := c.Reset(); !errors.Is(err, ErrBroken) {
		t.Errorf("Reset after 421: %v", err)
	}
	c.Quit() // no QUIT on a broken connection; the script would not read it
	wait()
}

func TestAuthLogin(t *testing.T) {
	enc := base64.StdEncoding.EncodeToString
	addr, wait := startFake(t, func(f *fakeConn) {
		f.send("220 fake")
		f.ehlo("AUTH LOGIN CRAM-MD5")
		f.expect("AUTH LOGIN")
		f.send("334 VXNlcm5hbWU6")
		if l := f.line(); l != enc([]byte("user")) {
			t.Errorf("username %q", l)
		}
		f.send("334 UGFzc3dvcmQ6")
		if l := f.line(); l != enc([]byte("pa ss")) {
			t.Errorf("password %q", l)
		}
		f.send("235 2.7.0 ok")
		// A server asking for a third step gets "*".
		f.expect("AUTH LOGIN")
		f.send("334 VXNlcm5hbWU6")
		f.line()
		f.send("334 UGFzc3dvcmQ6")
		f.line()
		f.send("334 more?")
		f.expect("*")
		f.send("501 5.7.0 cancelled")
	})
	c := mustClient(t, addr)
	if err := c.Auth("user", "pa ss"); err != nil {
		t.Fatalf("Auth: %v", err)
	}
	wantErr(t, c.Auth("user", "pa ss"), PhaseAuth, 334, true)
	wait()
}

func TestStartTLSNotOffered(t *testing.T) {
	addr, wait := startFake(t, func(f *fakeConn) {
		f.send("220 fake")
		f.ehlo("PIPELINING")
		f.expect("QUIT")
		f.send("221 bye")
	})
	c := mustClient(t, addr)
	err := c.StartTLS(nil)
	if !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("nil config: %v", err)
	}
	if err := c.StartTLS(selfSigned(t)); !errors.Is(err, ErrNotSupported) {
		t.Errorf("StartTLS: %v", err)
	}
	if err := c.Auth("a", "b"); !errors.Is(err, ErrNotSupported) {
		t.Errorf("Auth: %v", err)
	}
	c.Quit()
	wait()
}

func TestStartTLSInjection(t *testing.T) {
	addr, wait := startFake(t, func(f *fakeConn) {
		f.send("220 fake")
		f.ehlo("STARTTLS")
		f.expect("STARTTLS")
		f.send("220 go ahead", "250 injected")
	})
	c := mustClient(t, addr)
	err := c.StartTLS(selfSigned(t))
	wantErr(t, err, PhaseStartTLS, 0, true)
	if !c.Broken() {
		t.Error("not broken")
	}
	wait()
}

func TestInvalidArguments(t *testing.T) {
	addr, _ := startSink(t)
	c := mustClient(t, addr)
	for _, tc := range []struct {
		from  string
		rcpts []string
		phase Phase
	}{
		{"a\r\nRCPT TO:<evil@x.test>", []string{"a@x.test"}, PhaseMail},
		{"a>b@x.test", []string{"a@x.test"}, PhaseMail},
		{"s@z.test", nil, PhaseRcpt},
		{"s@z.test", []string{""}, PhaseRcpt},
		{"s@z.test", []string{"a@x.test", "b@x.test\nDATA"}, PhaseRcpt},
	} {
		_, err := c.Send(tc.from, tc.rcpts, []byte("x\r\n"), SendOptions{})
		e := wantErr(t, err, tc.phase, 0, false)
		if !errors.Is(e, ErrInvalidArgument) {
			t.Errorf("%q %q: %v", tc.from, tc.rcpts, err)
		}
	}
	if res, err := c.Send("s@z.test", []string{"a@x.test"}, []byte("x\r\n"), SendOptions{}); err != nil || !res.Delivered() {
		t.Errorf("Send after invalid arguments: %v", err)
	}
	if _, err := dialClient(t, addr, Options{LocalName: "bad name"}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("bad LocalName: %v", err)
	}
}

func TestOutOfSequenceReplies(t *testing.T) {
	for name, replies := range map[string][]string{
		"250 to DATA":    {"250 ok", "250 ok", "250 ok"},
		"354 to RCPT":    {"250 ok", "354 go", "354 go"},
		"354 after .":    {"250 ok", "250 ok", "354 go", "354 again"},
		"334 to MAIL":    {"334 what", "250 ok", "354 go"},
		"334 after body": {"250 ok", "250 ok", "354 go", "334 x"},
	} {
		t.Run(name, func(t *testing.T) {
			addr, wait := startFake(t, func(f *fakeConn) {
				f.send("220 fake")
				f.ehlo("PIPELINING")
				f.expect("MAIL")
				f.expect("RCPT")
				f.expect("DATA")
				f.send(replies[:3]...)
				if len(replies) > 3 {
					f.data()
					f.send(replies[3:]...)
				}
			})
			c := mustClient(t, addr)
			_, err := c.Send("s@z.test", []string{"a@x.test"}, []byte("x\r\n"), SendOptions{})
			var e *Error
			var pe *ProtocolError
			if !errors.As(err, &e) || e.Reply == nil || !errors.As(err, &pe) || !c.Broken() {
				t.Errorf("error %v, broken %v", err, c.Broken())
			}
			wait()
		})
	}
}

// TestMaybeDelivered: only a failure after the whole message and its final
// dot went out may have delivered it; a reset (the server closed with our
// data unread) and a failure before the dot did not.
func TestMaybeDelivered(t *testing.T) {
	opts := testOpts()
	opts.DataTimeout = 150 * time.Millisecond
	envelope := func(f *fakeConn) {
		f.send("220 fake")
		f.ehlo("PIPELINING")
		f.expect("MAIL")
		f.expect("RCPT")
		f.expect("DATA")
		f.send("250 ok", "250 ok", "354 go")
	}
	cases := []struct {
		name   string
		server func(f *fakeConn)
		want   bool
	}{
		{"no reply after the dot", func(f *fakeConn) { envelope(f); f.data(); io.Copy(io.Discard, f.r) }, true},
		{"closed after the dot", func(f *fakeConn) { envelope(f); f.data(); f.c.Close() }, true},
		{"garbage after the dot", func(f *fakeConn) { envelope(f); f.data(); f.sendRaw("OK!\r\n") }, true},
		{"354 again after the dot", func(f *fakeConn) { envelope(f); f.data(); f.send("354 go on") }, true},
		{"reset before the dot", func(f *fakeConn) { envelope(f); f.r.Peek(10); f.c.Close() }, false},
		{"refused after the dot", func(f *fakeConn) { envelope(f); f.data(); f.send("451 4.3.0 later") }, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr, wait := startFake(t, tc.server)
			c, err := dialClient(t, addr, opts)
			if err != nil {
				t.Fatal(err)
			}
			// Bigger than the fake's read buffer: data left unread at a close.
			body := []byte(strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\r\n", 300))
			_, err = c.Send("s@z.test", []string{"a@x.test"}, body, SendOptions{})
			c.Close()
			var e *Error
			if !errors.As(err, &e) || e.MaybeDelivered != tc.want {
				t.Fatalf("error %v: MaybeDelivered %v, want %v", err, e != nil && e.MaybeDelivered, tc.want)
			}
			wait()
		})
	}
}
