package smtpclient

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/posthorn/posthorn/internal/smtpproto"
)

func newReplyReader(s string) *bufio.Reader {
	return bufio.NewReaderSize(strings.NewReader(s), MaxReplyLineLength)
}

func TestReadReplyValid(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want smtpproto.Reply
	}{
		{"250 ok\r\n", smtpproto.Reply{Code: 250, Text: "ok"}},
		{"250\r\n", smtpproto.Reply{Code: 250}},
		{"250 2.1.5 ok\n", smtpproto.Reply{Code: 250, Enhanced: "2.1.5", Text: "ok"}},
		{"550-5.1.1 a\r\n550-5.1.1 b\r\n550 5.1.1 c\r\n", smtpproto.Reply{Code: 550, Enhanced: "5.1.1", Text: "a\nb\nc"}},
		{"250-\r\n250 x\r\n", smtpproto.Reply{Code: 250, Text: "\nx"}},
		{"554 5.7.1 Zugriff verweigert – schöne Grüße ✓\r\n", smtpproto.Reply{Code: 554, Enhanced: "5.7.1", Text: "Zugriff verweigert – schöne Grüße ✓"}},
		{"550 bad \xff\xfe bytes\r\n", smtpproto.Reply{Code: 550, Text: "bad \ufffd\ufffd bytes"}},
		{"550 ctl\x00\x1b[31m\x7f\u0085 x\ty\r\n", smtpproto.Reply{Code: 550, Text: "ctl??[31m?? x\ty"}},
		{"550 a\rb\r\n", smtpproto.Reply{Code: 550, Text: "a?b"}},
		{"250 " + strings.Repeat("x", MaxReplyLineLength-6) + "\r\n", smtpproto.Reply{Code: 250, Text: strings.Repeat("x", MaxReplyLineLength-6)}},
		{strings.Repeat("250-x\r\n", MaxReplyLines-1) + "250 y\r\n", smtpproto.Reply{Code: 250, Text: strings.Repeat("x\n", MaxReplyLines-1) + "y"}},
	} {
		got, _, err := readReply(newReplyReader(tc.in), nil)
		if err != nil || got != tc.want {
			t.Errorf("readReply(%q) = %+v, %v; want %+v", clipTest(tc.in), got, err, tc.want)
		}
	}
}

func TestReadReplyGarbage(t *testing.T) {
	for _, in := range []string{
		"hello\r\n",
		"25\r\n",
		"\r\n",
		"2500 x\r\n",
		"250x\r\n",
		"25a ok\r\n",
		"099 x\r\n",
		"199 x\r\n",
		"650 x\r\n",
		"+25 x\r\n",
		"250-a\r\n251 b\r\n",
		"250-a\r\nxyz\r\n",
		"250 " + strings.Repeat("x", MaxReplyLineLength) + "\r\n",
		strings.Repeat("250-x\r\n", MaxReplyLines) + "250 y\r\n",
		"\x00\x01\x02\r\n",
	} {
		_, _, err := readReply(newReplyReader(in), nil)
		var pe *ProtocolError
		if !errors.As(err, &pe) {
			t.Errorf("readReply(%q): %v, want *ProtocolError", clipTest(in), err)
		}
	}
	for _, in := range []string{"250 no newline", "250-a\r\n", "250-a\r\n250"} {
		if _, _, err := readReply(newReplyReader(in), nil); err != io.ErrUnexpectedEOF {
			t.Errorf("readReply(%q): %v, want unexpected EOF", in, err)
		}
	}
	if _, _, err := readReply(newReplyReader(""), nil); err != io.EOF {
		t.Errorf("readReply(\"\"): %v, want EOF", err)
	}
}

func TestReadReplySequence(t *testing.T) {
	br := newReplyReader("250 a\r\n354 b\r\n250-c\r\n250 d\r\n")
	var lines []string
	for _, want := range []int{250, 354, 250} {
		var r smtpproto.Reply
		var err error
		r, lines, err = readReply(br, lines)
		if err != nil || r.Code != want {
			t.Fatalf("got %+v %v, want %d", r, err, want)
		}
	}
}

// TestGarbageThroughClient checks that a garbage reply fails the command
// with a protocol error and leaves the client Broken.
func TestGarbageThroughClient(t *testing.T) {
	for _, garbage := range []string{"HTTP/1.1 400 Bad Request\r\n", "250-ok\r\n550 mixed\r\n", strings.Repeat("A", 10000)} {
		addr, wait := startFake(t, func(f *fakeConn) {
			f.send("220 fake")
			f.expect("EHLO")
			f.sendRaw(garbage)
		})
		c, err := dialClient(t, addr, testOpts())
		if err != nil {
			t.Fatal(err)
		}
		err = c.Hello()
		var pe *ProtocolError
		e := wantErr(t, err, PhaseEhlo, 0, true)
		if !errors.As(e, &pe) || !c.Broken() {
			t.Errorf("%q: error %v, broken %v", clipTest(garbage), err, c.Broken())
		}
		if _, err := c.Send("s@z.test", []string{"a@x.test"}, nil, SendOptions{}); !errors.Is(err, ErrBroken) {
			t.Errorf("Send after garbage: %v", err)
		}
		c.Close()
		wait()
	}
}

func clipTest(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

func FuzzReadReply(f *testing.F) {
	for _, s := range []string{
		"220 ok\r\n", "250-a\r\n250 b\r\n", "550 5.1.1 x\r\n", "250-2.0.0 x\r\n250 2.0.0 y\n",
		"421\r\n", "250 \xff\r\n", "2", "250-x\r\n251 y\r\n", "354 \x00\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		br := bufio.NewReaderSize(bytes.NewReader(data), MaxReplyLineLength)
		var lines []string
		for range 1000 {
			r, l, err := readReply(br, lines)
			lines = l
			if err != nil {
				var pe *ProtocolError
				if !errors.As(err, &pe) && err != io.EOF && err != io.ErrUnexpectedEOF {
					t.Fatalf("unexpected error type %T: %v", err, err)
				}
				return
			}
			if r.Code < 200 || r.Code > 599 {
				t.Fatalf("code %d", r.Code)
			}
			if !utf8.ValidString(r.Text) || strings.ContainsAny(r.Text, "\r\x00") {
				t.Fatalf("unclean text %q", r.Text)
			}
			if r.Enhanced != "" && !smtpproto.ValidEnhanced(r.Enhanced) {
				t.Fatalf("enhanced %q", r.Enhanced)
			}
			if len(l) > MaxReplyLines {
				t.Fatalf("%d lines", len(l))
			}
		}
	})
}
