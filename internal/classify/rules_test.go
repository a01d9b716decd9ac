package classify

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/posthorn/posthorn/internal/smtpproto"
)

func mustParse(t testing.TB, s string) smtpproto.Reply {
	t.Helper()
	r, err := smtpproto.ParseReply(s)
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return r
}

func writeRules(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "rules.toml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestEmbeddedRules(t *testing.T) {
	rules := Default().Rules()
	if len(rules) < 50 {
		t.Fatalf("only %d built-in rules", len(rules))
	}
	names := map[string]bool{}
	for _, r := range rules {
		if names[r.Name] {
			t.Errorf("rule %q twice", r.Name)
		}
		names[r.Name] = true
		if r.Source != BuiltinSource {
			t.Errorf("rule %q: source %q", r.Name, r.Source)
		}
	}
	// The last rule is a catch-all, so the Go fallback is never needed
	// with the built-in rules.
	if last := rules[len(rules)-1]; len(last.Codes)+len(last.Enhanced)+len(last.Phases)+len(last.Text) != 0 {
		t.Errorf("last rule %q is not a catch-all", last.Name)
	}
	t.Logf("%d built-in rules", len(rules))
}

// coverageCases reach the rules that no reply of the table needs.
var coverageCases = []struct{ phase, reply string }{
	{"starttls", "454 4.7.0 TLS not available due to local problem"},
	{"auth", "535 5.7.8 Error: authentication failed"},
	{"rcpt", "550 5.7.28 nope"},
	{"rcpt", "552 5.2.2 nope"},
	{"rcpt", "550 5.7.13 gone"},
	{"rcpt", "550 5.2.3 nope"},
	{"rcpt", "554 5.6.0 nope"},
	{"rcpt", "554 5.5.4 nope"},
	{"rcpt", "550 5.7.99 nope"},
	{"rcpt", "550 5.1.5 nope"},
	{"rcpt", "451 4.4.3 nope"},
	{"rcpt", "451 4.3.0 nope"},
	{"rcpt", "451 4.4.1 nope"},
	{"data", "554 nope"},
	{"rcpt", "503 nope"},
	{"quit", "550 nope"},
	{"rcpt", "550 nope"},
	{"data", "354 go ahead"},
	{"rcpt", "450 4.1.1 <x@example.com>... nope"},
	{"rcpt", "550 Blocked - see https://www.spamcop.net/bl.shtml?192.0.2.1"},
	{"rcpt", "451 4.7.1 Greylisting in action, please come back later"},
	{"rcpt", "550 5.7.1 Message rejected under suspicion of SPAM; try again later"},
	{"data", "550 Message content rejected due to poor reputation of the sender"},
	{"rcpt", "550 User reject due to preferences"},
	{"data", "554 5.7.1 Message rejected due to our terms of service; https://example.com/tos"},
}

// TestRuleCoverage makes sure every built-in rule is reached by some
// reply: a rule that nothing reaches is dead or shadowed by an earlier
// one.
func TestRuleCoverage(t *testing.T) {
	hit := map[string]int{}
	for _, row := range loadTable(t) {
		if r, err := parseTableReply(row.reply); err == nil {
			hit[Default().Classify(row.phase, r).Rule]++
		}
	}
	for _, c := range coverageCases {
		hit[Default().Classify(c.phase, mustParse(t, c.reply)).Rule]++
	}
	hit[Default().Classify("rcpt", smtpproto.Reply{Code: 0}).Rule]++
	for _, r := range Default().Rules() {
		if hit[r.Name] == 0 {
			t.Errorf("rule %q is never reached", r.Name)
		}
	}
}

func TestLoadExtends(t *testing.T) {
	p := writeRules(t, `
disable = ["gmail-unusual-rate"]

[[rule]]
name = "local-relay-quota"
class = "rate_limited"
codes = ["5xx"]
text = ['quota of the day']

[[rule]]
name = "421-generic"   # replaces the built-in rule of that name
class = "deferred"
codes = ["421"]
`)
	c, err := Load(p, false)
	if err != nil {
		t.Fatal(err)
	}
	res := c.Classify("mail", mustParse(t, "550 5.7.1 you used your quota of the day"))
	if res.Class != RateLimited || res.Rule != "local-relay-quota" || res.Source != p || res.Pattern != "quota of the day" {
		t.Errorf("file rule: %+v", res)
	}
	if res := c.Classify("connect", mustParse(t, "421 bye")); res.Class != Deferred || res.Source != p {
		t.Errorf("replaced rule: %+v", res)
	}
	// Disabled: the 550 5.7.28 "unusual rate" falls through to the
	// generic x.7.28 status rule instead.
	if res := c.Classify("data", mustParse(t, "550 5.7.28 Our system has detected an unusual rate")); res.Rule == "gmail-unusual-rate" {
		t.Errorf("disabled rule still used: %+v", res)
	}
	// Built-in rules still apply after the file's.
	if res := c.Classify("rcpt", mustParse(t, "550 5.1.1 user unknown")); res.Class != HardBounce || res.Source != BuiltinSource {
		t.Errorf("built-in rule: %+v", res)
	}
	if n, m := len(c.Rules()), len(Default().Rules()); n != m {
		t.Errorf("%d rules, want %d (one added, one replaced, one disabled)", n, m)
	}
	if c, err := Load("", false); err != nil || c != Default() {
		t.Errorf("Load(\"\") = %v, %v", c, err)
	}
}

func TestLoadReplaces(t *testing.T) {
	p := writeRules(t, `
[[rule]]
name = "only"
class = "deferred"
phases = ["rcpt"]
enhanced = ["5.1.*"]
`)
	c, err := Load(p, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Rules()) != 1 {
		t.Fatalf("%d rules", len(c.Rules()))
	}
	if res := c.Classify("rcpt", mustParse(t, "550 5.1.1 x")); res.Class != Deferred || res.Rule != "only" {
		t.Errorf("%+v", res)
	}
	// No rule matches: the code decides.
	for s, want := range map[string]Class{
		"250 ok": Delivered, "421 x": RateLimited, "451 x": Deferred,
		"550 5.7.1 x": PolicyBlock, "550 x": HardBounce,
	} {
		if res := c.Classify("data", mustParse(t, s)); res.Class != want || res.Rule != "fallback" {
			t.Errorf("%q: %+v, want %s by fallback", s, res, want)
		}
	}
	if res := c.Classify("data", smtpproto.Reply{Code: 0}); res.Class != ProtocolError {
		t.Errorf("code 0: %+v", res)
	}
}

func TestLoadErrors(t *testing.T) {
	for name, body := range map[string]string{
		"bad class":          "[[rule]]\nname='a'\nclass='bounced'",
		"no name":            "[[rule]]\nclass='deferred'",
		"bad regexp":         "[[rule]]\nname='a'\nclass='deferred'\ntext=['(']",
		"empty regexp":       "[[rule]]\nname='a'\nclass='deferred'\ntext=['']",
		"bad code":           "[[rule]]\nname='a'\nclass='deferred'\ncodes=['6xx']",
		"bad code 2":         "[[rule]]\nname='a'\nclass='deferred'\ncodes=['55']",
		"bad enhanced":       "[[rule]]\nname='a'\nclass='deferred'\nenhanced=['5.1']",
		"bad enhanced 2":     "[[rule]]\nname='a'\nclass='deferred'\nnot_enhanced=['3.1.1']",
		"duplicate":          "[[rule]]\nname='a'\nclass='deferred'\n[[rule]]\nname='a'\nclass='deferred'",
		"unknown key":        "[[rule]]\nname='a'\nclass='deferred'\ntexts=['x']",
		"disable unknown":    "disable=['no-such-rule']",
		"escalate_to alone":  "[[rule]]\nname='a'\nclass='deferred'\nescalate_to='hard_bounce'",
		"escalate delivered": "[[rule]]\nname='a'\nclass='deferred'\nescalate_after=2\nescalate_to='delivered'",
		"negative escalate":  "[[rule]]\nname='a'\nclass='deferred'\nescalate_after=-1",
		"not toml":           "[[rule]\nname=",
	} {
		if _, err := Load(writeRules(t, body), false); err == nil {
			t.Errorf("%s: no error", name)
		} else if !strings.Contains(err.Error(), "classify:") {
			t.Errorf("%s: error %q lacks context", name, err)
		}
	}
	if _, err := Load(writeRules(t, "disable=['delivered']"), true); err == nil {
		t.Error("disable with replace: no error")
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.toml"), false); err == nil {
		t.Error("missing file: no error")
	}
}

// TestPermanentNeedsFiveHundred: a rule cannot make a 4xx permanent or a
// 5xx delivered, whatever its conditions say.
func TestPermanentNeedsFiveHundred(t *testing.T) {
	c, err := Compile([]byte(`
[[rule]]
name = "overreach"
class = "hard_bounce"
text = ['unknown']

[[rule]]
name = "wishful"
class = "delivered"
`), "test", true)
	if err != nil {
		t.Fatal(err)
	}
	if res := c.Classify("rcpt", mustParse(t, "450 4.1.1 user unknown")); res.Class.Permanent() {
		t.Errorf("4xx became %+v", res)
	}
	if res := c.Classify("rcpt", mustParse(t, "550 5.1.1 user unknown")); res.Class != HardBounce {
		t.Errorf("5xx: %+v", res)
	}
	if res := c.Classify("rcpt", mustParse(t, "550 5.7.1 no")); res.Class == Delivered {
		t.Errorf("5xx delivered: %+v", res)
	}
}

func TestEscalation(t *testing.T) {
	unknown := mustParse(t, "450 4.1.1 <x@example.org>: Recipient address rejected: User unknown in virtual alias table")
	for attempt, want := range map[int]Class{0: Deferred, 1: Deferred, 7: Deferred, 8: HardBounce, 30: HardBounce} {
		res := Default().ClassifyAttempt("rcpt", unknown, attempt)
		if res.Class != want || res.Escalated != (want == HardBounce) || res.EscalateAfter != 8 {
			t.Errorf("attempt %d: %+v, want %s", attempt, res, want)
		}
		if got := ReplyAttempt("rcpt", unknown, attempt); got != want {
			t.Errorf("ReplyAttempt %d = %s", attempt, got)
		}
	}
	// By status code alone, too.
	if c := ReplyAttempt("rcpt", mustParse(t, "450 4.1.1 <x@example.org>... nope"), 9); c != HardBounce {
		t.Errorf("4.1.1 alone: %s", c)
	}
	// Other deferrals never escalate, and neither does a sender problem.
	for _, s := range []string{
		"451 4.3.0 Temporary lookup failure",
		"450 4.1.8 <b@example.com>: Sender address rejected: Domain not found",
		"450 4.7.1 <x@example.org>: Sender address rejected: unverified address: User unknown",
		"452 4.2.2 Mailbox full",
		"450 Requested mail action not taken: mailbox unavailable",
	} {
		if c := ReplyAttempt("rcpt", mustParse(t, s), 100); c.Permanent() {
			t.Errorf("%q escalated to %s", s, c)
		}
	}
	// Not in the MAIL phase: there the "user" is our sender.
	if c := ReplyAttempt("mail", unknown, 100); c.Permanent() {
		t.Errorf("mail phase escalated to %s", c)
	}
	// A custom escalation target.
	c, err := Compile([]byte("[[rule]]\nname='x'\nclass='rate_limited'\ncodes=['4xx']\nescalate_after=3\nescalate_to='dns_error'"), "test", true)
	if err != nil {
		t.Fatal(err)
	}
	if res := c.ClassifyAttempt("rcpt", mustParse(t, "451 x"), 3); res.Class != DNSError || !res.Escalated {
		t.Errorf("custom escalation: %+v", res)
	}
}
