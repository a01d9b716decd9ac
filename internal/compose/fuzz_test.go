package compose

import (
	"bytes"
	"mime"
	"net/mail"
	"strings"
	"testing"
	"time"
)

// FuzzBuild: whatever the subject, text, display name, header value and
// attachment filename,
// a message that passes Validate builds; its header block holds only the
// fields Build writes (no injected field, no bare CR or LF, no blank
// continuation, no line over 998); it parses with net/mail; and the
// subject, names, header value, text and filename come back exactly.
func FuzzBuild(f *testing.F) {
	for _, s := range [][5]string{
		{"hello", "hi\n", "Ann", "value", ""},
		{"Grüße ✓", "Zoë\r\nline\rtwo\n", "Zoë Ærø", "spring — sale", "Übersicht.pdf"},
		{"  lead and trail  ", strings.Repeat("x", 200), " Ann ", "  spaced  ", "a \"b\" \\c.txt"},
		{"=?utf-8?q?fake?=", ".\r\n.\r\n", `"quoted" \back`, "=?utf-8?b?Zm9v?=", "=?utf-8?q?x?="},
		{"hi\r\nBcc: victim@example.org", "x", "a\nb", "1\r\nBcc: victim@example.org", "a\r\nb"},
		{strings.Repeat("long subject ", 30), "\t\x01\x7f", strings.Repeat("名前", 40), strings.Repeat("w", 990), strings.Repeat("ü", 120)},
		{"tab\there", "", "", "\t", " "},
	} {
		f.Add(s[0], s[1], s[2], s[3], s[4])
	}
	allowed := map[string]bool{"From": true, "To": true, "Subject": true, "Date": true, "Message-ID": true,
		"MIME-Version": true, "X-Fuzz": true, "Content-Type": true, "Content-Transfer-Encoding": true}
	f.Fuzz(func(t *testing.T, subject, text, name, value, filename string) {
		m := &Message{
			From:    Address{Name: name, Email: "from@example.com"},
			To:      AddressList{{Name: name, Email: "to@example.org"}},
			Subject: subject, Text: text, Headers: map[string]string{"X-Fuzz": value},
		}
		if m.Text == "" {
			m.HTML = "<p>x</p>"
		}
		if filename != "" {
			m.Attachments = []Attachment{{Filename: filename, Content: []byte(text)}}
		}
		if m.Validate() != nil {
			return
		}
		raw, err := Build(m, Options{MessageID: "fuzz@example.com", Date: time.Unix(1e9, 0)})
		if err != nil {
			t.Fatalf("Build after Validate: %v", err)
		}
		for i, c := range raw {
			if c == '\n' && (i == 0 || raw[i-1] != '\r') || c == '\r' && (i+1 == len(raw) || raw[i+1] != '\n') {
				t.Fatalf("bare CR or LF at %d:\n%q", i, raw)
			}
		}
		head, _, _ := bytes.Cut(raw, []byte("\r\n\r\n"))
		for _, line := range strings.Split(string(head), "\r\n") {
			if len(line) > maxLine {
				t.Fatalf("header line of %d characters", len(line))
			}
			if line[0] == ' ' || line[0] == '\t' {
				if strings.TrimSpace(line) == "" {
					t.Fatalf("blank continuation line:\n%q", head)
				}
				continue
			}
			if name, _, ok := strings.Cut(line, ":"); !ok || !allowed[name] {
				t.Fatalf("unexpected header line %q:\n%s", line, head)
			}
		}
		msg, err := mail.ReadMessage(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("net/mail: %v\n%q", err, raw)
		}
		dec := new(mime.WordDecoder)
		if got, err := dec.DecodeHeader(msg.Header.Get("Subject")); err != nil || got != subject {
			t.Fatalf("subject %q comes back as %q (%v)", subject, got, err)
		}
		for _, h := range []string{"From", "To"} {
			a, err := mail.ParseAddress(msg.Header.Get(h))
			if err != nil || a.Name != name {
				t.Fatalf("%s name %q comes back as %+v (%v) from %q", h, name, a, err, msg.Header.Get(h))
			}
		}
		// Printable ASCII is written as is (textproto trims it when
		// reading); anything else is encoded and must decode exactly.
		got, want := msg.Header.Get("X-Fuzz"), strings.Trim(value, " \t")
		if !printable(value) {
			got, err = dec.DecodeHeader(got)
			want = value
		}
		if err != nil || got != want {
			t.Fatalf("X-Fuzz %q comes back as %q (%v)", value, got, err)
		}
		s := goSummary(t, raw)
		if m.Text != "" {
			want := crlf(text)
			if !strings.HasSuffix(want, "\r\n") && filename == "" {
				want += "\r\n"
			}
			if s.Text != strings.ReplaceAll(want, "\r\n", "\n") {
				t.Fatalf("text %q comes back as %q", text, s.Text)
			}
		}
		if filename != "" && (len(s.Attachments) != 1 || s.Attachments[0].Filename != filename || string(s.Attachments[0].Data) != text) {
			t.Fatalf("attachment %q comes back as %+v", filename, s.Attachments)
		}
	})
}

// FuzzParseAddressShortcut: the shortcut for bare addresses gives what
// the net/mail path gives, and net/mail gives a dot-atom local part back
// as it is (what canonicalEmail's shortcut assumes).
func FuzzParseAddressShortcut(f *testing.F) {
	for _, s := range []string{"a@b.test", "A.b+c@EXAMPLE.com", "a..b@x.test", ".a@x.test", "a@-x.test", "a@x", "a@", "@x.test",
		"!#$%&'*+-/=?^_`{|}~@x.test", "a@x..test", "a@1.2.3.4", strings.Repeat("a", 65) + "@x.test", "a@" + strings.Repeat("x.", 130) + "test"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, gotErr := ParseAddress(s)
		want, wantErr := parseAddress(s)
		if got != want || (gotErr == nil) != (wantErr == nil) || gotErr != nil && gotErr.Error() != wantErr.Error() {
			t.Fatalf("%q: shortcut %+v, %v; net/mail %+v, %v", s, got, gotErr, want, wantErr)
		}
		if at := strings.LastIndexByte(s, '@'); at >= 0 && dotAtom(s[:at]) {
			p, err := mail.ParseAddress(s[:at] + "@example.com")
			if err != nil || p.Name != "" || p.Address != s[:at]+"@example.com" {
				t.Fatalf("%q: net/mail gives %+v, %v", s[:at], p, err)
			}
		}
	})
}

// FuzzCRLF: the one-pass crlf gives what the three replacements it
// replaced give; sevenBit agrees with splitting the lines.
func FuzzCRLF(f *testing.F) {
	for _, s := range []string{"a\nb", "a\r\nb\r", "\r\r\n\n", "", "x", "\n\r"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want := strings.ReplaceAll(strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n"), "\n", "\r\n")
		if got := crlf(s); got != want {
			t.Fatalf("crlf(%q) = %q, want %q", s, got, want)
		}
		seven := true
		for _, line := range strings.Split(want, "\r\n") {
			if len(line) > foldAt || !printable(line) || line != "" && isWSP(line[len(line)-1]) {
				seven = false
			}
		}
		if sevenBit(want) != seven {
			t.Fatalf("sevenBit(%q) = %v", want, !seven)
		}
		if !strings.Contains(s, "\r") && linesFit(s, "\n") != seven {
			t.Fatalf("linesFit(%q, LF) = %v", s, !seven)
		}
	})
}
