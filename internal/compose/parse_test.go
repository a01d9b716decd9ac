package compose

// Independent readers of built messages: Go's net/mail and mime/multipart
// here, Python's email package in roundtrip_test.go. Both produce a
// summary, compared with what the Message asked for.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/posthorn/posthorn/internal/smtpproto"
)

type mailbox struct {
	Name  string `json:"name"`
	Email string `json:"email"`
}

type attachmentSummary struct {
	Filename    string `json:"filename"`
	ContentType string `json:"content_type"`
	Disposition string `json:"disposition"`
	ContentID   string `json:"content_id"`
	Data        []byte `json:"data"`
}

type summary struct {
	Subject     string              `json:"subject"`
	From        []mailbox           `json:"from"`
	To          []mailbox           `json:"to"`
	Cc          []mailbox           `json:"cc"`
	ReplyTo     []mailbox           `json:"reply_to"`
	HasBcc      bool                `json:"has_bcc"`
	MessageID   string              `json:"message_id"`
	Structure   string              `json:"structure"`
	Text        string              `json:"text"`
	HTML        string              `json:"html"`
	Headers     map[string]string   `json:"headers"`
	Attachments []attachmentSummary `json:"attachments"`
	Defects     []string            `json:"defects"`
}

// expected is the summary a correct reader gets from m (line breaks as
// LF, which is how both readers' output is compared).
func expected(m *Message, messageID string, headers ...string) summary {
	boxes := func(l []Address) []mailbox {
		var out []mailbox
		for _, a := range l {
			out = append(out, mailbox{a.Name, a.Email})
		}
		return out
	}
	lf := func(s string) string { return strings.ReplaceAll(crlf(s), "\r\n", "\n") }
	s := summary{Subject: m.Subject, From: boxes([]Address{m.From}), To: boxes(m.To), Cc: boxes(m.Cc), ReplyTo: boxes(m.ReplyTo),
		MessageID: "<" + messageID + ">", Text: lf(m.Text), HTML: lf(m.HTML), Headers: map[string]string{}}
	for _, h := range headers {
		s.Headers[h] = m.Headers[h]
	}
	for _, a := range m.Attachments {
		mt, _, _ := a.mediaType()
		disp := "attachment"
		if a.ContentID != "" {
			disp = "inline"
		}
		cid := ""
		if a.ContentID != "" {
			cid = "<" + a.ContentID + ">"
		}
		s.Attachments = append(s.Attachments, attachmentSummary{a.Filename, mt, disp, cid, a.Content})
	}
	return s
}

// goSummary reads a built message with net/mail and mime/multipart.
func goSummary(t *testing.T, raw []byte, headers ...string) summary {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("net/mail: %v\n%s", err, raw)
	}
	dec := new(mime.WordDecoder)
	decode := func(s string) string {
		d, err := dec.DecodeHeader(s)
		if err != nil {
			t.Fatalf("decoding %q: %v", s, err)
		}
		return d
	}
	boxes := func(name string) []mailbox {
		if msg.Header.Get(name) == "" {
			return nil
		}
		l, err := msg.Header.AddressList(name)
		if err != nil {
			t.Fatalf("%s: %v (%q)", name, err, msg.Header.Get(name))
		}
		var out []mailbox
		for _, a := range l {
			// net/mail gives the local part unquoted.
			at := strings.LastIndexByte(a.Address, '@')
			out = append(out, mailbox{a.Name, smtpproto.QuoteLocal(a.Address[:at]) + a.Address[at:]})
		}
		return out
	}
	s := summary{Subject: decode(msg.Header.Get("Subject")), From: boxes("From"), Cc: boxes("Cc"), ReplyTo: boxes("Reply-To"),
		HasBcc: len(msg.Header["Bcc"]) > 0, MessageID: msg.Header.Get("Message-Id"), Headers: map[string]string{}}
	if msg.Header.Get("To") != "undisclosed-recipients:;" {
		s.To = boxes("To")
	}
	for _, h := range headers {
		s.Headers[h] = decode(msg.Header.Get(h))
	}
	s.Structure = walk(t, &s, textproto.MIMEHeader(msg.Header), msg.Body)
	return s
}

func walk(t *testing.T, s *summary, h textproto.MIMEHeader, body io.Reader) string {
	t.Helper()
	mt, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil {
		t.Fatalf("Content-Type %q: %v", h.Get("Content-Type"), err)
	}
	if strings.HasPrefix(mt, "multipart/") {
		r := multipart.NewReader(body, params["boundary"])
		var kids []string
		for {
			p, err := r.NextRawPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("multipart: %v", err)
			}
			kids = append(kids, walk(t, s, p.Header, p))
		}
		return mt + "[" + strings.Join(kids, ",") + "]"
	}
	switch cte := h.Get("Content-Transfer-Encoding"); cte {
	case "quoted-printable":
		body = quotedprintable.NewReader(body)
	case "base64":
		body = base64.NewDecoder(base64.StdEncoding, body)
	case "7bit":
	default:
		t.Fatalf("Content-Transfer-Encoding %q", cte)
	}
	data, err := io.ReadAll(body)
	if err != nil {
		t.Fatalf("reading %s: %v", mt, err)
	}
	disp, dparams, _ := mime.ParseMediaType(h.Get("Content-Disposition"))
	if disp == "" && (mt == "text/plain" || mt == "text/html") {
		if params["charset"] != "utf-8" {
			t.Errorf("%s without charset=utf-8", mt)
		}
		text := strings.ReplaceAll(string(data), "\r\n", "\n")
		if mt == "text/plain" {
			s.Text = text
		} else {
			s.HTML = text
		}
		return mt
	}
	s.Attachments = append(s.Attachments, attachmentSummary{dparams["filename"], mt, disp, h.Get("Content-Id"), data})
	return mt
}

// pythonScript prints the summary as Python's email package (policy.default)
// sees the message on stdin; argv names extra headers to report.
const pythonScript = `
import sys, json, base64, email
from email import policy
msg = email.message_from_bytes(sys.stdin.buffer.read(), policy=policy.default)
defects = []
def boxes(name):
    h = msg[name]
    if h is None or str(h) == "undisclosed-recipients:;":
        return None
    defects.extend("%s: %r" % (name, d) for d in h.defects)
    return [{"name": a.display_name, "email": a.addr_spec} for a in h.addresses]
def structure(p):
    defects.extend("%s: %r" % (p.get_content_type(), d) for d in p.defects)
    if p.is_multipart():
        return p.get_content_type() + "[" + ",".join(structure(c) for c in p.iter_parts()) + "]"
    return p.get_content_type()
out = {"subject": str(msg["subject"] or ""), "from": boxes("from"), "to": boxes("to"), "cc": boxes("cc"),
       "reply_to": boxes("reply-to"), "has_bcc": "bcc" in msg, "message_id": str(msg["message-id"]),
       "structure": structure(msg), "text": "", "html": "", "headers": {}, "attachments": [], "defects": defects}
for name in sys.argv[1:]:
    out["headers"][name] = str(msg[name])
bodies = []
for kind in ("plain", "html"):
    b = msg.get_body(preferencelist=(kind,))
    if b is not None and b.get_content_type() == "text/" + kind:
        bodies.append(b)
        out["text" if kind == "plain" else "html"] = b.get_content().replace("\r\n", "\n")
for p in msg.walk():
    if p.is_multipart() or any(p is b for b in bodies):
        continue
    out["attachments"].append({"filename": p.get_filename(), "content_type": p.get_content_type(),
        "disposition": p.get_content_disposition(), "content_id": str(p["content-id"] or ""),
        "data": base64.b64encode(p.get_payload(decode=True)).decode()})
print(json.dumps(out))
`

// pythonSummary runs pythonScript; it skips the test when there is no
// python3 (unless POSTHORN_REQUIRE_TOOLS=1, as in CI).
func pythonSummary(t *testing.T, raw []byte, headers ...string) summary {
	t.Helper()
	py := "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		if py, err = exec.LookPath("python3"); err != nil {
			if os.Getenv("POSTHORN_REQUIRE_TOOLS") == "1" {
				t.Fatal("python3 is not installed (POSTHORN_REQUIRE_TOOLS=1)")
			}
			t.Skip("python3 not found: the round trip through Python's email package is skipped")
		}
	}
	cmd := exec.Command(py, append([]string{"-c", pythonScript}, headers...)...)
	cmd.Stdin = bytes.NewReader(raw)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, stderr.Bytes())
	}
	var s summary
	if err := json.Unmarshal(out, &s); err != nil {
		t.Fatalf("python output %s: %v", out, err)
	}
	return s
}

// compareSummary reports every difference between got and want.
func compareSummary(t *testing.T, reader string, got, want summary) {
	t.Helper()
	for _, s := range []*summary{&got, &want} {
		if len(s.Defects) == 0 {
			s.Defects = nil
		}
		if len(s.Attachments) == 0 {
			s.Attachments = nil
		}
		for i := range s.Attachments {
			if s.Attachments[i].Data == nil {
				s.Attachments[i].Data = []byte{}
			}
		}
	}
	g, _ := json.MarshalIndent(got, "", "  ")
	w, _ := json.MarshalIndent(want, "", "  ")
	if !bytes.Equal(g, w) {
		t.Errorf("%s reads the message differently:\n%s", reader, lineDiff(string(w), string(g)))
	}
}

func lineDiff(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := 0; i < len(wl) || i < len(gl); i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			fmt.Fprintf(&b, "line %d\n  want %s\n  got  %s\n", i+1, w, g)
		}
	}
	return b.String()
}
