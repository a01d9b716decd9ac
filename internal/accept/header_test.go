package accept

import (
	"strings"
	"testing"
	"time"
)

// TestPrepareKeepsHeaderAndBodyApart: whatever shape the message has, the
// fields posthorn adds land in the header section, each on its own line,
// and the client's text stays where it was (header or body).
func TestPrepareKeepsHeaderAndBodyApart(t *testing.T) {
	cases := []struct{ name, in, wantHeader, wantBody string }{
		{"well formed", "Subject: s\r\n\r\nbody\r\n", "Subject: s\r\n", "body\r\n"},
		{"no final newline in the header", "From: a@x.test\r\nSubject: s", "From: a@x.test\r\nSubject: s\r\n", ""},
		{"no final newline in the body", "Subject: s\r\n\r\nlast", "Subject: s\r\n", "last\r\n"},
		{"folded field", "Subject: a\r\n b\r\n\r\nx\r\n", "Subject: a\r\n b\r\n", "x\r\n"},
		{"body right after the fields", "Subject: s\r\nHello there\r\n", "Subject: s\r\n", "Hello there\r\n"},
		{"no header at all", "Hello there\r\nsecond: line\r\n", "", "Hello there\r\nsecond: line\r\n"},
		{"no header, no newline", "Hello", "", "Hello\r\n"},
		{"mbox From line", "From a@x.test Thu Dec  3 14:00:00 2026\r\nSubject: s\r\n\r\nx\r\n", "", "From a@x.test Thu Dec  3 14:00:00 2026\r\nSubject: s\r\n\r\nx\r\n"},
		{"empty", "", "", ""},
	}
	p := &Pipeline{Hostname: "mx.test", Lifetime: time.Hour}
	for _, c := range cases {
		sub := &Submission{Recipients: []string{"r@x.test"}, Body: []byte(c.in)}
		var msg message
		msg.read(sub)
		nm, err := p.prepare(sub, &msg, stamp{now: time.Now(), text: time.Now().Format(time.RFC1123Z)}, nil)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		hdr, body, ok := strings.Cut(string(nm.Message.Body), "\r\n\r\n")
		if !ok {
			t.Errorf("%s: no blank line in %q", c.name, nm.Message.Body)
			continue
		}
		// Received (3 lines) first; Message-ID and Date last.
		lines := strings.SplitAfter(hdr+"\r\n", "\r\n")
		client := strings.Join(lines[3:len(lines)-3], "")
		if !strings.HasPrefix(lines[0], "Received: ") || !strings.HasPrefix(lines[len(lines)-3], "Message-ID: <") ||
			!strings.HasPrefix(lines[len(lines)-2], "Date: ") || client != c.wantHeader || body != c.wantBody {
			t.Errorf("%s: %q\nheader from the client %q, want %q\nbody %q, want %q", c.name, nm.Message.Body, client, c.wantHeader, body, c.wantBody)
		}
	}
}

func TestHasHeader(t *testing.T) {
	for in, want := range map[string]bool{"Subject: x\r\n": true, "X-A:": true, "Subject : x": true, "Hello": false,
		" Subject: x": false, ": x": false, "From a@b Thu 14:00:00": false, "": false, "\r\nSubject: x": false} {
		if HasHeader([]byte(in)) != want {
			t.Errorf("HasHeader(%q) = %v", in, !want)
		}
	}
}

// FuzzUnfold: unfold is strings.ReplaceAll of CRLF, whatever the value.
func FuzzUnfold(f *testing.F) {
	for _, s := range []string{" x\r\n", " a\r\n b\r\n", "\r\n", "", " a\r\r\n", "\r\n\r\n", " \r\n\tb"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := unfold([]byte(s)), strings.ReplaceAll(s, "\r\n", ""); got != want {
			t.Fatalf("unfold(%q) = %q, want %q", s, got, want)
		}
	})
}
