package e2e

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
