package e2e

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/api"
	"github.com/posthorn/posthorn/internal/delivery/tlsrpt"
	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/testkit"
)

// peerCert reads the certificate swaks saved with --tls-get-peer-cert.
func peerCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("swaks saved no peer certificate: %v", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("peer certificate file %s is not PEM", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestSubmissionListenersTLS submits with swaks over STARTTLS on the
// submission port and over implicit TLS on the submissions port, both
// verifying the certificate from --tls-cert against the test CA; then
// replaces the certificate files and sees the new certificate served
// without a restart, while a session opened before keeps working.
func TestSubmissionListenersTLS(t *testing.T) {
	swaks, err := exec.LookPath("swaks")
	if err != nil {
		requireTool(t, "swaks")
		return
	}
	ca, err := testkit.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certPath, keyPath, caPath := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), filepath.Join(dir, "ca.pem")
	one, _ := ca.Issue("posthorn.test", "127.0.0.1")
	if err := testkit.WriteCertPEM(one, certPath, keyPath); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(caPath, ca.PEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	smtps := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	w := newWorld(t, Options{Extra: []string{"--submissions-listen", smtps, "--tls-cert", certPath, "--tls-key", keyPath}}, "127.0.0.2")
	w.domain("tls.test", "127.0.0.2")

	run := func(name string, args ...string) string {
		t.Helper()
		peer := filepath.Join(dir, name+".pem")
		args = append(args, "--tls-verify", "--tls-ca-path", caPath, "--tls-get-peer-cert", peer,
			"--auth", "PLAIN", "--auth-user", w.in.Creds.SMTPUsername, "--auth-password", w.in.Creds.SMTPPassword,
			"--from", "sender@app.test", "--to", name+"@tls.test", "--header", "Subject: "+name)
		out, err := exec.Command(swaks, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("swaks %s: %v\n%s", name, err, out)
		}
		if c := peerCert(t, peer); !bytes.Equal(c.Raw, one.Leaf.Raw) {
			t.Fatalf("%s: served certificate %s, want the one from --tls-cert", name, c.Subject)
		}
		return string(out)
	}
	out := run("starttls", "--server", w.in.SMTP, "--tls")
	if !strings.Contains(out, "STARTTLS") {
		t.Fatalf("no STARTTLS in the dialogue:\n%s", out)
	}
	out = run("implicit", "--server", smtps, "--tlsc")
	if strings.Contains(out, "-> STARTTLS") {
		t.Fatalf("STARTTLS inside implicit TLS:\n%s", out)
	}
	waitMessages(t, w.mx["127.0.0.2"], 2)
	// TLS 1.2 is the minimum on both ports.
	if c, err := tls.Dial("tcp", smtps, &tls.Config{RootCAs: ca.Pool, ServerName: "posthorn.test", MaxVersion: tls.VersionTLS11}); err == nil {
		c.Close()
		t.Fatal("implicit TLS port accepted TLS 1.1")
	}

	// A session opened before the change keeps its connection.
	old, err := tls.Dial("tcp", smtps, &tls.Config{RootCAs: ca.Pool, ServerName: "posthorn.test"})
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	oldConn := &Conn{c: old, r: bufio.NewReader(old)}
	if code, _, err := oldConn.Read(); err != nil || code != 220 {
		t.Fatalf("greeting over implicit TLS: %d %v", code, err)
	}

	two, _ := ca.Issue("posthorn.test", "127.0.0.1")
	if err := testkit.WriteCertPEM(two, certPath, keyPath); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := tls.Dial("tcp", smtps, &tls.Config{RootCAs: ca.Pool, ServerName: "posthorn.test"})
		if err != nil {
			t.Fatal(err)
		}
		served := c.ConnectionState().PeerCertificates[0]
		c.Close()
		if bytes.Equal(served.Raw, two.Leaf.Raw) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the replaced certificate was not picked up within 20s")
		}
		time.Sleep(200 * time.Millisecond) // polling for the reload, which has no event to wait on
	}
	one = two // run checks the served certificate against one
	run("after-reload", "--server", w.in.SMTP, "--tls")
	if _, err := oldConn.Cmd(250, "NOOP"); err != nil {
		t.Fatalf("session opened before the reload: %v", err)
	}
}

// TestSelfSignedWarning: the self-signed certificate on a listener
// reachable beyond loopback is logged as a warning.
func TestSelfSignedWarning(t *testing.T) {
	l, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	in := Start(t, Options{Extra: []string{"--submissions-listen", fmt.Sprintf("0.0.0.0:%d", port)}})
	b, _ := os.ReadFile(in.logFile)
	if !strings.Contains(string(b), "listening beyond loopback with the self-signed certificate") {
		t.Fatalf("no warning about the self-signed certificate in the log:\n%s", tail(string(b), 3000))
	}
}

// TestDeliveryTLSPolicies runs posthorn with DNSSEC trusted from the test
// DNS server (on loopback, setting the AD bit), a [[tls_policy]] map and a
// test CA in tls_ca_file: DANE with a matching TLSA record delivers, with
// a non-matching one defers with class tls_policy (in the attempt and the
// activity log); "verify" delivers to a certificate from the test CA and
// defers for a self-signed one. Every attempt records its TLS version,
// cipher, policy and certificate check.
func TestDeliveryTLSPolicies(t *testing.T) {
	ca, err := testkit.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	caPath := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caPath, ca.PEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`[delivery]
dnssec = true
tls_ca_file = %q

[tlsrpt]
enabled = true

[[tls_policy]]
domain = "verify-ok.test"
policy = "verify"

[[tls_policy]]
domain = "verify-bad.test"
policy = "verify"
`, caPath)
	w := newWorld(t, Options{Config: cfg}, "127.0.0.2", "127.0.0.3", "127.0.0.4")
	w.dns.SetAD(true)
	caCert, _ := ca.Issue("mx1.verify-ok.test")
	w.mx["127.0.0.4"].SetScript(testkit.Script{StartTLS: true, TLSCert: &caCert})
	w.domain("dane-ok.test", "127.0.0.2")
	w.domain("dane-bad.test", "127.0.0.3")
	w.domain("verify-ok.test", "127.0.0.4")
	w.domain("verify-bad.test", "127.0.0.3") // self-signed certificate
	w.dns.SetTLSA("_25._tcp.mx1.dane-ok.test", testkit.TLSAFor(w.mx["127.0.0.2"].Certificate().Leaf, 3, 1, 1))
	w.dns.SetTLSA("_25._tcp.mx1.dane-bad.test", testkit.TLSAFor(caCert.Leaf, 3, 1, 1))

	id := w.in.Send("sender@app.test", []string{"a@dane-ok.test", "b@dane-bad.test", "c@verify-ok.test", "d@verify-bad.test"}, "Subject: tls\r\n\r\nhi\r\n")
	deadline := time.Now().Add(30 * time.Second)
	var d api.MessageDetail
	for {
		d = w.in.Show(id)
		done := 0
		for _, dl := range d.Deliveries {
			if dl.State == store.Delivered || dl.State == store.Deferred {
				done++
			}
		}
		if done == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("deliveries not settled: %+v", states(d))
		}
		time.Sleep(100 * time.Millisecond)
	}
	byRcpt := map[int64]string{}
	for _, dl := range d.Deliveries {
		byRcpt[dl.ID] = dl.Recipient
	}
	want := map[string]struct {
		state  store.State
		policy string
		result string
	}{
		"a@dane-ok.test":    {store.Delivered, "dane", "dane-ee 3 1 1"},
		"b@dane-bad.test":   {store.Deferred, "dane", "failed: "},
		"c@verify-ok.test":  {store.Delivered, "verify (configured)", "pkix ok"},
		"d@verify-bad.test": {store.Deferred, "verify (configured)", "failed: "},
	}
	for _, dl := range d.Deliveries {
		wn := want[dl.Recipient]
		if dl.State != wn.state {
			t.Errorf("%s: state %s (class %s), want %s", dl.Recipient, dl.State, dl.LastClass, wn.state)
		}
		if wn.state == store.Deferred && dl.LastClass != "tls_policy" {
			t.Errorf("%s: last class %q, want tls_policy", dl.Recipient, dl.LastClass)
		}
	}
	seen := map[string]bool{}
	for _, a := range d.Attempts {
		r := byRcpt[a.DeliveryID]
		if seen[r] {
			continue
		}
		seen[r] = true
		wn := want[r]
		if a.TLSDetail.Policy != wn.policy || !strings.HasPrefix(a.TLSDetail.Result, wn.result) {
			t.Errorf("%s: attempt TLS %+v, want policy %q result %q...", r, a.TLSDetail, wn.policy, wn.result)
		}
		if wn.state == store.Delivered && (a.TLSDetail.Version == "" || a.TLSDetail.Cipher == "" || !a.TLS) {
			t.Errorf("%s: attempt without TLS version and cipher: %+v", r, a)
		}
		if wn.state == store.Deferred && (a.Class != "tls_policy" || !strings.HasPrefix(a.Error, "tls_policy: ")) {
			t.Errorf("%s: attempt %+v, want class tls_policy and an error saying why", r, a)
		}
	}
	logged := 0
	for _, ev := range d.Events {
		if ev.Type == store.EventDeferred && strings.Contains(ev.Detail+ev.Reply.Text, "tls_policy") {
			logged++
		}
	}
	if logged < 2 {
		t.Errorf("activity log: %d deferrals naming tls_policy, want 2: %+v", logged, d.Events)
	}
	if n := len(w.mx["127.0.0.3"].Messages()); n != 0 {
		t.Errorf("%d messages reached the host whose certificate the policy refuses", n)
	}

	// The DANE sessions were counted for today's TLS reports, saved at
	// shutdown (sent after the day: internal/delivery/tlsrpt tests that).
	w.in.Stop()
	day := time.Now().UTC().Format("2006-01-02")
	b, err := os.ReadFile(filepath.Join(w.in.Dir, "tlsrpt", day+".json"))
	if err != nil {
		t.Fatalf("no TLS report counts saved: %v", err)
	}
	var counts map[string]struct {
		Policies map[string]struct {
			Policy  tlsrpt.PolicyDesc `json:"policy"`
			Summary tlsrpt.Summary    `json:"summary"`
		} `json:"policies"`
	}
	if err := json.Unmarshal(b, &counts); err != nil {
		t.Fatal(err)
	}
	sum := func(dom string) (ok, failed int64) {
		for _, p := range counts[dom].Policies {
			if p.Policy.Type != tlsrpt.TLSA {
				t.Errorf("%s: policy type %q", dom, p.Policy.Type)
			}
			ok, failed = ok+p.Summary.Successful, failed+p.Summary.Failed
		}
		return
	}
	if ok, failed := sum("dane-ok.test"); ok < 1 || failed != 0 {
		t.Errorf("dane-ok.test: %d successful, %d failed sessions counted", ok, failed)
	}
	if ok, failed := sum("dane-bad.test"); ok != 0 || failed < 1 {
		t.Errorf("dane-bad.test: %d successful, %d failed sessions counted", ok, failed)
	}
	if _, counted := counts["verify-ok.test"]; counted {
		t.Error("a domain without MTA-STS or DANE counted for TLS reports")
	}
}

// TestTLSReportMailed: counts of a day that ended while posthorn was
// stopped are reported at the next start: the report goes by mail,
// through posthorn's own queue, to the rua of the domain's _smtp._tls
// record, as multipart/report with the gzipped JSON.
func TestTLSReportMailed(t *testing.T) {
	w := newWorld(t, Options{Config: "[tlsrpt]\nenabled = true\norganization = \"E2E Org\"\n"}, "127.0.0.2")
	w.domain("rua.test", "127.0.0.2")
	w.dns.SetTXT("_smtp._tls.rpt.test", "v=TLSRPTv1; rua=mailto:reports@rua.test")
	w.in.Stop()
	day := time.Now().UTC().Add(-24 * time.Hour).Format("2006-01-02")
	counts := `{"rpt.test":{"policies":{"sts":{"policy":{"policy-type":"sts","policy-string":["version: STSv1","mode: enforce","mx: mx.rpt.test","max_age: 86400"],"policy-domain":"rpt.test","mx-host":["mx.rpt.test"]},
		"summary":{"total-successful-session-count":5,"total-failure-session-count":1},
		"failures":{"x":{"result-type":"certificate-expired","receiving-mx-hostname":"mx.rpt.test","receiving-ip":"192.0.2.25","failed-session-count":1}}}}}}`
	if err := os.MkdirAll(filepath.Join(w.in.Dir, "tlsrpt"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(w.in.Dir, "tlsrpt", day+".json"), []byte(counts), 0o600); err != nil {
		t.Fatal(err)
	}
	w.in.Restart()
	msgs := waitMessages(t, w.mx["127.0.0.2"], 1)
	m := msgs[0]
	if m.From != "" || len(m.To) != 1 || m.To[0] != "reports@rua.test" {
		t.Fatalf("report envelope: from %q to %v", m.From, m.To)
	}
	msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
	if err != nil {
		t.Fatal(err)
	}
	if msg.Header.Get("TLS-Report-Domain") != "rpt.test" || msg.Header.Get("TLS-Report-Submitter") != "posthorn.test" {
		t.Fatalf("report headers: %v", msg.Header)
	}
	_, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || params["report-type"] != "tlsrpt" {
		t.Fatalf("Content-Type %q", msg.Header.Get("Content-Type"))
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	var rep tlsrpt.Report
	for {
		p, err := mr.NextPart()
		if err != nil {
			t.Fatalf("no report part: %v", err)
		}
		if p.Header.Get("Content-Type") != "application/tlsrpt+gzip" {
			continue
		}
		zr, err := gzip.NewReader(base64.NewDecoder(base64.StdEncoding, p))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.NewDecoder(zr).Decode(&rep); err != nil {
			t.Fatal(err)
		}
		break
	}
	if rep.OrganizationName != "E2E Org" || len(rep.Policies) != 1 || rep.Policies[0].Summary.Successful != 5 ||
		rep.Policies[0].Summary.Failed != 1 || rep.Policies[0].FailureDetails[0].ResultType != "certificate-expired" {
		t.Fatalf("report %+v", rep)
	}
	// Sent: the day's counts are gone.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(w.in.Dir, "tlsrpt", day+".json")); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the sent day's counts were kept")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
