package compose

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"testing"
	"time"
)

func encodeStd(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// counter returns a boundary generator giving b1, b2, ...
func counter() func() string {
	n := 0
	return func() string { n++; return fmt.Sprintf("b%d", n) }
}

var (
	pdf    = Attachment{Filename: "a.pdf", Content: []byte("%PDF-1.4")}
	inline = Attachment{Filename: "logo.png", ContentType: "image/png", ContentID: "logo", Content: pngBytes}
	notes  = Attachment{Filename: "notes.txt", Content: []byte("notes\n")}
)

func shapeMessage(text, html string, attach ...Attachment) *Message {
	return &Message{From: Address{Name: "Ann", Email: "ann@example.com"}, To: AddressList{{Email: "bob@example.org"}},
		Subject: "shapes", Text: text, HTML: html, Attachments: attach}
}

var structureCases = []struct {
	name, text, html string
	attach           []Attachment
	structure        string
}{
	{"text", "hello\n", "", nil, "text/plain"},
	{"text without final newline", "hello", "", nil, "text/plain"},
	{"html", "", "<p>hi</p>", nil, "text/html"},
	{"text and html", "hi\n", "<p>hi</p>", nil, "multipart/alternative[text/plain,text/html]"},
	{"html with inline", "", "<img src=cid:logo>", []Attachment{inline}, "multipart/related[text/html,image/png]"},
	{"text, html, inline", "hi", "<img src=cid:logo>", []Attachment{inline},
		"multipart/alternative[text/plain,multipart/related[text/html,image/png]]"},
	{"text and attachment", "hi", "", []Attachment{pdf}, "multipart/mixed[text/plain,application/pdf]"},
	{"inline without html", "hi", "", []Attachment{inline}, "multipart/mixed[text/plain,image/png]"},
	{"attachments only", "", "", []Attachment{pdf, notes}, "multipart/mixed[application/pdf,text/plain]"},
	{"everything", "hi\r\nthere\r", "<p>hi</p>\n", []Attachment{pdf, inline, notes},
		"multipart/mixed[multipart/alternative[text/plain,multipart/related[text/html,image/png]],application/pdf,text/plain]"},
}

func TestBuildStructure(t *testing.T) {
	for _, c := range structureCases {
		t.Run(c.name, func(t *testing.T) {
			raw, err := Build(shapeMessage(c.text, c.html, c.attach...), Options{MessageID: "s@example.com", Boundary: counter()})
			if err != nil {
				t.Fatal(err)
			}
			checkWire(t, raw)
			if got := goSummary(t, raw).Structure; got != c.structure {
				t.Errorf("structure %s, want %s", got, c.structure)
			}
		})
	}
}

// TestBuildGolden pins the exact output: header order, encodings,
// boundaries (injected), CRLF everywhere.
func TestBuildGolden(t *testing.T) {
	m := &Message{
		From:    Address{Name: "Ann Example", Email: "ann@example.com"},
		To:      AddressList{{Email: "bob@example.org"}, {Name: "Jörg", Email: "joerg@example.de"}},
		Cc:      AddressList{{Email: "carol@example.net"}},
		Bcc:     AddressList{{Email: "secret@example.net"}},
		ReplyTo: AddressList{{Email: "replies@example.com"}},
		Subject: "Hello",
		Text:    "Hi Bob,\nsee you.\n",
		HTML:    "<p>Hi Bob, see you. Schöne Grüße</p>",
		Headers: map[string]string{"X-Tag": "a", "List-Unsubscribe": "<mailto:u@example.com>"},
		Attachments: []Attachment{{Filename: "Grüße.txt", ContentType: "text/plain", Content: []byte("x")},
			{Filename: "logo.png", ContentID: "logo", Content: []byte{1, 2, 3}}},
	}
	raw, err := Build(m, Options{MessageID: "id1@example.com", Date: time.Date(2026, 1, 2, 15, 4, 5, 0, time.FixedZone("", 3600)), Boundary: counter()})
	if err != nil {
		t.Fatal(err)
	}
	want := strings.ReplaceAll(`From: "Ann Example" <ann@example.com>
To: bob@example.org, =?utf-8?q?J=C3=B6rg?= <joerg@example.de>
Cc: carol@example.net
Reply-To: replies@example.com
Subject: Hello
Date: Fri, 02 Jan 2026 15:04:05 +0100
Message-ID: <id1@example.com>
MIME-Version: 1.0
List-Unsubscribe: <mailto:u@example.com>
X-Tag: a
Content-Type: multipart/mixed; boundary=b3

--b3
Content-Type: multipart/alternative; boundary=b2

--b2
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 7bit

Hi Bob,
see you.

--b2
Content-Type: multipart/related; boundary=b1

--b1
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: quoted-printable

<p>Hi Bob, see you. Sch=C3=B6ne Gr=C3=BC=C3=9Fe</p>
--b1
Content-Type: image/png; name=logo.png
Content-Transfer-Encoding: base64
Content-Disposition: inline; filename=logo.png
Content-ID: <logo>

AQID
--b1--
--b2--
--b3
Content-Type: text/plain; name*=utf-8''Gr%C3%BC%C3%9Fe.txt
Content-Transfer-Encoding: base64
Content-Disposition: attachment; filename*=utf-8''Gr%C3%BC%C3%9Fe.txt

eA==
--b3--
`, "\n", "\r\n")
	if string(raw) != want {
		t.Errorf("output differs:\n%s", lineDiff(want, string(raw)))
	}
	again, _ := Build(m, Options{MessageID: "id1@example.com", Date: time.Date(2026, 1, 2, 15, 4, 5, 0, time.FixedZone("", 3600)), Boundary: counter()})
	if !bytes.Equal(raw, again) {
		t.Error("two builds with the same options differ")
	}
}

func TestBuildHeaders(t *testing.T) {
	m := shapeMessage("hi\n", "")
	m.To, m.Bcc = nil, AddressList{{Email: "hidden@example.org"}}
	raw, err := Build(m, Options{Hostname: "mx.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := mail.ReadMessage(bytes.NewReader(raw))
	if got := msg.Header.Get("To"); got != "undisclosed-recipients:;" {
		t.Errorf("To for a Bcc-only message: %q", got)
	}
	if bytes.Contains(raw, []byte("hidden@")) {
		t.Error("the Bcc recipient is in the message")
	}
	if id := msg.Header.Get("Message-Id"); !strings.HasSuffix(id, "@mx.example.com>") || len(id) < 40 {
		t.Errorf("generated Message-ID %q", id)
	}
	if d, err := msg.Header.Date(); err != nil || time.Since(d) > time.Minute {
		t.Errorf("default Date %v %v", d, err)
	}
	if _, err := Build(m, Options{MessageID: "<a@b.example>"}); err == nil || errors.As(err, new(*FieldError)) {
		t.Errorf("a Message-ID with brackets: %v", err)
	}
}

func TestBuildFolding(t *testing.T) {
	long := strings.Repeat("word ", 40) + "end"
	var many AddressList
	for i := range 15 {
		many = append(many, Address{Name: fmt.Sprintf("Person Number %d", i), Email: fmt.Sprintf("p%d@example.org", i)})
	}
	cases := []struct {
		name string
		m    func(*Message)
		want string // a header line prefix that must be present
	}{
		{"long ASCII subject folds at spaces", func(m *Message) { m.Subject = long }, "Subject: word word"},
		{"unbreakable subject is encoded", func(m *Message) { m.Subject = strings.Repeat("x", 1200) }, "Subject: =?utf-8?"},
		{"subject with =? is encoded", func(m *Message) { m.Subject = "price =?10?=" }, "Subject: =?utf-8?"},
		{"non-ASCII subject", func(m *Message) { m.Subject = strings.Repeat("Grüße ", 30) }, "Subject: =?utf-8?b?"},
		{"CJK subject uses B", func(m *Message) { m.Subject = strings.Repeat("日本語の件名", 10) }, "Subject: =?utf-8?b?"},
		{"many recipients", func(m *Message) { m.To = many }, `To: "Person Number 0" <p0@example.org>,`},
		{"long name", func(m *Message) { m.From.Name = long }, `From: "word word`},
		{"long non-ASCII header", func(m *Message) { m.Headers = map[string]string{"X-Note": strings.Repeat("é", 100)} }, "X-Note: =?utf-8?"},
		{"long ASCII header", func(m *Message) { m.Headers = map[string]string{"X-Note": long} }, "X-Note: word"},
		{"long filename", func(m *Message) {
			m.Attachments = []Attachment{{Filename: strings.Repeat("ü", 125) + ".pdf", Content: []byte("x")}}
		}, "Content-Disposition: attachment;"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := shapeMessage("hi\n", "")
			c.m(m)
			raw, err := Build(m, Options{MessageID: "f@example.com"})
			if err != nil {
				t.Fatal(err)
			}
			checkWire(t, raw)
			if !bytes.Contains(append([]byte("\r\n"), raw...), []byte("\r\n"+c.want)) {
				t.Errorf("no line starting %q in\n%s", c.want, raw)
			}
			want := expected(m, "f@example.com")
			want.Structure, want.Attachments = "", nil
			for _, r := range []struct {
				name string
				s    summary
			}{{"go", goSummary(t, raw)}, {"python", pythonSummary(t, raw)}} {
				r.s.Structure, r.s.Attachments = "", nil
				compareSummary(t, r.name, r.s, want)
			}
		})
	}
}

func TestBuildBodyEncoding(t *testing.T) {
	cases := []struct{ text, cte string }{
		{"plain ASCII\nshort lines\n", "7bit"},
		{strings.Repeat("a", 78) + "\n", "7bit"},
		{strings.Repeat("a", 79) + "\n", "quoted-printable"},
		{"trailing space \n", "quoted-printable"},
		{"tab\there\n", "7bit"},
		{"control \x07 bell\n", "quoted-printable"},
		{"Grüße\n", "quoted-printable"},
		{"=3D is not encoded in 7bit\n", "7bit"},
	}
	for _, c := range cases {
		raw, err := Build(shapeMessage(c.text, ""), Options{MessageID: "e@example.com"})
		if err != nil {
			t.Fatal(err)
		}
		msg, _ := mail.ReadMessage(bytes.NewReader(raw))
		if got := msg.Header.Get("Content-Transfer-Encoding"); got != c.cte {
			t.Errorf("%q: %s, want %s", c.text, got, c.cte)
		}
		if got := goSummary(t, raw).Text; got != c.text {
			t.Errorf("%q comes back as %q", c.text, got)
		}
	}
	// Attachments: base64 in lines of 76.
	big := bytes.Repeat([]byte{0, 1, 2, 0xff}, 100)
	raw, _ := Build(shapeMessage("x", "", Attachment{Filename: "b.bin", Content: big}), Options{MessageID: "e@example.com"})
	_, body, _ := bytes.Cut(raw, []byte("Content-Disposition: attachment; filename=b.bin\r\n\r\n"))
	lines := strings.Split(string(body), "\r\n")
	if len(lines[0]) != 76 || len(lines) < 6 {
		t.Errorf("base64 lines: %q", lines[:2])
	}
}

func TestBuildBoundaries(t *testing.T) {
	m := shapeMessage("contains =_clash and b1 and b2 and b3", "<p>x</p>")
	calls := 0
	gen := func() string {
		calls++
		return []string{"b1", "b2", "=_clash", "fresh"}[min(calls-1, 3)]
	}
	raw, err := Build(m, Options{MessageID: "b@example.com", Boundary: gen})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(raw, []byte("boundary=fresh")) || calls != 4 {
		t.Errorf("clashing boundaries were not skipped (%d calls):\n%s", calls, raw)
	}
	if _, err := Build(m, Options{Boundary: func() string { return "b1" }}); err == nil {
		t.Error("a generator that always clashes must fail")
	}
	for _, bad := range []string{"", "ends in space ", strings.Repeat("x", 71), "no\"quote", "tab\t"} {
		if _, err := Build(m, Options{Boundary: func() string { return bad }}); err == nil {
			t.Errorf("invalid boundary %q accepted", bad)
		}
	}
	// The default generator: random, distinct per multipart, safe in QP and base64.
	raw1, _ := Build(richMessage(t), Options{})
	raw2, _ := Build(richMessage(t), Options{})
	b1 := goSummary(t, raw1)
	if bytes.Equal(raw1, raw2) || b1.Structure == "" {
		t.Error("default boundaries are not random")
	}
}

func TestBuildMaxSize(t *testing.T) {
	m := shapeMessage("hello\n", "", Attachment{Filename: "big.bin", Content: make([]byte, 3000)})
	raw, err := Build(m, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, limit := range []int{len(raw) - 1, 1000} {
		var fe *FieldError
		if _, err := Build(m, Options{MaxSize: limit}); !errors.As(err, &fe) || fe.Code != CodeTooLarge {
			t.Errorf("limit %d: %v", limit, err)
		}
	}
	if _, err := Build(m, Options{MaxSize: len(raw)}); err != nil {
		t.Errorf("under the limit: %v", err)
	}
}

func TestBuildValidates(t *testing.T) {
	m := shapeMessage("x", "")
	m.Headers = map[string]string{"X-A": "1\r\nBcc: victim@example.org"}
	var fe *FieldError
	if _, err := Build(m, Options{}); !errors.As(err, &fe) || fe.Code != CodeHeaderInjection {
		t.Errorf("Build does not validate: %v", err)
	}
}

// BenchmarkBuild builds the bulk benchmark's message: 1 KB of text in
// lines of 75 characters.
func BenchmarkBuild(b *testing.B) {
	m := &Message{From: Address{Email: "app@app.test"}, To: AddressList{{Email: "rcpt@sink.test"}}, Subject: "bulk",
		Text: strings.Repeat(strings.Repeat("x", 75)+"\n", 13)}
	opts := Options{MessageID: "01J00000000000000000000000@mta.test", Date: time.Unix(1e9, 0), Hostname: "mta.test"}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := Build(m, opts); err != nil {
			b.Fatal(err)
		}
	}
}
