package compose

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

var pngBytes = []byte{0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R', 0xff, 0xfe, '\r', 0}

// richMessage has everything at once: text, html, an inline image, two
// attachments, and non-ASCII subject, display names and filenames.
func richMessage(t *testing.T) *Message {
	t.Helper()
	var m Message
	body := map[string]any{
		"from":     map[string]string{"name": "Zoë Ærø-Łukasiewicz", "email": "zoe@example.com"},
		"to":       []any{"Ann O'Neil <ann@example.org>", "bob@example.org", map[string]string{"name": "山田 太郎", "email": "taro@example.jp"}},
		"cc":       []any{map[string]string{"name": "Carol \"CJ\" Jones, PhD", "email": "carol@example.net"}},
		"bcc":      "hidden@example.net",
		"reply_to": "Support Team <support@example.com>",
		"subject":  "Grüße aus Köln — your invoice №42 is ready ✓ (and this subject is long enough to fold twice, really)",
		"text":     "Hallo Zoë,\n\nyour invoice is attached.\n.a line starting with a dot\nFrom the start of a line\ntrailing space \n" + strings.Repeat("long line ", 20) + "\nEnde.\n",
		"html":     "<html><body><p>Hallo <b>Zoë</b>,</p><p>" + strings.Repeat("lorem ipsum ", 20) + "</p><img src=\"cid:logo@example.com\" alt=\"Logo\"></body></html>\n",
		"headers": map[string]string{
			"List-Unsubscribe": "<mailto:unsubscribe@example.com?subject=unsubscribe>, <https://example.com/u/abc>",
			"X-Campaign":       "spring — sale ☀",
			"In-Reply-To":      "<abc@example.com>",
		},
		"attachments": []map[string]string{
			{"filename": "invoice 42.pdf", "content": "JVBERi0xLjQKJcOkw7zDtsOfCg=="},
			{"filename": "logo.png", "content_type": "image/png", "content_id": "logo@example.com", "content": encodeStd(pngBytes)},
			{"filename": "Übersicht — naïve résumé.txt", "content_type": "text/plain; charset=utf-8", "content": encodeStd([]byte("Grüße\r\nzwei Zeilen\n"))},
		},
	}
	raw, _ := json.Marshal(body)
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	return &m
}

func TestRoundTrip(t *testing.T) {
	m := richMessage(t)
	raw, err := Build(m, Options{MessageID: "01J0ABC@mail.example.com", Date: time.Date(2026, 3, 1, 9, 30, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	checkWire(t, raw)
	headers := []string{"List-Unsubscribe", "X-Campaign", "In-Reply-To"}
	want := expected(m, "01J0ABC@mail.example.com", headers...)
	want.Structure = "multipart/mixed[multipart/alternative[text/plain,multipart/related[text/html,image/png]],application/pdf,text/plain]"
	// The inline image is read in tree order, before the attachments.
	want.Attachments = []attachmentSummary{want.Attachments[1], want.Attachments[0], want.Attachments[2]}

	t.Run("go", func(t *testing.T) {
		compareSummary(t, "net/mail + mime/multipart", goSummary(t, raw, headers...), want)
	})
	t.Run("python", func(t *testing.T) {
		compareSummary(t, "Python's email package", pythonSummary(t, raw, headers...), want)
	})
	if t.Failed() {
		t.Logf("message:\n%s", raw)
	}
}

// TestRoundTripShapes sends each structure through both readers.
func TestRoundTripShapes(t *testing.T) {
	for _, c := range structureCases {
		t.Run(c.name, func(t *testing.T) {
			m := shapeMessage(c.text, c.html, c.attach...)
			raw, err := Build(m, Options{MessageID: "shape@example.com"})
			if err != nil {
				t.Fatal(err)
			}
			checkWire(t, raw)
			want := expected(m, "shape@example.com")
			want.Structure = c.structure
			if c.structure == "text/plain" || c.structure == "text/html" {
				// A single-part body always ends with a line break.
				want.Text, want.HTML = withLF(want.Text), withLF(want.HTML)
			}
			want.Attachments = nil
			got := goSummary(t, raw)
			py := pythonSummary(t, raw)
			for _, s := range []*summary{&got, &py} {
				s.Attachments = nil
			}
			compareSummary(t, "net/mail + mime/multipart", got, want)
			compareSummary(t, "Python's email package", py, want)
		})
	}
}

func withLF(s string) string {
	if s != "" && !strings.HasSuffix(s, "\n") {
		return s + "\n"
	}
	return s
}

// TestRoundTripAddresses checks address forms that are easy to get wrong.
func TestRoundTripAddresses(t *testing.T) {
	to := AddressList{
		{Name: "", Email: `"john smith"@example.com`},
		{Name: "Dr. Who (Time Lord)", Email: "who@[192.0.2.1]"},
		{Name: `back\slash "quoted"`, Email: "x@example.org"},
		{Name: " leading and trailing ", Email: "y@example.org"},
		{Name: "=?utf-8?q?not_encoded?=", Email: "z@example.org"},
		{Name: "Ελένη Παπαδοπούλου", Email: "eleni@example.gr"},
		{Name: "a rather long plain ASCII display name that goes past sixty characters", Email: "long@example.org"},
	}
	m := &Message{From: Address{Email: "sender@example.com"}, To: to, Subject: "  spaced  subject  ", Text: "x\n"}
	raw, err := Build(m, Options{MessageID: "addr@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	checkWire(t, raw)
	want := expected(m, "addr@example.com")
	want.Structure = "text/plain"
	compareSummary(t, "net/mail", goSummary(t, raw), want)
	compareSummary(t, "Python's email package", pythonSummary(t, raw), want)
	if t.Failed() {
		t.Logf("message:\n%s", raw)
	}
}

// checkWire checks the rules every built message follows on the wire:
// CRLF only, lines of at most 998 characters, header lines of at most 78
// unless a single word is longer, and a header block where every line is a
// field or a non-blank continuation.
func checkWire(t *testing.T, raw []byte) {
	t.Helper()
	if !bytes.HasSuffix(raw, []byte("\r\n")) {
		t.Errorf("message does not end with CRLF")
	}
	for i, c := range raw {
		if c == '\n' && (i == 0 || raw[i-1] != '\r') || c == '\r' && (i+1 == len(raw) || raw[i+1] != '\n') {
			t.Fatalf("bare CR or LF at byte %d", i)
		}
	}
	head, _, ok := bytes.Cut(raw, []byte("\r\n\r\n"))
	if !ok {
		t.Fatal("no blank line after the header")
	}
	for _, line := range strings.Split(string(raw), "\r\n") {
		if len(line) > 998 {
			t.Errorf("line of %d characters", len(line))
		}
	}
	for _, line := range strings.Split(string(head), "\r\n") {
		if strings.TrimSpace(line) == "" {
			t.Errorf("blank continuation line in the header")
		}
		if line[0] != ' ' && line[0] != '\t' && !strings.Contains(line, ":") {
			t.Errorf("header line is neither a field nor a continuation: %q", line)
		}
		if len(line) > 78 && strings.Contains(strings.TrimSpace(line[strings.IndexByte(line, ':')+1:]), " ") {
			t.Errorf("header line of %d characters could have been folded: %q", len(line), line)
		}
	}
}

// TestLongEncodedName: a display name needing several encoded-words comes
// back exactly in Go; Python's email package (policy.default) joins the
// words of a phrase with a space, against RFC 2047 §6.2, so only the
// characters are compared there.
func TestLongEncodedName(t *testing.T) {
	name := strings.Repeat("Zoë Ærø ", 12) + "Ende"
	m := &Message{From: Address{Name: name, Email: "zoe@example.com"}, To: AddressList{{Email: "b@example.org"}}, Text: "x\n"}
	raw, err := Build(m, Options{MessageID: "n@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	checkWire(t, raw)
	if got := goSummary(t, raw).From[0].Name; got != name {
		t.Errorf("net/mail: %q", got)
	}
	py := pythonSummary(t, raw).From[0].Name
	if strings.ReplaceAll(py, " ", "") != strings.ReplaceAll(name, " ", "") {
		t.Errorf("Python: %q", py)
	}
}
