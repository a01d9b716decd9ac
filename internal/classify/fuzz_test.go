package classify

import (
	"testing"

	"github.com/posthorn/posthorn/internal/smtpproto"
)

// FuzzClassify: any reply, well formed or not, in any phase, yields one
// valid class without panicking, and the class respects the reply code.
func FuzzClassify(f *testing.F) {
	for _, s := range []string{
		"550 5.1.1 user unknown",
		"421-4.7.28 unusual rate\n421 4.7.28 of unsolicited mail",
		"552 4.2.2 mailbox is stuffed",
		"550 sorry, no mailbox here by that name (#5.1.1 - chkusr)",
		"550 : User unknown",
		"354 go ahead",
		"250",
		"554 5.7.1 邮件被拒绝",
		"450 4.1.1 <x@example.org>: Recipient address rejected: User unknown",
	} {
		f.Add("rcpt", s, 550, "5.1.1", 1)
	}
	f.Add("data-end", "\xff\xfe", 0, "", 9)
	f.Add("", "", -1, "9.9.9", -3)
	f.Fuzz(func(t *testing.T, phase, text string, code int, enhanced string, attempt int) {
		check := func(r smtpproto.Reply) {
			res := Default().ClassifyAttempt(phase, r, attempt)
			c := res.Class
			switch {
			case !c.Valid():
				t.Fatalf("%+v: invalid class %q", r, c)
			case res.Rule == "" || res.Source == "":
				t.Fatalf("%+v: no rule in %+v", r, res)
			case r.Code >= 200 && r.Code < 300 && c != Delivered:
				t.Fatalf("%+v: 2xx became %s", r, c)
			case c == Delivered && (r.Code < 200 || r.Code >= 300):
				t.Fatalf("%+v: delivered", r)
			case c.Permanent() && !res.Escalated && (r.Code < 500 || r.Code >= 600):
				t.Fatalf("%+v: %s for code %d", r, c, r.Code)
			case res.Escalated && (res.EscalateAfter <= 0 || attempt < res.EscalateAfter):
				t.Fatalf("%+v: bad escalation %+v", r, res)
			}
		}
		check(smtpproto.Reply{Code: code, Enhanced: enhanced, Text: text})
		if r, err := smtpproto.ParseReply(text); err == nil {
			check(r)
		}
	})
}

// checkPrefilters fails when a prefilter rejects a text its expression
// matches.
func checkPrefilters(t *testing.T, text string) {
	t.Helper()
	in := prepare("rcpt", smtpproto.Reply{Code: 550, Text: text})
	for _, r := range Default().rules {
		for _, ps := range [][]pattern{r.text, r.notText} {
			for i := range ps {
				if got, want := ps[i].match(in.text, in.folded), ps[i].re.MatchString(in.text); got != want {
					t.Fatalf("rule %s pattern %q on %q: prefiltered %v, regexp %v", r.Name, ps[i].src, in.text, got, want)
				}
			}
		}
	}
}

// FuzzPrefilter: the literal prefilters never change a pattern's answer.
func FuzzPrefilter(f *testing.F) {
	f.Add("User unknown")
	f.Add("MAILBOX IS FULL")
	f.Add("over \u212Aquota") // Kelvin sign folds to k
	f.Add("ſpam")             // long s folds to s
	f.Fuzz(func(t *testing.T, text string) { checkPrefilters(t, text) })
}
