package mtasts_test

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/delivery"
	"github.com/posthorn/posthorn/internal/delivery/mtasts"
	"github.com/posthorn/posthorn/internal/testkit"
)

func TestParse(t *testing.T) {
	// RFC 8461 §3.2's example, with LF and CRLF line ends.
	for _, nl := range []string{"\n", "\r\n"} {
		p, err := mtasts.Parse([]byte(strings.ReplaceAll("version: STSv1\nmode: enforce\nmx: mail.example.com\nmx: *.example.net\nmx: backupmx.example.com\nmax_age: 604800\n", "\n", nl)))
		if err != nil {
			t.Fatal(err)
		}
		if p.Mode != mtasts.Enforce || p.MaxAge != 604800*time.Second || len(p.MX) != 3 {
			t.Fatalf("%+v", p)
		}
	}
	p, err := mtasts.Parse([]byte("version: STSv1\nmode: none\nmax_age: 9999999999\nunknown_key: ignored\n"))
	if err != nil || p.Mode != mtasts.None || p.MaxAge != 31557600*time.Second {
		t.Fatalf("mode none without mx, max_age capped at a year: %+v %v", p, err)
	}
	for _, bad := range []string{
		"",
		"version: STSv2\nmode: enforce\nmx: a.test\nmax_age: 1\n",
		"version: STSv1\nmode: strict\nmx: a.test\nmax_age: 1\n",
		"version: STSv1\nmode: enforce\nmax_age: 1\n",
		"version: STSv1\nmode: enforce\nmx: a.test\n",
		"version: STSv1\nmode: enforce\nmx: a.test\nmax_age: -1\n",
		"version: STSv1\nmode: enforce\nmx: a.*.test\nmax_age: 1\n",
		"version: STSv1\nmode enforce\n",
		"version: STSv1\nmode: enforce\nmx: a.test\nmax_age: 1\n" + strings.Repeat("#", mtasts.MaxPolicySize),
	} {
		if p, err := mtasts.Parse([]byte(bad)); err == nil {
			t.Errorf("accepted %.60q: %+v", bad, p)
		}
	}
}

func TestMatch(t *testing.T) {
	p := &mtasts.Policy{MX: []string{"mail.example.com", "*.example.net"}}
	for host, want := range map[string]bool{
		"mail.example.com": true, "MAIL.Example.COM.": true, "mx.example.com": false,
		"a.example.net": true, "example.net": false, "a.b.example.net": false, "xexample.net": false,
	} {
		if p.Match(host) != want {
			t.Errorf("Match(%q) = %v", host, !want)
		}
	}
}

func TestParseTXT(t *testing.T) {
	if id, found, err := mtasts.ParseTXT([]string{"v=spf1 -all", "v=STSv1; id=20160831085700Z;"}); err != nil || !found || id != "20160831085700Z" {
		t.Fatalf("%q %v %v", id, found, err)
	}
	if _, found, _ := mtasts.ParseTXT([]string{"v=spf1 -all"}); found {
		t.Fatal("found without a v=STSv1 record")
	}
	for _, bad := range [][]string{{"v=STSv1; id=a", "v=STSv1; id=b"}, {"v=STSv1;"}, {"v=STSv1; id=not-alnum"}, {"v=STSv1; id=" + strings.Repeat("a", 33)}} {
		if _, found, err := mtasts.ParseTXT(bad); !found || err == nil {
			t.Errorf("%q: found %v err %v", bad, found, err)
		}
	}
}

// TestFetchRefusals: the fetcher follows no redirect, refuses a body over
// 64 KiB and a certificate it cannot verify for mta-sts.<domain>, and
// dials the address the (test) DNS gives.
func TestFetchRefusals(t *testing.T) {
	dns := testkit.StartDNS(t)
	ca, err := testkit.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	good, _ := ca.Issue("mta-sts.ok.test", "mta-sts.redirect.test", "mta-sts.big.test")
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.Host, "mta-sts.redirect.test"):
			http.Redirect(w, r, "https://mta-sts.ok.test/.well-known/mta-sts.txt", http.StatusFound)
		case strings.HasPrefix(r.Host, "mta-sts.big.test"):
			w.Write([]byte("version: STSv1\nmode: enforce\nmx: a.test\nmax_age: 1\n" + strings.Repeat("#", mtasts.MaxPolicySize)))
		default:
			w.Write([]byte("version: STSv1\nmode: enforce\nmx: a.test\nmax_age: 60\n"))
		}
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{good}}
	srv.StartTLS()
	defer srv.Close()
	_, ps, _ := net.SplitHostPort(srv.Listener.Addr().String())
	port, _ := strconv.Atoi(ps)
	for _, d := range []string{"ok", "redirect", "big", "wrongname"} {
		dns.SetA("mta-sts."+d+".test", "127.0.0.1")
	}
	res, err := delivery.NewResolver(dns.Addr())
	if err != nil {
		t.Fatal(err)
	}
	f := &mtasts.Fetcher{Resolver: res, Roots: ca.Pool, Port: port, Timeout: 5 * time.Second}
	ctx := context.Background()
	if p, err := f.Fetch(ctx, "ok.test"); err != nil || p.MX[0] != "a.test" {
		t.Fatalf("ok: %+v %v", p, err)
	}
	for d, want := range map[string]string{"redirect.test": "302", "big.test": "larger", "wrongname.test": "certificate"} {
		if p, err := f.Fetch(ctx, d); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %+v, err %v (want %q)", d, p, err, want)
		}
	}
	// The system roots do not know the test CA.
	if _, err := (&mtasts.Fetcher{Resolver: res, Port: port, Timeout: 5 * time.Second}).Fetch(ctx, "ok.test"); err == nil {
		t.Error("certificate from an unknown CA accepted")
	}
}
