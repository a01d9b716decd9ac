package bounce

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/classify"
)

type wantRcpt struct {
	addr    string
	status  string
	code    int
	command string
	reason  Reason
	class   classify.Class
	hard    bool
}

var samples = []struct {
	file      string
	kind      Kind
	format    string
	rcpts     []wantRcpt
	messageID string
	token     string
	feedback  string
}{
	{file: "posthorn-dsn.crlf.eml", kind: KindDSN, format: "rfc3464", messageID: "01HZX3J8K2QF7@posthorn.example", token: "d01HZX3J8K2QF7",
		rcpts: []wantRcpt{
			{"ana@example.org", "5.1.1", 550, "RCPT", ReasonUserUnknown, classify.HardBounce, true},
			{"bo@example.org", "4.2.2", 452, "RCPT", ReasonMailboxFull, classify.MailboxFull, false},
		}},
	{file: "global-dsn.eml", kind: KindDSN, format: "rfc6533", messageID: "g1@posthorn.example", token: "tok42",
		rcpts: []wantRcpt{{"用户@例子.example", "5.1.1", 550, "", ReasonUserUnknown, classify.HardBounce, true}}},
	{file: "broken-mime.eml", kind: KindDSN, format: "text", messageID: "b1@posthorn.example", token: "tokbroken",
		rcpts: []wantRcpt{{"carla@example.net", "5.1.1", 550, "RCPT", ReasonUserUnknown, classify.HardBounce, true}}},
	{file: "sisimai/rfc3464-01.eml", kind: KindDSN, format: "rfc3464", messageID: "E1C50F1B-1C83-4820-BC36-AC6FBFBE8568@example.org",
		rcpts: []wantRcpt{{"userunknown@bouncehammer.jp", "5.1.1", 550, "", ReasonUserUnknown, classify.HardBounce, true}}},
	{file: "sisimai/lhost-qmail-01.eml", kind: KindDSN, format: "text", messageID: "000000000.9999999999999.JavaMail.postmaster@mailhub",
		rcpts: []wantRcpt{{"kijitora@example.ne.jp", "5.5.0", 550, "RCPT", ReasonUserUnknown, classify.HardBounce, true}}},
	{file: "sisimai/lhost-qmail-01.cr.eml", kind: KindDSN, format: "text", messageID: "000000000.9999999999999.JavaMail.postmaster@mailhub",
		rcpts: []wantRcpt{{"kijitora@example.ne.jp", "5.5.0", 550, "RCPT", ReasonUserUnknown, classify.HardBounce, true}}},
	{file: "sisimai/lhost-exim-01.eml", kind: KindDSN, format: "text", messageID: "E1P1ce6-000Egt-GZ@e1.example.org",
		rcpts: []wantRcpt{{"kijitora@example.ed.jp", "5.7.0", 550, "MAIL", ReasonBlocked, classify.PolicyBlock, false}}},
	{file: "sisimai/lhost-gmail-01.eml", kind: KindDSN, format: "text",
		rcpts: []wantRcpt{{"userunknown@example.jp", "5.1.1", 550, "", ReasonUserUnknown, classify.HardBounce, true}}},
	{file: "sisimai/lhost-sendmail-14.eml", kind: KindDSN, format: "rfc3464", // forwarded by a person, "> " quoted
		rcpts: []wantRcpt{{"kijitora@example.com", "5.1.1", 550, "DATA", ReasonUserUnknown, classify.HardBounce, true}}},
	{file: "sisimai/lhost-amazonses-10.eml", kind: KindDSN, format: "amazon-ses",
		rcpts: []wantRcpt{{"bounce@simulator.amazonses.com", "5.1.1", 550, "", ReasonUserUnknown, classify.HardBounce, true}}},
	{file: "sisimai/arf-16.eml", kind: KindARF, format: "arf", feedback: "abuse", messageID: "ffffffffffffffffffffffff0000000@example.jp",
		rcpts: []wantRcpt{{addr: "kijitora@example.com"}, {addr: "sironeko@example.com"}, {addr: "mikeneko@example.com"},
			{addr: "sabatora@example.com"}, {addr: "sirokiji@example.org"}, {addr: "kuroneko@example.com"}, {addr: "sabineko@example.com"}}},
	{file: "sisimai/rfc3834-02.eml", kind: KindAutoReply, format: "rfc3834", rcpts: []wantRcpt{{addr: "nekonyaan@example.org"}}},
	{file: "sisimai/is-not-bounce-01.eml", kind: KindNotBounce},
}

func readSample(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSamples(t *testing.T) {
	for _, s := range samples {
		t.Run(s.file, func(t *testing.T) {
			rep, err := Parse(readSample(t, s.file))
			if err != nil {
				t.Fatal(err)
			}
			if rep.Kind != s.kind || rep.Format != s.format {
				t.Fatalf("kind %s/%s, want %s/%s", rep.Kind, rep.Format, s.kind, s.format)
			}
			if len(rep.Recipients) != len(s.rcpts) {
				t.Fatalf("recipients %v, want %d", addrs(rep), len(s.rcpts))
			}
			for i, w := range s.rcpts {
				r := rep.Recipients[i]
				if r.Address != w.addr {
					t.Errorf("recipient %d: %s, want %s", i, r.Address, w.addr)
				}
				if s.kind != KindDSN {
					if r.Hard || r.Class != "" {
						t.Errorf("%s: %s is not a bounce but hard=%v class=%q", s.file, r.Address, r.Hard, r.Class)
					}
					continue
				}
				got := wantRcpt{r.Address, r.Status, r.ReplyCode, r.Command, r.Reason, r.Class, r.Hard}
				if got != w {
					t.Errorf("recipient %d:\n got %+v\nwant %+v\n(diagnostic %q)", i, got, w, r.Diagnostic)
				}
			}
			if s.messageID != "" && rep.Original.MessageID != s.messageID {
				t.Errorf("original Message-ID %q, want %q", rep.Original.MessageID, s.messageID)
			}
			if tok := rep.Token(); s.token != "" && tok != s.token {
				t.Errorf("token %q, want %q", tok, s.token)
			}
			if s.feedback != "" && (rep.Feedback == nil || rep.Feedback.Type != s.feedback) {
				t.Errorf("feedback %+v, want type %s", rep.Feedback, s.feedback)
			}
		})
	}
}

func TestPosthornHeaders(t *testing.T) {
	rep, err := Parse(readSample(t, "posthorn-dsn.crlf.eml"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"X-Posthorn-Tenant": "shop", "X-Posthorn-Delivery": "d01HZX3J8K2QF7"}
	if !reflect.DeepEqual(rep.Original.Posthorn, want) {
		t.Errorf("X-Posthorn headers %v, want %v", rep.Original.Posthorn, want)
	}
	if rep.Original.ReturnPath != "bounces+d01HZX3J8K2QF7@bounce.posthorn.example" {
		t.Errorf("return path %q", rep.Original.ReturnPath)
	}
	if rep.Original.Subject != "March offers — 50% off" {
		t.Errorf("subject %q (RFC 2047 not decoded?)", rep.Original.Subject)
	}
	if rep.OriginalEnvelopeID != "d01HZX3J8K2QF7" || rep.ReportingMTA != "mx.example.org" {
		t.Errorf("per-message fields %q %q", rep.OriginalEnvelopeID, rep.ReportingMTA)
	}
	if rep.Recipients[1].Action != "delayed" || rep.Recipients[1].RemoteMTA != "inbound.example.org" {
		t.Errorf("second recipient %+v", rep.Recipients[1])
	}
	if rep.Notice.DeliveredTo != "bounces+d01HZX3J8K2QF7@bounce.posthorn.example" {
		t.Errorf("delivered-to %q", rep.Notice.DeliveredTo)
	}
	g, _ := Parse(readSample(t, "global-dsn.eml"))
	if got := g.Recipients[0].OriginalRecipient; got != "用户@example.cn" {
		t.Errorf("RFC 6533 \\x{} escapes: original recipient %q", got)
	}
}

// Every sample gives the same answer whatever its line endings.
func TestLineEndings(t *testing.T) {
	for _, s := range samples {
		lf := bytes.ReplaceAll(normalizeEOL(readSample(t, s.file)), []byte("\r\n"), []byte("\n"))
		base, _ := Parse(lf)
		for name, raw := range map[string][]byte{
			"crlf": bytes.ReplaceAll(lf, []byte("\n"), []byte("\r\n")),
			"cr":   bytes.ReplaceAll(lf, []byte("\n"), []byte("\r")),
		} {
			rep, err := Parse(raw)
			if err != nil {
				t.Fatalf("%s %s: %v", s.file, name, err)
			}
			if !reflect.DeepEqual(rep, base) {
				t.Errorf("%s: %s endings give a different report", s.file, name)
			}
		}
	}
}

func TestVERPToken(t *testing.T) {
	for in, want := range map[string]string{
		"bounces+abc123@bounce.example":          "abc123",
		"<Bounces+A-b=c@bounce.example>":         "A-b=c",
		"Mailer <bounces+x@bounce.example>":      "x",
		"bounces@bounce.example":                 "",
		"bounces+@bounce.example":                "",
		"someone+bounces+x@example.org":          "",
		"":                                       "",
		"rfc822; bounces+tok@bounce.example.org": "tok",
	} {
		if got := VERPToken(in); got != want {
			t.Errorf("VERPToken(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestEmpty(t *testing.T) {
	for _, in := range []string{"", " \r\n\t\n"} {
		if _, err := Parse([]byte(in)); !errors.Is(err, ErrEmpty) {
			t.Errorf("Parse(%q) err %v, want ErrEmpty", in, err)
		}
	}
}

// Hostile inputs: each must parse quickly and without panicking.
func TestHostile(t *testing.T) {
	deep := &strings.Builder{}
	for i := 0; i < 200; i++ {
		deep.WriteString("Content-Type: multipart/mixed; boundary=\"b" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + "\"\n\n--b" +
			strings.Repeat("x", i%7) + string(rune('a'+i%26)) + "\n")
	}
	manyRcpts := &strings.Builder{}
	manyRcpts.WriteString("From: MAILER-DAEMON@example.org\nSubject: Undelivered Mail\nContent-Type: multipart/report; report-type=delivery-status; boundary=b\n\n--b\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; x\n")
	for i := 0; i < 5000; i++ {
		manyRcpts.WriteString("\nFinal-Recipient: rfc822; u" + strings.Repeat("1", i%50) + "@example.org\nAction: failed\nStatus: 5.1.1\n")
	}
	textRcpts := "From: MAILER-DAEMON@example.org\nSubject: failure notice\n\n" + strings.Repeat("<user@example.org>: 550 no such user\n", 50000)
	cases := map[string]string{
		"deep multipart":    deep.String(),
		"many recipients":   manyRcpts.String(),
		"many text lines":   textRcpts,
		"huge header":       "Subject: " + strings.Repeat("a", 6<<20),
		"only separators":   strings.Repeat("--\n", 100000),
		"html angle soup":   "Content-Type: text/html\n\n" + strings.Repeat("<", 1<<20) + ">",
		"many boundaries":   "Content-Type: multipart/mixed; boundary=x\n\n" + strings.Repeat("--x\n", 100000),
		"binary":            string(bytes.Repeat([]byte{0, 0xff, '\r', '@', '<', '>', ':', '\n'}, 100000)),
		"bad base64 dsn":    "Content-Type: multipart/report; boundary=b\n\n--b\nContent-Type: message/delivery-status\nContent-Transfer-Encoding: base64\n\n!!!!====****\n--b--\n",
		"header only":       "From: x@example.org",
		"unterminated word": "Subject: =?utf-8?B?" + strings.Repeat("A", 1000),
	}
	for name, in := range cases {
		start := time.Now()
		rep, err := Parse([]byte(in))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		d := time.Since(start)
		if d > 5*time.Second {
			t.Errorf("%s: took %v", name, d)
		}
		t.Logf("%-17s %8d bytes  %v", name, len(in), d.Round(time.Millisecond))
		if len(rep.Recipients) > maxRecipients {
			t.Errorf("%s: %d recipients, cap is %d", name, len(rep.Recipients), maxRecipients)
		}
	}
}

func TestCleanAddress(t *testing.T) {
	for in, want := range map[string]string{
		"rfc822; <User@Example.ORG>":   "User@example.org",
		"\"kijitora\"@Example.com.":    "kijitora@example.com",
		"a+2Bb+40x@example.org":        "a+2Bb+40x@example.org",
		"user@example.org (Comment)":   "user@example.org",
		"  <a@b.example>, ":            "a@b.example",
		"\\x{7528}@example.cn":         "用@example.cn",
		"|/usr/bin/prog a@example.org": "|/usr/bin/prog",
	} {
		if got := cleanAddress(in); got != want {
			t.Errorf("cleanAddress(%q) = %q, want %q", in, got, want)
		}
	}
}
