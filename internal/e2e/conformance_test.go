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
	// OpenSMTPD's own limits (test.smtp2); RFC 5321 sets none of them.
	"test.smtp2.scr#1": "OpenSMTPD closes after 5 unknown commands; posthorn (go-smtp) closes after 4 syntax errors and does not count unknown commands separately",
	"test.smtp2.scr#2": "OpenSMTPD caps a message at 1000 RCPT; posthorn's cap is smtp.max_recipients (here 100, answered 452 4.5.3)",
	"test.smtp2.scr#3": "OpenSMTPD caps a session at 100 messages; posthorn sets no per-session message cap",
}

// conformanceConfig makes posthorn's limits match what the scenarios
// probe where it is a matter of configuration.
const conformanceConfig = `
[smtp]
max_recipients = 100
`

func conformanceDir(t *testing.T) string {
	dir, err := smtpscript.ConformanceDir()
	if err != nil {
		requireData(t, err)
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
