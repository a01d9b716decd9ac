package suppress

import (
	"strings"
	"testing"

	"github.com/posthorn/posthorn/internal/smtpproto"
)

// FuzzPlainAddress: what Parse takes on its short way (plainAddress) is
// what smtpproto.ParseAddress accepts and gives back unchanged, and not a
// glob or expression, so Parse answers as it did before the short way.
func FuzzPlainAddress(f *testing.F) {
	for _, s := range []string{"a@b.c", "A.B@x-y.example", "a..b@x", ".a@x", "a.@x", "a@-x", "a@x-", "a@x..y", "a@X.test",
		"a*b@x", "\"q\"@x", "a@[1.2.3.4]", "a@b@c", "@x", "a@", "ü@x", "a@b.c.", strings.Repeat("a", 65) + "@x",
		"a@" + strings.Repeat("b", 64) + ".c", "/a@b/", "a{|}~'@0.0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !plainAddress(s) {
			return
		}
		a, err := smtpproto.ParseAddress(s, true)
		if err != nil {
			t.Fatalf("%q: plain, but ParseAddress refuses it: %v", s, err)
		}
		if a.String() != s {
			t.Fatalf("%q: plain, but ParseAddress gives %q", s, a.String())
		}
		if strings.Contains(s, "*") || strings.HasPrefix(s, "/") && strings.HasSuffix(s, "/") {
			t.Fatalf("%q: plain, but a glob or expression", s)
		}
	})
}

func TestParseRefusesAsBefore(t *testing.T) {
	for in, want := range map[string]string{
		"a..b@x.test":   "bad address: empty atom in local part",
		"a@x..test":     `bad address: invalid domain "x..test"`,
		"not an entry!": `bad domain: invalid domain "not an entry!"`,
		"a b@x.test":    `bad address: character ' ' not allowed in local part`,
	} {
		if _, err := Parse("t", in, Manual); err == nil || err.Error() != want {
			t.Errorf("%q: %v, want %s", in, err, want)
		}
	}
	for in, want := range map[string]string{"a@x.test": "a@x.test", " B.c@X.Test ": "B.c@x.test", "*@x.test": "*@x.test"} {
		if s, err := Parse("t", in, Manual); err != nil || s.Value != want {
			t.Errorf("%q: %q %v, want %q", in, s.Value, err, want)
		}
	}
}
