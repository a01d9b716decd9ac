package bounce

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/posthorn/posthorn/internal/classify"
)

// checkReport asserts what must hold for any input.
func checkReport(t *testing.T, rep *Report) {
	t.Helper()
	switch rep.Kind {
	case KindDSN, KindARF, KindAutoReply, KindNotBounce:
	default:
		t.Fatalf("kind %q", rep.Kind)
	}
	if len(rep.Recipients) > maxRecipients {
		t.Fatalf("%d recipients", len(rep.Recipients))
	}
	for _, r := range rep.Recipients {
		if !validAddress(r.Address) || !utf8.ValidString(r.Address) {
			t.Fatalf("recipient address %q", r.Address)
		}
		if r.Hard && (r.Class != classify.HardBounce || rep.Kind != KindDSN) {
			t.Fatalf("hard recipient with class %q in a %s", r.Class, rep.Kind)
		}
		if r.Hard && strings.HasPrefix(r.Status, "4.") {
			t.Fatalf("a 4.x.x status suppresses %s", r.Address)
		}
		if len(r.Diagnostic) > maxDiagnostic {
			t.Fatalf("diagnostic of %d bytes", len(r.Diagnostic))
		}
	}
	if rep.Kind == KindARF && rep.Feedback == nil {
		t.Fatal("ARF report without feedback")
	}
}

func addSeeds(f *testing.F) {
	for _, dir := range []string{"testdata", filepath.Join("testdata", "sisimai")} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.eml"))
		for _, name := range files {
			if b, err := os.ReadFile(name); err == nil {
				f.Add(b)
			}
		}
	}
}

// FuzzParse: arbitrary bytes never panic, take bounded time and give a
// consistent report.
func FuzzParse(f *testing.F) {
	addSeeds(f)
	f.Add([]byte("Content-Type: multipart/report; boundary=x\n\n--x\nContent-Type: message/delivery-status\n\nFinal-Recipient: rfc822; a@b.example\nStatus: 5.1.1\n--x--\n"))
	f.Add([]byte("From: MAILER-DAEMON@x.example\nSubject: failure notice\n\n<a@b.example>:\n550 5.1.1 no such user\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		start := time.Now()
		rep, err := Parse(raw)
		if err != nil {
			if err != ErrEmpty {
				t.Fatalf("error %v", err)
			}
			return
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("Parse took %v on %d bytes", d, len(raw))
		}
		checkReport(t, rep)
	})
}

// FuzzParseARF: the feedback-report field parser, through a complete ARF
// message and on its own.
func FuzzParseARF(f *testing.F) {
	f.Add("Feedback-Type: abuse\nUser-Agent: x/1\nVersion: 1\nOriginal-Rcpt-To: a@b.example\nOriginal-Mail-From: <s@c.example>\n")
	f.Add("Feedback-Type: opt-out\r\nRemoval-Recipient: u@x.example\r\n\r\nSource-IP: 192.0.2.1\r\n")
	f.Add("Feedback-Type:\n abuse\nReported-URI: http://x\n\tcontinued\nOriginal-Rcpt-To: \"q d\"@x.example (c)\n")
	f.Fuzz(func(t *testing.T, fields string) {
		blocks := fieldBlocks(fields)
		for _, b := range blocks {
			if len(b) == 0 || len(b) > maxFields {
				t.Fatalf("block of %d fields", len(b))
			}
			for _, fl := range b {
				if fl.name == "" || strings.ContainsAny(fl.name, ": \t\n") {
					t.Fatalf("field name %q", fl.name)
				}
			}
			for _, sub := range splitRecipients(b) {
				if len(sub) > len(b) {
					t.Fatal("split grew a block")
				}
			}
		}
		msg := "From: fbl@isp.example\nTo: abuse@posthorn.example\nSubject: report\nMIME-Version: 1.0\n" +
			"Content-Type: multipart/report; report-type=feedback-report; boundary=\"=b=\"\n\n" +
			"--=b=\nContent-Type: text/plain\n\nA complaint.\n\n" +
			"--=b=\nContent-Type: message/feedback-report\n\n" + fields + "\n\n" +
			"--=b=\nContent-Type: text/rfc822-headers\n\nReturn-Path: <bounces+t@bounce.example>\nTo: r@x.example\n--=b=--\n"
		rep, err := Parse([]byte(msg))
		if err != nil {
			t.Fatal(err)
		}
		if rep.Kind != KindARF || rep.Feedback == nil || rep.Feedback.Type == "" {
			t.Fatalf("kind %s feedback %+v", rep.Kind, rep.Feedback)
		}
		checkReport(t, rep)
	})
}
