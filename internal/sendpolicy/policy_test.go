package sendpolicy

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/posthorn/posthorn/internal/accept"
	"github.com/posthorn/posthorn/internal/compose"
	"github.com/posthorn/posthorn/internal/store"
)

func multipartMsg(parts ...string) string {
	s := "From: a@example.com\r\nTo: b@example.org\r\nSubject: x\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"BB\"\r\n\r\npreamble\r\n"
	for _, p := range parts {
		s += "--BB\r\n" + p + "\r\n"
	}
	return s + "--BB--\r\n"
}

func attachment(ctype, disp string, content []byte) string {
	b := base64.StdEncoding.EncodeToString(content)
	var lines []string
	for len(b) > 76 {
		lines, b = append(lines, b[:76]), b[76:]
	}
	lines = append(lines, b)
	return "Content-Type: " + ctype + "\r\nContent-Disposition: " + disp + "\r\nContent-Transfer-Encoding: base64\r\n\r\n" + strings.Join(lines, "\r\n")
}

var text = "Content-Type: text/plain; charset=utf-8\r\n\r\nHello, see attached.\r\n"

func TestFindExecutable(t *testing.T) {
	pe := append([]byte("MZ\x90\x00\x03\x00\x00\x00"), make([]byte, 300)...)
	pdf := []byte("%PDF-1.4\n%...\n")
	cases := []struct {
		name, msg, want string // want: a substring of the reason, "" for none
	}{
		{"exe by name", multipartMsg(text, attachment("application/octet-stream", `attachment; filename="invoice.exe"`, []byte("whatever"))), ".exe"},
		{"MZ with an innocent name", multipartMsg(text, attachment("application/pdf", `attachment; filename="report.pdf"`, pe)), "MZ"},
		{"ELF", multipartMsg(text, attachment("application/octet-stream", `attachment; filename="tool"`, []byte("\x7fELF\x02\x01\x01"))), "ELF"},
		{"script", multipartMsg(text, attachment("text/plain", `attachment; filename="notes.txt"`, []byte("#!/bin/sh\nrm -rf ~\n"))), "#!"},
		{"content type", multipartMsg(text, attachment("application/x-msdownload", `attachment; filename="a.dat"`, []byte("x"))), "x-msdownload"},
		{"RFC 2231 name", multipartMsg(text, attachment("application/octet-stream", `attachment; filename*=utf-8''rechnung%20M%C3%A4rz.scr`, []byte("x"))), ".scr"},
		{"RFC 2047 name", multipartMsg(text, attachment(`application/octet-stream; name="=?utf-8?q?run=2Evbs?="`, `attachment`, []byte("x"))), ".vbs"},
		{"nested message", multipartMsg(text, "Content-Type: message/rfc822\r\n\r\n"+multipartMsg(text, attachment("application/octet-stream", `attachment; filename="x.js"`, []byte("x")))), ".js"},
		{"pdf", multipartMsg(text, attachment("application/pdf", `attachment; filename="report.pdf"`, pdf)), ""},
		{"plain text starting with #!", "From: a@example.com\r\nSubject: x\r\n\r\n#!/bin/sh is how scripts start\r\n", ""},
		{"no MIME", "From: a@example.com\r\n\r\nMZ is just text here\r\n", ""},
		{"broken MIME", "From: a@example.com\r\nContent-Type: multipart/mixed\r\n\r\n--x\r\n", ""},
	}
	for _, c := range cases {
		got := FindExecutable([]byte(c.msg))
		if c.want == "" && got != "" || c.want != "" && !strings.Contains(got, c.want) {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

func TestCheckReplies(t *testing.T) {
	c := &Check{Default: Policy{BlockExecutables: true, RequireUnsubscribe: true, MaxSize: 10000}}
	run := func(body string, lane store.Lane) *accept.Error {
		_, err := c.Check(context.Background(), &accept.CheckInput{Sub: &accept.Submission{TenantID: "t"}, Body: []byte(body), Lane: lane})
		if err == nil {
			return nil
		}
		rej, ok := accept.IsRejection(err)
		if !ok {
			t.Fatalf("not a rejection: %v", err)
		}
		return rej
	}
	exe := multipartMsg(text, attachment("application/octet-stream", `attachment; filename="invoice.exe"`, []byte("x")))
	if r := run(exe, store.LaneNormal); r == nil || r.Code != 550 || r.Enhanced != "5.7.1" || r.HTTPStatus != 422 || r.APICode != "attachment_refused" {
		t.Fatalf("exe: %+v", r)
	}
	if r := run(text, store.LaneLow); r == nil || r.APICode != "list_unsubscribe_required" {
		t.Fatalf("low lane without List-Unsubscribe: %+v", r)
	}
	if r := run("List-Unsubscribe: <mailto:u@example.com>\r\n"+text, store.LaneLow); r != nil {
		t.Fatalf("low lane with List-Unsubscribe: %+v", r)
	}
	c.AddsUnsubscribe = func(l store.Lane) bool { return l == store.LaneLow }
	if r := run(text, store.LaneLow); r != nil {
		t.Fatalf("low lane, posthorn adds the header: %+v", r)
	}
	if r := run(text+strings.Repeat("x", 10000), store.LaneNormal); r == nil || r.Code != 552 || r.HTTPStatus != 413 {
		t.Fatalf("too large: %+v", r)
	}
}

// TestTextOnlyIsNotParsed: a body the API built without attachments is
// not searched for executables (the fuzz test below shows it has none).
func TestTextOnlyIsNotParsed(t *testing.T) {
	c := &Check{Default: Policy{BlockExecutables: true}}
	exe := []byte(multipartMsg(text, attachment("application/octet-stream", `attachment; filename="invoice.exe"`, []byte("x"))))
	if _, err := c.Check(context.Background(), &accept.CheckInput{Sub: &accept.Submission{TenantID: "t"}, Body: exe}); err == nil {
		t.Fatal("an executable passes")
	}
	if _, err := c.Check(context.Background(), &accept.CheckInput{Sub: &accept.Submission{TenantID: "t", TextOnly: true}, Body: exe}); err != nil {
		t.Fatalf("a text-only submission was parsed: %v", err)
	}
}

// FuzzComposedTextHasNoExecutable: whatever a message without attachments
// holds, compose builds a body in which FindExecutable finds nothing, so
// skipping the search for Submission.TextOnly refuses nothing it would.
func FuzzComposedTextHasNoExecutable(f *testing.F) {
	f.Add("run.exe", "MZ\x90", "<p>#!/bin/sh</p>", "x.exe", "Content-Type: application/x-msdownload")
	f.Add("", "#!/bin/sh\n", "", "", "")
	f.Fuzz(func(t *testing.T, subject, text, html, name, header string) {
		m := &compose.Message{From: compose.Address{Name: name, Email: "a@example.com"}, To: compose.AddressList{{Email: "b@example.org"}},
			Subject: subject, Text: text, HTML: html, Headers: map[string]string{"X-Note": header}}
		body, err := compose.Build(m, compose.Options{})
		if err != nil {
			return
		}
		if why := FindExecutable(body); why != "" {
			t.Fatalf("%q: %s", body, why)
		}
	})
}
