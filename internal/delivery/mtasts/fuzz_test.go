package mtasts_test

import (
	"strings"
	"testing"

	"github.com/posthorn/posthorn/internal/delivery/mtasts"
)

// FuzzParse: a policy body from the network never panics the parser, and
// what it accepts keeps the promises the delivery code relies on.
func FuzzParse(f *testing.F) {
	f.Add("version: STSv1\nmode: enforce\nmx: mail.example.com\nmx: *.example.net\nmax_age: 604800\n")
	f.Add("version: STSv1\r\nmode: none\r\nmax_age: 0\r\n")
	f.Add("version: STSv1\nmode: testing\nmx: *.\nmax_age: 1\n")
	f.Fuzz(func(t *testing.T, body string) {
		p, err := mtasts.Parse([]byte(body))
		if err != nil {
			return
		}
		if p.Mode != mtasts.Enforce && p.Mode != mtasts.Testing && p.Mode != mtasts.None {
			t.Fatalf("mode %q accepted", p.Mode)
		}
		if p.Mode != mtasts.None && len(p.MX) == 0 {
			t.Fatal("policy without mx accepted")
		}
		if p.MaxAge < 0 || p.MaxAge > 31557600e9 {
			t.Fatalf("max_age %s", p.MaxAge)
		}
		for _, m := range p.MX {
			if strings.ContainsAny(strings.TrimPrefix(m, "*."), "* \t") {
				t.Fatalf("mx pattern %q", m)
			}
		}
		p.Match("mail.example.com")
	})
}

func FuzzParseTXT(f *testing.F) {
	f.Add("v=STSv1; id=20160831085700Z;")
	f.Add("v=STSv1;id=")
	f.Fuzz(func(t *testing.T, rec string) {
		id, found, err := mtasts.ParseTXT([]string{rec})
		if err == nil && found && (id == "" || len(id) > 32) {
			t.Fatalf("id %q accepted", id)
		}
	})
}
