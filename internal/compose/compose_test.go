package compose

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func sample() *Message {
	var m Message
	err := json.Unmarshal([]byte(`{
		"from": {"name": "Zoë Ærø", "email": "zoe@example.com"},
		"to": ["Ann <ann@example.org>", "bob@example.org"],
		"cc": [{"email": "carol@example.net"}],
		"bcc": ["hidden@example.net"],
		"reply_to": "replies@example.com",
		"subject": "Grüße — a rather long subject line that needs folding because it goes on and on",
		"text": "Hallo Zoë,\nline two\n.starts with a dot\n",
		"html": "<p>Hallo <b>Zoë</b> <img src=\"cid:logo1\"></p>",
		"headers": {"X-Campaign": "spring", "List-Id": "news <news.example.com>"},
		"attachments": [
			{"filename": "report.pdf", "content": "`+base64.StdEncoding.EncodeToString([]byte("%PDF-1.4 fake"))+`"},
			{"filename": "logo.png", "content_type": "image/png", "content_id": "logo1", "content": "`+base64.StdEncoding.EncodeToString([]byte{0x89, 'P', 'N', 'G', 0, 1, 2})+`"},
			{"filename": "naïve résumé.txt", "content": "`+base64.StdEncoding.EncodeToString([]byte("cv"))+`"}
		]}`), &m)
	if err != nil {
		panic(err)
	}
	return &m
}

func TestValidate(t *testing.T) {
	cases := []struct {
		mutate func(*Message)
		code   string
	}{
		{func(m *Message) { m.From.Email = "" }, "missing_field"},
		{func(m *Message) { m.To[0].Email = "not an address" }, "invalid_address"},
		{func(m *Message) { m.To[0].Email = "user@localhost" }, "invalid_address"},
		{func(m *Message) { m.To, m.Cc, m.Bcc = nil, nil, nil }, "missing_field"},
		{func(m *Message) { m.Text, m.HTML, m.Attachments = "", "", nil }, "missing_field"},
		{func(m *Message) { m.Subject = "hi\r\nBcc: x@y.z" }, "header_injection"},
		{func(m *Message) { m.Headers = map[string]string{"X-A": "1\nBcc: x@y.z"} }, "header_injection"},
		{func(m *Message) { m.Headers = map[string]string{"Content-Type": "text/html"} }, "reserved_header"},
		{func(m *Message) { m.Headers = map[string]string{"Bad Name": "x"} }, "invalid_header"},
		{func(m *Message) { m.Attachments[0].Content = "!!!" }, "invalid_base64"},
		{func(m *Message) { m.Attachments[0].Filename = "" }, "missing_field"},
		{func(m *Message) { m.Attachments[0].ContentType = "not a type" }, "invalid_content_type"},
		{func(m *Message) { m.Text = "a\x00b" }, "invalid_text"},
		{func(m *Message) { m.From.Name = "x\r\nBcc: y@z.example" }, "header_injection"},
	}
	for i, c := range cases {
		m := sample()
		c.mutate(m)
		var fe *FieldError
		if err := m.Validate(); !errors.As(err, &fe) || fe.Code != c.code {
			t.Errorf("case %d: got %v, want code %s", i, err, c.code)
		}
	}
	if err := sample().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestBuildStructure(t *testing.T) {
	b, err := Build(sample(), Options{MessageID: "id1@h.example", Date: time.Unix(0, 0)})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(bytes.ReplaceAll(b, []byte("\r\n"), nil), []byte("\n")) || bytes.Contains(b, []byte("hidden@example.net")) {
		t.Fatal("bare LF in output, or the Bcc recipient leaked into the headers")
	}
	for _, line := range strings.Split(string(b), "\r\n") {
		if len(line) > 998 {
			t.Fatalf("line over 998 characters")
		}
	}
	msg, err := mail.ReadMessage(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	dec := new(mime.WordDecoder)
	if s, _ := dec.DecodeHeader(msg.Header.Get("Subject")); s != sample().Subject {
		t.Fatalf("subject %q", s)
	}
	// mixed(alternative(text, related(html, logo)), report.pdf, résumé)
	mt, params, _ := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if mt != "multipart/mixed" {
		t.Fatalf("top is %s", mt)
	}
	r := multipart.NewReader(msg.Body, params["boundary"])
	var types []string
	for {
		p, err := r.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		types = append(types, ct)
	}
	if strings.Join(types, ",") != "multipart/alternative,application/pdf,text/plain" {
		t.Fatalf("parts: %v", types)
	}
	if got := sample().Recipients(); strings.Join(got, ",") != "ann@example.org,bob@example.org,carol@example.net,hidden@example.net" {
		t.Fatalf("recipients %v", got)
	}
	if _, err := Build(sample(), Options{MaxSize: 100}); err == nil {
		t.Fatal("size limit not enforced")
	}
}

// TestRoundTripPython parses the built message with Python's email
// package, an independent MIME implementation.
func TestRoundTripPython(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not found")
	}
	b, err := Build(sample(), Options{MessageID: "id1@h.example", Date: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	script := `
import sys, json, email, email.policy
m = email.message_from_bytes(sys.stdin.buffer.read(), policy=email.policy.default)
out = {"subject": str(m["subject"]), "from": [m["from"].addresses[0].display_name, m["from"].addresses[0].addr_spec],
       "to": [a.addr_spec for a in m["to"].addresses], "text": m.get_body(("plain",)).get_content(),
       "html": m.get_body(("html",)).get_content(), "attachments": []}
for p in m.walk():
    if p.get_content_disposition() in ("attachment", "inline"):
        out["attachments"].append([p.get_filename(), p.get_content_type(), list(p.get_payload(decode=True)), p.get("Content-ID")])
print(json.dumps(out))
`
	cmd := exec.Command(py, "-c", script)
	cmd.Stdin = bytes.NewReader(b)
	outb, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, outb)
	}
	var got struct {
		Subject     string
		From, To    []string
		Text, HTML  string
		Attachments [][]any
	}
	if err := json.Unmarshal(outb, &got); err != nil {
		t.Fatalf("%s: %v", outb, err)
	}
	s := sample()
	if got.Subject != s.Subject || got.From[0] != "Zoë Ærø" || got.From[1] != "zoe@example.com" || len(got.To) != 2 {
		t.Fatalf("headers: %+v", got)
	}
	lf := func(x string) string { return strings.ReplaceAll(x, "\r\n", "\n") }
	if lf(got.Text) != s.Text || lf(got.HTML) != s.HTML+"\n" && lf(got.HTML) != s.HTML {
		t.Fatalf("bodies: %q %q", got.Text, got.HTML)
	}
	if len(got.Attachments) != 3 {
		t.Fatalf("attachments: %v", got.Attachments)
	}
	names := map[string]bool{}
	for _, a := range got.Attachments {
		names[a[0].(string)] = true
	}
	for _, n := range []string{"report.pdf", "logo.png", "naïve résumé.txt"} {
		if !names[n] {
			t.Errorf("attachment %q missing: %v", n, got.Attachments)
		}
	}
}

func FuzzBuild(f *testing.F) {
	f.Add("subject", "text", "X-H", "value")
	f.Fuzz(func(t *testing.T, subject, text, hname, hval string) {
		m := &Message{From: Address{Email: "a@b.example"}, To: AddressList{{Email: "c@d.example"}}, Subject: subject, Text: text,
			Headers: map[string]string{hname: hval}}
		b, err := Build(m, Options{MessageID: "x@y.example"})
		if err != nil {
			return
		}
		msg, err := mail.ReadMessage(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("built message does not parse: %v\n%q", err, b)
		}
		if len(msg.Header["Bcc"]) > 0 {
			t.Fatalf("header injection: %q", b)
		}
	})
}
