package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/api"
	"github.com/posthorn/posthorn/internal/domain"
	"github.com/posthorn/posthorn/internal/testkit"
)

// dkimPython returns a python3 that can import dkimpy (Debian's
// python3-dkim), or skips (fails under POSTHORN_REQUIRE_TOOLS=1).
func dkimPython(t *testing.T) string {
	t.Helper()
	for _, py := range []string{"/usr/bin/python3", "python3"} {
		if p, err := exec.LookPath(py); err == nil && exec.Command(p, "-c", "import dkim, nacl").Run() == nil {
			return p
		}
	}
	requireTool(t, "python3-dkim (dkimpy)")
	return ""
}

// dkimpyVerify checks msg's first DKIM-Signature with dkimpy, an
// independent verifier, which finds public keys in records (name -> TXT),
// and reports the header fields that signature covers (h=, lower case).
const dkimpyVerify = `
import json, sys, dkim
recs = {k.lower(): v for k, v in json.loads(sys.argv[1]).items()}
def dnsfunc(name, timeout=5):
    n = (name.decode() if isinstance(name, bytes) else name).rstrip('.').lower()
    v = recs.get(n)
    return v.encode() if v else None
d = dkim.DKIM(sys.stdin.buffer.read())
try:
    ok = bool(d.verify(idx=0, dnsfunc=dnsfunc))
except dkim.DKIMException:
    ok = False
print(json.dumps({"ok": ok, "signed": [h[0].decode().lower() for h in (d.signed_headers or [])] if ok else []}))
`

func verifyDKIM(t *testing.T, py string, msg []byte, records map[string]string) bool {
	t.Helper()
	ok, _ := verifyDKIMHeaders(t, py, msg, records)
	return ok
}

// verifyDKIMHeaders is verifyDKIM that also returns the names of the
// header fields the verified signature covers.
func verifyDKIMHeaders(t *testing.T, py string, msg []byte, records map[string]string) (bool, []string) {
	t.Helper()
	recs, _ := json.Marshal(records)
	cmd := exec.Command(py, "-c", dkimpyVerify, string(recs))
	cmd.Stdin = bytes.NewReader(msg)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("dkimpy: %v\n%s", err, stderr.Bytes())
	}
	var res struct {
		OK     bool
		Signed []string
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("dkimpy output %q: %v", out, err)
	}
	return res.OK, res.Signed
}

func dkimRecord(t *testing.T, in *domain.Info) domain.Record {
	t.Helper()
	for _, r := range in.Records {
		if r.Purpose == domain.PurposeDKIM && r.Selector == in.Selector {
			return r
		}
	}
	t.Fatalf("no DKIM record in %+v", in)
	return domain.Record{}
}

// signedBody is a message that is hard to sign right: a non-ASCII
// subject, a long line, trailing blanks, and a base64 attachment.
func signedBody(from, marker string) string {
	return "From: \"Jörg Ünal\" <" + from + ">\r\nTo: <rcpt@dest.test>\r\nCc: other@dest.test\r\n" +
		"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?=\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"b1\"\r\nX-Posthorn-Lane: " + marker + "\r\n\r\n" +
		"--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello " + marker + "  \r\n" + strings.Repeat("0123456789", 90) + "\r\n" +
		"--b1\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"a.bin\"\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\n" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0, 1, 2, 250}, 300)) + "\r\n--b1--\r\n"
}

// TestDKIMSignedMailVerifies sends mail of an RSA domain (verified by
// "domain check" against the test DNS server) and an Ed25519 domain
// (unverified-ok) over SMTP and the API; dkimpy verifies every message as
// the fake MX received it, and refuses it once the body is changed. The
// one that got List-Unsubscribe fields at send time carries a second
// signature, on top, that covers them (RFC 8058 one-click unsubscribe at
// Gmail and Yahoo needs that): dkimpy verifies it, its h= names
// List-Unsubscribe and List-Unsubscribe-Post, and a changed
// List-Unsubscribe value fails.
func TestDKIMSignedMailVerifies(t *testing.T) {
	py := dkimPython(t)
	w := newWorld(t, Options{EnforceSenders: true, Config: "[unsubscribe]\nbase_url = \"http://127.0.0.1:9\"\n"}, "127.0.0.2")
	w.domain("dest.test", "127.0.0.2")
	in := w.in

	var rsa, ed domain.Info
	in.CLI(&rsa, "domain", "add", "rsa.example", "--selector", "sel1")
	in.CLI(&ed, "domain", "add", "ed.example", "--algorithm", "ed25519", "--unverified-ok")
	if rsa.Algorithm != "rsa" || rsa.Selector != "sel1" || ed.Algorithm != "ed25519" {
		t.Fatalf("added %+v / %+v", rsa, ed)
	}
	rr, er := dkimRecord(t, &rsa), dkimRecord(t, &ed)
	if rr.Name != "sel1._domainkey.rsa.example" || !strings.HasPrefix(rr.Value, "v=DKIM1; k=rsa; p=") || !strings.HasPrefix(er.Value, "v=DKIM1; k=ed25519; p=") {
		t.Fatalf("records %+v %+v", rr, er)
	}
	records := map[string]string{rr.Name: rr.Value, er.Name: er.Value}

	// Before its record is published, the RSA domain may not send.
	if _, err := in.TrySend("a@rsa.example", []string{"rcpt@dest.test"}, signedBody("a@rsa.example", "normal")); err == nil ||
		!strings.Contains(err.Error(), "553") {
		t.Fatalf("unverified domain: %v", err)
	}
	w.dns.SetTXT(rr.Name, rr.Value)
	var rep domain.Report
	in.CLI(&rep, "domain", "check", "rsa.example")
	if rep.Status != "verified" {
		t.Fatalf("check: %+v", rep)
	}

	in.Send("a@rsa.example", []string{"rcpt@dest.test"}, signedBody("a@rsa.example", "normal"))
	in.Send("b@ed.example", []string{"rcpt@dest.test"}, signedBody("b@ed.example", "low")) // gets List-Unsubscribe
	var sent api.SendResponse
	att := []map[string]string{{"filename": "r.pdf", "content_type": "application/pdf", "content": base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("%PDF\x00\xff"), 500))}}
	for _, from := range []string{"App <app@rsa.example>", "App <app@ed.example>"} {
		body := map[string]any{"from": from, "to": []string{"rcpt@dest.test"}, "subject": "Grüße aus Köln — ½",
			"text": "Hallo Welt\n" + strings.Repeat("lang ", 300) + "\n", "html": "<p>Hallo</p>", "attachments": att}
		if code := in.call(t, in.Creds.APIKey, "POST", "/v1/messages", body, nil, &sent); code != 202 {
			t.Fatalf("API send from %s: %d", from, code)
		}
	}
	msgs := waitMessages(t, w.mx["127.0.0.2"], 4)
	unsub := 0
	for _, m := range msgs {
		if !bytes.Contains(m.Data, []byte("DKIM-Signature:")) {
			t.Fatalf("unsigned message:\n%s", m.Data)
		}
		ok, signed := verifyDKIMHeaders(t, py, m.Data, records)
		if !ok {
			t.Fatalf("dkimpy does not verify:\n%s", m.Data)
		}
		if bytes.Contains(m.Data, []byte("\r\nList-Unsubscribe:")) {
			unsub++
			covered := map[string]bool{}
			for _, h := range signed {
				covered[h] = true
			}
			if !covered["list-unsubscribe"] || !covered["list-unsubscribe-post"] || !covered["from"] {
				t.Fatalf("the first signature covers %v, not List-Unsubscribe, List-Unsubscribe-Post and From:\n%s", signed, m.Data)
			}
			i := bytes.Index(m.Data, []byte("/unsubscribe/"))
			changed := append(append(append([]byte{}, m.Data[:i]...), "/unsubscribe/x"...), m.Data[i+len("/unsubscribe/")+1:]...)
			if verifyDKIM(t, py, changed, records) {
				t.Fatalf("dkimpy verifies a changed List-Unsubscribe:\n%s", changed)
			}
		}
		changed := bytes.Replace(m.Data, []byte("Hallo"), []byte("Hello"), 1)
		changed = bytes.Replace(changed, []byte("Hello normal"), []byte("Hello abnormal"), 1)
		changed = bytes.Replace(changed, []byte("Hello low"), []byte("Hello high"), 1)
		if verifyDKIM(t, py, changed, records) {
			t.Fatalf("dkimpy verifies a changed body:\n%s", changed)
		}
	}
	if unsub != 1 {
		t.Fatalf("%d messages with List-Unsubscribe, want 1", unsub)
	}
}

// TestDomainCheckCLI: "domain check --json" against the test DNS server
// reports a correct, a missing and a wrong record as such.
func TestDomainCheckCLI(t *testing.T) {
	dns := testkit.StartDNS(t)
	in := Start(t, Options{DNS: dns.Addr(), EnforceSenders: true, Extra: []string{"--bounce-domain", "bounces.posthorn.test", "--inbound-listen", "127.0.0.1:0"}})
	var d domain.Info
	in.CLI(&d, "domain", "add", "example.org")
	r := dkimRecord(t, &d)
	dns.SetTXT(r.Name, r.Value)                                                         // correct
	dns.SetTXT("example.org", "v=spf1 -all")                                            // wrong: lacks posthorn
	dns.SetMX("bounces.posthorn.test", testkit.MX{Pref: 10, Host: "mx.elsewhere.test"}) // wrong
	var rep domain.Report
	in.CLI(&rep, "domain", "check", "example.org")
	got := map[string]domain.RecordCheck{}
	for _, c := range rep.Records {
		got[c.Purpose] = c
	}
	if got["dkim"].Status != "ok" || got["spf"].Status != "wrong" || got["dmarc"].Status != "missing" ||
		got["return_path"].Status != "wrong" || rep.Status != "verified" {
		t.Fatalf("check: %+v", rep)
	}
	if f := got["spf"].Found; len(f) != 1 || f[0] != "v=spf1 -all" {
		t.Fatalf("spf found %v", f)
	}
	if f := got["return_path"].Found; len(f) != 1 || !strings.Contains(f[0], "mx.elsewhere.test") {
		t.Fatalf("mx found %v", f)
	}
	var shown domain.Info
	in.CLI(&shown, "domain", "show", "example.org")
	if shown.Status != "verified" || shown.LastCheck == nil || shown.CheckedAt.IsZero() {
		t.Fatalf("show after check: %+v", shown)
	}
	// A restart keeps the status and the keys (sealed under dkim.key).
	in.Stop()
	in.Restart()
	in.CLI(&shown, "domain", "show", "example.org")
	if shown.Status != "verified" || shown.Selector != d.Selector {
		t.Fatalf("after restart: %+v", shown)
	}
	if fi, err := os.Stat(in.Dir + "/dkim.key"); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("dkim.key: %v %v", fi, err)
	}
	out, _ := exec.Command(binary, "domain", "show", "example.org", "--data-dir", in.Dir, "--json").Output()
	if bytes.Contains(bytes.ToLower(out), []byte("private")) {
		t.Fatalf("show prints a private key: %s", out)
	}
}

// TestPeriodicDomainCheck: the server re-checks domains on its own
// ([domains] check_interval): once the DKIM record is published the
// domain becomes verified without anyone running "domain check", and a
// rotation completes the same way.
func TestPeriodicDomainCheck(t *testing.T) {
	dns := testkit.StartDNS(t)
	in := Start(t, Options{DNS: dns.Addr(), EnforceSenders: true, Config: "[domains]\ncheck_interval = \"200ms\"\n"})
	var d domain.Info
	in.CLI(&d, "domain", "add", "example.org")
	r := dkimRecord(t, &d)
	waitDomain := func(cond func(domain.Info) bool) domain.Info {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			var shown domain.Info
			in.CLI(&shown, "domain", "show", "example.org")
			if cond(shown) {
				return shown
			}
			if time.Now().After(deadline) {
				t.Fatalf("domain not as expected: %+v", shown)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitDomain(func(x domain.Info) bool { return !x.CheckedAt.IsZero() }) // checked, not yet published
	dns.SetTXT(r.Name, r.Value)
	waitDomain(func(x domain.Info) bool { return x.Status == "verified" })

	var rot domain.Info
	in.CLI(&rot, "domain", "rotate", "example.org", "--selector", "next", "--algorithm", "ed25519")
	for _, rec := range rot.Records {
		if rec.Selector == "next" {
			dns.SetTXT(rec.Name, rec.Value)
		}
	}
	shown := waitDomain(func(x domain.Info) bool { return x.Selector == "next" })
	if len(shown.Keys) != 2 || shown.Keys[0].State != "retired" || shown.Algorithm != "ed25519" {
		t.Fatalf("after rotation: %+v", shown.Keys)
	}
	in.CLI(nil, "domain", "remove-key", "example.org", d.Selector)
	if err := in.TryCLI(nil, "domain", "remove-key", "example.org", "next"); err == nil {
		t.Fatal("the active key was removed")
	}
}
