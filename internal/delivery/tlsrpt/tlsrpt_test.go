package tlsrpt_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/delivery"
	"github.com/posthorn/posthorn/internal/delivery/tlsrpt"
	"github.com/posthorn/posthorn/internal/testkit"
)

type mailbox struct {
	mu   sync.Mutex
	msgs map[string][]byte
}

func (m *mailbox) send(_ context.Context, rcpt string, msg []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.msgs[rcpt] = msg
	return nil
}

// attachment returns the gzip part of a report mail, checking its headers.
func attachment(t *testing.T, raw []byte, domain string) []byte {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	h := msg.Header
	if h.Get("TLS-Report-Domain") != domain || h.Get("TLS-Report-Submitter") != "posthorn.test" ||
		!strings.HasPrefix(h.Get("Subject"), "Report Domain: "+domain+" Submitter: posthorn.test Report-ID: <") {
		t.Fatalf("report mail headers: %v", h)
	}
	mt, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil || mt != "multipart/report" || params["report-type"] != "tlsrpt" {
		t.Fatalf("Content-Type %q", h.Get("Content-Type"))
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err != nil {
			t.Fatalf("no application/tlsrpt+gzip part: %v", err)
		}
		if p.Header.Get("Content-Type") != "application/tlsrpt+gzip" {
			continue
		}
		if fn := p.FileName(); !strings.HasPrefix(fn, "posthorn.test!"+domain+"!") || !strings.HasSuffix(fn, ".json.gz") {
			t.Fatalf("file name %q", fn)
		}
		if p.Header.Get("Content-Transfer-Encoding") != "base64" {
			t.Fatalf("part encoding %q", p.Header.Get("Content-Transfer-Encoding"))
		}
		b, err := io.ReadAll(base64.NewDecoder(base64.StdEncoding, p))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
}

func gunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("not gzip: %v", err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestDailyReport: a day of successes and failures under an MTA-STS and a
// DANE policy is kept across a restart and, the next day, sent by mail
// and by HTTPS POST as reports that pass the RFC 8460 schema and carry
// the right counts; private report addresses are refused unless allowed.
func TestDailyReport(t *testing.T) {
	dns := testkit.StartDNS(t)
	ca, err := testkit.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	var posted struct {
		sync.Mutex
		ctype string
		body  []byte
	}
	cert, _ := ca.Issue("reports.b.test")
	hs := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		posted.Lock()
		posted.ctype, posted.body = r.Header.Get("Content-Type"), b
		posted.Unlock()
	}))
	hs.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	hs.StartTLS()
	defer hs.Close()
	_, port, _ := strings.Cut(hs.Listener.Addr().String(), ":")
	dns.SetA("reports.b.test", "127.0.0.1")
	dns.SetTXT("_smtp._tls.a.test", "v=TLSRPTv1; rua=mailto:tlsrpt@reports.a.test")
	dns.SetTXT("_smtp._tls.b.test", "v=TLSRPTv1;rua=https://reports.b.test:"+port+"/tlsrpt")
	res, err := delivery.NewResolver(dns.Addr())
	if err != nil {
		t.Fatal(err)
	}

	day := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	now := day.Add(10 * time.Hour)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	box := &mailbox{msgs: map[string][]byte{}}
	dir := t.TempDir()
	cfg := tlsrpt.Config{Dir: dir, Submitter: "posthorn.test", Organization: "Posthorn Test", Resolver: res, SendMail: box.send,
		Roots: ca.Pool, AllowPrivate: true, Now: clock}
	svc, err := tlsrpt.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sts := tlsrpt.Session{Domain: "a.test", Type: tlsrpt.STS, Policy: []string{"version: STSv1", "mode: enforce", "mx: mx.a.test", "max_age: 86400"}, MXHosts: []string{"mx.a.test"}}
	for i := 0; i < 3; i++ {
		s := sts
		s.Success = true
		svc.Record(s)
	}
	for i := 0; i < 2; i++ {
		s := sts
		s.ResultType, s.SendingIP, s.ReceivingMX, s.ReceivingIP, s.Reason = tlsrpt.CertificateExpired, "192.0.2.1", "mx.a.test", "198.51.100.7", "x509: certificate has expired"
		svc.Record(s)
	}
	s := sts
	s.ResultType, s.ReceivingMX, s.ReceivingIP = tlsrpt.StartTLSNotSupported, "mx.a.test", "198.51.100.8"
	svc.Record(s)
	svc.Record(tlsrpt.Session{Domain: "b.test", Type: tlsrpt.TLSA, Policy: []string{"3 1 1 abcd"}, Success: true})
	// Today's counts are not sent.
	svc.SendDue(context.Background())
	if len(box.msgs) != 0 {
		t.Fatal("a report for a day not over was sent")
	}
	if err := svc.Stop(); err != nil {
		t.Fatal(err)
	}

	// A restart keeps the counts; the next day they go out.
	mu.Lock()
	now = day.Add(25 * time.Hour)
	mu.Unlock()
	svc, err = tlsrpt.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	svc.SendDue(context.Background())

	raw := box.msgs["tlsrpt@reports.a.test"]
	if raw == nil {
		t.Fatalf("no report mailed; mailbox %v", box.msgs)
	}
	js := gunzip(t, attachment(t, raw, "a.test"))
	if err := validateReport(js); err != nil {
		t.Fatalf("mailed report fails the RFC 8460 schema: %v\n%s", err, js)
	}
	var rep tlsrpt.Report
	json.Unmarshal(js, &rep)
	if rep.OrganizationName != "Posthorn Test" || !rep.DateRange.Start.Equal(day) || len(rep.Policies) != 1 {
		t.Fatalf("report %s", js)
	}
	p := rep.Policies[0]
	if p.Policy.Type != tlsrpt.STS || p.Policy.Domain != "a.test" || p.Summary.Successful != 3 || p.Summary.Failed != 3 || len(p.FailureDetails) != 2 {
		t.Fatalf("policy results %+v", p)
	}
	for _, f := range p.FailureDetails {
		if f.ResultType == tlsrpt.CertificateExpired && (f.FailedSessionCount != 2 || f.ReceivingIP != "198.51.100.7") {
			t.Fatalf("failure detail %+v", f)
		}
	}

	posted.Lock()
	ctype, body := posted.ctype, posted.body
	posted.Unlock()
	if ctype != "application/tlsrpt+gzip" {
		t.Fatalf("POST Content-Type %q", ctype)
	}
	if js := gunzip(t, body); validateReport(js) != nil || !strings.Contains(string(js), `"policy-type":"tlsa"`) {
		t.Fatalf("posted report: %v\n%s", validateReport(js), js)
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "*.json")); len(files) != 0 {
		t.Fatalf("day files left after sending: %v", files)
	}

	// The same https: report address, not allowed to be private.
	cfg.AllowPrivate = false
	cfg.Dir = t.TempDir()
	svc, _ = tlsrpt.New(cfg)
	posted.Lock()
	posted.body = nil
	posted.Unlock()
	svc.Record(tlsrpt.Session{Domain: "b.test", Type: tlsrpt.TLSA, Policy: []string{"3 1 1 abcd"}, Success: true, At: day})
	svc.SendDue(context.Background())
	posted.Lock()
	defer posted.Unlock()
	if posted.body != nil {
		t.Fatal("report posted to a loopback address without allow_private")
	}
	svc.Save()
	if b, err := os.ReadFile(filepath.Join(cfg.Dir, "2026-12-02.json")); err != nil || !strings.Contains(string(b), `"tries":1`) {
		t.Fatalf("refused report not kept for a retry: %s %v", b, err)
	}
}

func TestRUA(t *testing.T) {
	dns := testkit.StartDNS(t)
	res, err := delivery.NewResolver(dns.Addr())
	if err != nil {
		t.Fatal(err)
	}
	dns.SetTXT("_smtp._tls.one.test", "v=spf1 -all", "v=TLSRPTv1; rua=mailto:a@one.test, https://r.one.test/x ;")
	dns.SetTXT("_smtp._tls.two.test", "v=TLSRPTv1; rua=mailto:a@two.test", "v=TLSRPTv1; rua=mailto:b@two.test")
	dns.SetTXT("_smtp._tls.none.test", "v=TLSRPTv1;")
	ctx := context.Background()
	if r, err := tlsrpt.RUA(ctx, res, "one.test"); err != nil || len(r) != 2 || r[0] != "mailto:a@one.test" || r[1] != "https://r.one.test/x" {
		t.Fatalf("one.test: %q %v", r, err)
	}
	for _, d := range []string{"two.test", "none.test", "missing.test"} {
		if r, err := tlsrpt.RUA(ctx, res, d); err == nil {
			t.Errorf("%s: %q accepted (two records, no rua, no record: no reports)", d, r)
		}
	}
}
