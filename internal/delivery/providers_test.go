package delivery

import "testing"

func TestProviderMatch(t *testing.T) {
	p := &providerMap{rules: MergeProviders(DefaultProviders, []Provider{{Name: "corp", MXSuffixes: []string{"mx.corp.example"}}}), byDom: map[string]string{}}
	for host, want := range map[string]string{
		"gmail-smtp-in.l.google.com.":             "google",
		"example-com.mail.protection.outlook.com": "microsoft",
		"mta7.am0.yahoodns.net":                   "yahoo",
		"mx01.mail.icloud.com":                    "apple",
		"a.mx.corp.example":                       "corp",
		"notgoogle.com":                           "",
		"google.com.evil.example":                 "",
		"mx.example.org":                          "",
	} {
		if got := p.match(host); got != want {
			t.Errorf("match(%q) = %q, want %q", host, got, want)
		}
	}
	p.learn("example.com", []MXHost{{Name: "mx.example.org"}, {Name: "alt1.aspmx.l.google.com"}})
	if p.lookup("example.com") != "google" || p.lookup("other.com") != "" {
		t.Fatal("learn/lookup")
	}
}
