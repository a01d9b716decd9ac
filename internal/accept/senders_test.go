package accept

import (
	"slices"
	"testing"
)

// TestFromDomains: every address of every From field counts; display
// names, comments and encoded words do not.
func TestFromDomains(t *testing.T) {
	cases := []struct {
		hdr  string
		want []string
		ok   bool
	}{
		{"From: a@x.test\r\n", []string{"x.test"}, true},
		{"From: \"b@evil.test\" <a@x.test>\r\n", []string{"x.test"}, true},
		{"From: \"a@x.test\" <b@evil.test>\r\n", []string{"evil.test"}, true},
		{"From: a@x.test (b@evil.test)\r\n", []string{"x.test"}, true},
		{"From: a@x.test, b@evil.test\r\n", []string{"x.test", "evil.test"}, true},
		{"From: a@x.test\r\nFrom: b@evil.test\r\n", []string{"x.test", "evil.test"}, true},
		{"From: g: a@x.test, b@evil.test;\r\n", []string{"x.test", "evil.test"}, true},
		{"From: =?koi8-r?b?8NLJ18XU?= <a@x.test>\r\n", []string{"x.test"}, true},
		{"From: A\r\n <a@x.test>\r\n", []string{"x.test"}, true},
		{"Subject: no from\r\n", nil, true},
		{"From: not an address\r\n", nil, false},
		{"From: g: ;\r\n", nil, false},
	}
	for _, c := range cases {
		got, ok := fromDomains(parseHeader([]byte(c.hdr)))
		if ok != c.ok || !slices.Equal(got, c.want) {
			t.Errorf("%q: got %v %v, want %v %v", c.hdr, got, ok, c.want, c.ok)
		}
	}
}

// FuzzFromDomains: any header is read without panicking, and a header
// read as fine has a domain for every From address.
func FuzzFromDomains(f *testing.F) {
	f.Add("From: \"a@x.test\" <b@evil.test>\r\n")
	f.Add("From: g: a@x.test, b@evil.test;\r\nFrom: c@y.test\r\n")
	f.Fuzz(func(t *testing.T, hdr string) {
		ds, ok := fromDomains(parseHeader([]byte(hdr)))
		for _, d := range ds {
			if ok && d == "" {
				t.Fatalf("%q: a From address without a domain", hdr)
			}
		}
	})
}
