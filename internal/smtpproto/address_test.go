package smtpproto

import (
	"strings"
	"testing"
)

func TestParseAddress(t *testing.T) {
	cases := []struct {
		in, want string
		utf8     bool
		bad      bool
	}{
		{in: "user@Example.COM", want: "user@example.com"},
		{in: "User.Name+tag@example.com", want: "User.Name+tag@example.com"},
		{in: `"a b"@example.com`, want: `"a b"@example.com`},
		{in: `"a\"b"@example.com`, want: `"a\"b"@example.com`},
		{in: "user@[192.0.2.1]", want: "user@[192.0.2.1]"},
		{in: "user@[IPv6:2001:db8::1]", want: "user@[IPv6:2001:db8::1]"},
		{in: "üser@bücher.de", utf8: true, want: "üser@xn--bcher-kva.de"},
		{in: "üser@example.com", bad: true},
		{in: "user@bücher.de", bad: true},
		{in: "user", bad: true},
		{in: "@a:b@c", bad: true},
		{in: "user@", bad: true},
		{in: "@example.com", bad: true},
		{in: "a..b@example.com", bad: true},
		{in: ".a@example.com", bad: true},
		{in: "a b@example.com", bad: true},
		{in: "user@-bad.com", bad: true},
		{in: "user@exa_mple.com", bad: true},
		{in: "user@[300.1.1.1]", bad: true},
		{in: "user@[2001:db8::1]", bad: true},
		{in: "a\x00b@example.com", bad: true},
		{in: strings.Repeat("a", 65) + "@example.com", bad: true},
		{in: "x@" + strings.Repeat("a.", 130) + "com", bad: true},
		{in: "\"unterminated@example.com", bad: true},
	}
	for _, c := range cases {
		a, err := ParseAddress(c.in, c.utf8)
		if c.bad {
			if err == nil {
				t.Errorf("ParseAddress(%q) = %v, want error", c.in, a)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseAddress(%q): %v", c.in, err)
			continue
		}
		if got := a.String(); got != c.want {
			t.Errorf("ParseAddress(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	if _, err := ParseAddress("", false); err != ErrNullPath {
		t.Errorf("empty path: got %v, want ErrNullPath", err)
	}
}

func TestParseReply(t *testing.T) {
	r, err := ParseReplyLines([]string{"550-5.1.1 The email account that you tried to reach does not exist.", "550 5.1.1 Please try again"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Code != 550 || r.Enhanced != "5.1.1" || r.Text != "The email account that you tried to reach does not exist.\nPlease try again" {
		t.Fatalf("got %+v", r)
	}
	r, err = ParseReply("421 4.7.28 slow down")
	if err != nil || r.Code != 421 || r.Enhanced != "4.7.28" || r.Text != "slow down" {
		t.Fatalf("got %+v, %v", r, err)
	}
	// Class mismatch: not an enhanced code for this reply.
	r, _ = ParseReply("250 5.1.1 odd")
	if r.Enhanced != "" || r.Text != "5.1.1 odd" {
		t.Fatalf("got %+v", r)
	}
	for _, bad := range []string{"", "25", "abc def", "250x", "700 no", "250-a\n251 b"} {
		if _, err := ParseReply(bad); err == nil {
			t.Errorf("ParseReply(%q): want error", bad)
		}
	}
}

func FuzzParseAddress(f *testing.F) {
	for _, s := range []string{"user@example.com", `"a b"@x.org`, "u@[1.2.3.4]", "üser@bücher.de", "@a:b@c", ""} {
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, s string, utf8OK bool) {
		a, err := ParseAddress(s, utf8OK)
		if err != nil {
			return
		}
		// A valid address renders to something that parses to the same address.
		again, err := ParseAddress(a.String(), true)
		if err != nil {
			t.Fatalf("%q parsed to %q which does not parse: %v", s, a.String(), err)
		}
		if again != a {
			t.Fatalf("%q: round trip %+v != %+v", s, again, a)
		}
	})
}

func FuzzParseReply(f *testing.F) {
	for _, s := range []string{"250 ok", "550-5.1.1 a\n550 5.1.1 b", "421 4.7.28 x", "2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseReply(s)
		if err == nil && (r.Code < 200 || r.Code > 599) {
			t.Fatalf("accepted code %d", r.Code)
		}
	})
}
