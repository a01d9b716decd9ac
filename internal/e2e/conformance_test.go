package e2e

import (
	"context"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/testkit/smtpscript"
)

// notApplicable lists the third-party conformance cases that do not apply
// to posthorn's submission listener as configured, with the reason. Every
// other case must pass.
var notApplicable = map[string]string{
	"<test.smtp2.scr:7>":                   "OpenSMTPD closes silently on the 5th unknown command; posthorn answers 421 4.7.0 before closing (RFC 5321 §3.8); the threshold is smtp.max_errors (5 here, and the case checks it)",
	"<test.smtp0.scr:55>":                  "a bare LF inside a command line: posthorn ends command lines at LF and refuses control characters in addresses (SMTP smuggling hardening)",
	"TestSMTP.test_help":                   "RFC 5321 §4.2 gives HELP the reply 214; aiosmtpd answers 250",
	"TestSMTP.test_mail_smtp_errsyntax[3]": "aiosmtpd refuses ESMTP parameters after plain HELO; posthorn accepts them, as Postfix and OpenSMTPD do (OpenSMTPD's scenarios mailfrom.option-* expect it)",
	"TestSMTP.test_rcpt_smtp_errsyntax[3]": "same as test_mail_smtp_errsyntax[3]: after HELO an unknown RCPT parameter gets 555 (RFC 5321 §4.1.1.11), not 501",
	"TestSMTP.test_mail_valid_address[14]": "[IPv6::1] is not a valid address literal (RFC 5321 §4.1.3); aiosmtpd accepts it",
	"TestSMTP.test_mail_valid_address[15]": "comments are RFC 5322 syntax; RFC 5321 paths have none",
	"TestSMTP.test_mail_valid_address[16]": "comments are RFC 5322 syntax; RFC 5321 paths have none",
	"TestSMTP.test_mail_valid_address[17]": "comments are RFC 5322 syntax; RFC 5321 paths have none",
	"TestSMTP.test_mail_valid_address[18]": "comments and folding whitespace are RFC 5322 syntax; RFC 5321 paths have none",
	"TestSMTP.test_mail_valid_address[28]": "a local part mixing atoms and quoted strings is RFC 5322's obsolete form; RFC 5321 allows a dot-string or one quoted string",
	"TestSMTP.test_mail_valid_address[29]": "a local part mixing atoms and quoted strings is RFC 5322's obsolete form; RFC 5321 allows a dot-string or one quoted string",
	"TestSMTP.test_mail_valid_address[30]": "a backslash outside quotes is not RFC 5321 syntax",
	"TestSMTP.test_mail_valid_address[31]": "a backslash outside quotes is not RFC 5321 syntax",
	"TestSMTP.test_mail_valid_address[37]": "a local part over 64 octets exceeds RFC 5321 §4.5.3.1.1",
	"TestSMTP.test_mail_valid_address[38]": "a path over 256 octets exceeds RFC 5321 §4.5.3.1.3",
	"TestSMTP.test_mail_valid_address[39]": "a path over 256 octets exceeds RFC 5321 §4.5.3.1.3",
}

// conformanceConfig makes posthorn's limits match what the scenarios
// probe where it is a matter of configuration.
const conformanceConfig = `
[smtp]
max_recipients = 1000
max_errors = 5
max_messages_per_session = 100
`

// conformanceDir is the in-repo smtp-conformance data set, which lives
// with the smtpscript interpreter that reads it.
func conformanceDir(t *testing.T) string {
	t.Helper()
	dir, err := smtpscript.ConformanceDir()
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestSMTPConformance(t *testing.T) {
	dir := conformanceDir(t)
	in := Start(t, Options{Trusted: "127.0.0.0/8", Config: conformanceConfig})
	target := smtpscript.Target{Addr: in.SMTP, Timeout: 5 * time.Second}
	ctx := context.Background()

	t.Run("opensmtpd scenarios", func(t *testing.T) {
		files, _ := filepath.Glob(filepath.Join(dir, "opensmtpd-smtpscript", "test.*.scr"))
		sort.Strings(files)
		if len(files) == 0 {
			t.Fatal("no .scr files")
		}
		var all []smtpscript.CaseResult
		for _, f := range files {
			if filepath.Base(f) == "test.base.scr" {
				continue // a self-test of the script language, not SMTP
			}
			s, err := smtpscript.ParseFile(f)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, s.Run(ctx, target)...)
		}
		checkConformance(t, all)
	})

	t.Run("aiosmtpd dialogues", func(t *testing.T) {
		ds, err := smtpscript.LoadDialogues(filepath.Join(dir, "aiosmtpd", "dialogues.json"))
		if err != nil {
			t.Fatal(err)
		}
		ds = smtpscript.FilterDialogues(ds, dialogueApplies)
		checkConformance(t, smtpscript.RunDialogues(ctx, target, ds))
	})
}

func checkConformance(t *testing.T, results []smtpscript.CaseResult) {
	t.Helper()
	pass, skipped := 0, 0
	for _, r := range results {
		label := r.Label()
		if why, ok := notApplicable[label]; ok {
			skipped++
			t.Logf("not applicable: %s: %s", label, why)
			continue
		}
		if r.Pass || r.Skipped {
			pass++
			continue
		}
		t.Errorf("%s: %s\n%s", label, r.Err, r.Transcript)
	}
	t.Logf("%d of %d cases pass, %d not applicable\n%s", pass, len(results)-skipped, skipped, smtpscript.Summary(results))
}

// dialogueApplies keeps aiosmtpd's protocol dialogues whose server
// configuration matches posthorn's (SMTPUTF8 on, no size limit below the
// messages used); auth-required dialogues run in their own test.
func dialogueApplies(d smtpscript.Dialogue) bool {
	return d.HasDecorator("plain_controller") && !d.HasDecorator("auth_required=True") &&
		!d.HasDecorator("data_size_limit") && !d.HasDecorator("enable_SMTPUTF8=False")
}
