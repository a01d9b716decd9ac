package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/api"
	"github.com/posthorn/posthorn/internal/api/adminclient"
	"github.com/posthorn/posthorn/internal/store"
)

// TestSandboxKey: mail sent with a sandbox key is accepted, stored and
// shown delivered to the sandbox, and never reaches the MX.
func TestSandboxKey(t *testing.T) {
	w := newWorld(t, Options{}, "127.0.0.2")
	w.domain("dest.test", "127.0.0.2")
	in, mx := w.in, w.mx["127.0.0.2"]
	var sk api.KeyResponse
	in.CLI(&sk, "apikey", "create", "--sandbox", "--name", "ci")
	if !strings.HasPrefix(sk.APIKey, "ph_test_"+sk.ID+"_") || !sk.Sandbox {
		t.Fatalf("sandbox key: %+v", sk)
	}
	body := apiSend("r@dest.test")
	body["subject"] = "sandboxed"
	var res api.SendResponse
	if code := in.call(t, sk.APIKey, "POST", "/v1/messages", body, nil, &res); code != 202 {
		t.Fatalf("sandbox send: %d", code)
	}
	d := in.WaitFinal(res.ID, 20*time.Second)
	if !d.Message.Sandbox || d.Deliveries[0].State != store.Delivered || d.Deliveries[0].LastMX != "sandbox" {
		t.Fatalf("sandbox message: %+v %+v", d.Message, d.Deliveries)
	}
	found := false
	for _, e := range d.Events {
		found = found || e.Type == store.EventDelivered && e.Detail == "sandbox" && e.MX == "sandbox"
	}
	if !found {
		t.Fatalf("no delivered event flagged sandbox: %+v", d.Events)
	}
	var view api.MessageView
	if code := in.call(t, sk.APIKey, "GET", "/v1/messages/"+res.ID, nil, nil, &view); code != 200 || !view.Sandbox || view.Recipients[0].LastClass != "sandbox" {
		t.Fatalf("view: %d %+v", code, view)
	}
	// A live message to the same MX, sent after the sandbox one was final,
	// is the only one that arrives.
	real := apiSend("r@dest.test")
	real["subject"] = "real"
	if code := in.call(t, in.Creds.APIKey, "POST", "/v1/messages", real, nil, &res); code != 202 {
		t.Fatalf("live send: %d", code)
	}
	msgs := waitMessages(t, mx, 1)
	in.WaitFinal(res.ID, 20*time.Second)
	if msgs = mx.Messages(); len(msgs) != 1 || !strings.Contains(string(msgs[0].Data), "Subject: real") {
		t.Fatalf("the MX got %d messages (want only the live one)", len(msgs))
	}
}

// TestSendmailCommand: posthorn sendmail -t -i queues stdin as the
// sendmail tenant (Bcc used as a recipient, removed from the message);
// the same binary named "sendmail" works alike; with the server down it
// exits 75 (EX_TEMPFAIL), without recipients 64.
func TestSendmailCommand(t *testing.T) {
	w := newWorld(t, Options{}, "127.0.0.2")
	w.domain("dest.test", "127.0.0.2")
	in, mx := w.in, w.mx["127.0.0.2"]
	msg := "From: Cron Daemon <cron@app.test>\nTo: ops@dest.test\nBcc: hidden@dest.test\nSubject: cron output\n\nbackup done\n.\nafter a lone dot\n"
	if out, errOut, code := in.Run(msg, nil, "sendmail", "-t", "-i"); code != 0 {
		t.Fatalf("sendmail -t -i: exit %d: %s %s", code, out, errOut)
	}
	got := waitMessages(t, mx, 1)[0]
	data := string(got.Data)
	if strings.Join(got.To, ",") != "ops@dest.test,hidden@dest.test" || got.From != "cron@app.test" {
		t.Fatalf("envelope %s -> %v", got.From, got.To)
	}
	if strings.Contains(data, "Bcc") || strings.Contains(data, "hidden@") || !strings.Contains(data, "after a lone dot") {
		t.Fatalf("message:\n%s", data)
	}
	var list struct{ Items []store.Delivery }
	in.CLI(&list, "queue", "list", "--state", "all")
	if len(list.Items) == 0 || list.Items[0].TenantID != in.Creds.TenantID {
		t.Fatalf("sendmail mail is not the default tenant's: %+v", list.Items)
	}

	// The sendmail socket is open to local users and serves nothing else.
	sock := filepath.Join(in.Dir, "sendmail.sock")
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o666 {
		t.Fatalf("sendmail socket: %v %v", fi, err)
	}
	var se *adminclient.StatusError
	err := adminclient.NewSendmailClient(sock).Do(context.Background(), "GET", "/admin/v1/apikeys", nil, nil, nil)
	if !errors.As(err, &se) || se.Status != 404 && se.Status != 405 {
		t.Fatalf("the sendmail socket serves the admin API: %v", err)
	}

	// Installed as /usr/sbin/sendmail: a link named sendmail.
	link := filepath.Join(t.TempDir(), "sendmail")
	if err := os.Symlink(binary, link); err != nil {
		t.Fatal(err)
	}
	env := []string{"POSTHORN_DATA_DIR=" + in.Dir, "POSTHORN_CONFIG="}
	if _, errOut, code := RunBinary(t, link, "Subject: php\n\nfrom mail()\n", env, "-oi", "-f", "www@app.test", "web@dest.test"); code != 0 {
		t.Fatalf("as sendmail: exit %d: %s", code, errOut)
	}
	got = waitMessages(t, mx, 2)[1]
	if got.From != "www@app.test" || !strings.Contains(string(got.Data), "From: <www@app.test>") {
		t.Fatalf("as sendmail: %s %q", got.From, got.Data)
	}
	if _, _, code := RunBinary(t, link, "Subject: x\n\nno rcpt\n", env, "-i"); code != 64 {
		t.Fatalf("no recipients: exit %d, want 64", code)
	}
	in.Stop()
	if _, errOut, code := in.Run(msg, nil, "sendmail", "-t", "-i"); code != 75 {
		t.Fatalf("server down: exit %d (%s), want 75", code, errOut)
	}
}

// TestPerDomainCredentials: an SMTP user or API key restricted to some
// domains may not use others as envelope sender or From, even with the
// tenant-wide sender check off.
func TestPerDomainCredentials(t *testing.T) {
	w := newWorld(t, Options{}, "127.0.0.2")
	w.domain("dest.test", "127.0.0.2")
	in := w.in
	var u api.UserResponse
	in.CLI(&u, "user", "add", "shop", "--domain", "shop.test", "--password", "shop-password")
	if len(u.Domains) != 1 || u.Domains[0] != "shop.test" {
		t.Fatalf("user: %+v", u)
	}
	c, err := Dial(in.SMTP)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Cmd(250, "EHLO client.test"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Cmd(235, "AUTH PLAIN "+plain("shop", "shop-password")); err != nil {
		t.Fatal(err)
	}
	if text, err := c.Cmd(553, "MAIL FROM:<news@other.test>"); err != nil || !strings.Contains(text, "5.7.1") {
		t.Fatalf("other envelope domain: %q %v", text, err)
	}
	if _, err := c.Cmd(250, "MAIL FROM:<news@shop.test>"); err != nil {
		t.Fatal(err)
	}
	c.Cmd(250, "RCPT TO:<r@dest.test>")
	c.Cmd(354, "DATA")
	if text, err := c.Cmd(553, "From: news@other.test\r\nSubject: x\r\n\r\nbody\r\n."); err != nil || !strings.Contains(text, "5.7.1") {
		t.Fatalf("other From domain: %q %v", text, err)
	}
	if _, err := c.Transaction("news@shop.test", []string{"r@dest.test"}, "From: Shop <news@shop.test>\r\nSubject: ok\r\n\r\nbody\r\n"); err != nil {
		t.Fatalf("own domain: %v", err)
	}

	var k api.KeyResponse
	in.CLI(&k, "apikey", "create", "--domain", "shop.test")
	var e api.APIError
	body := map[string]any{"from": "App <app@other.test>", "to": []string{"r@dest.test"}, "subject": "x", "text": "x"}
	if code := in.call(t, k.APIKey, "POST", "/v1/messages", body, nil, &e); code != 403 || e.Error.Code != "sender_domain_not_allowed" {
		t.Fatalf("key, other From: %d %+v", code, e)
	}
	raw := map[string]any{"from": "bounce@shop.test", "to": []string{"r@dest.test"}, "raw": "From: a@other.test\r\nSubject: x\r\n\r\nx\r\n"}
	if code := in.call(t, k.APIKey, "POST", "/v1/messages/raw", raw, nil, &e); code != 403 || e.Error.Code != "sender_domain_not_allowed" {
		t.Fatalf("key, raw with other From: %d %+v", code, e)
	}
	body["from"] = "Shop <news@shop.test>"
	var res api.SendResponse
	if code := in.call(t, k.APIKey, "POST", "/v1/messages", body, nil, &res); code != 202 {
		t.Fatalf("key, own domain: %d", code)
	}
}

// TestAuthNeedsTLS: AUTH is neither offered nor accepted in clear text
// from a non-loopback client (538 5.7.11), works after STARTTLS, and works
// in clear text on loopback. A wrong password is an auth_failed event.
func TestAuthNeedsTLS(t *testing.T) {
	ip := nonLoopbackIP(t)
	in := Start(t, Options{SMTPListenAll: true})
	port := in.SMTP[strings.LastIndexByte(in.SMTP, ':')+1:]
	c, err := Dial(net.JoinHostPort(ip, port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ehlo, err := c.Cmd(250, "EHLO client.test")
	if err != nil || strings.Contains(ehlo, "AUTH") || !strings.Contains(ehlo, "STARTTLS") {
		t.Fatalf("cleartext EHLO from %s offers AUTH or lacks STARTTLS: %q %v", ip, ehlo, err)
	}
	auth := "AUTH PLAIN " + plain(in.Creds.SMTPUsername, in.Creds.SMTPPassword)
	if text, err := c.Cmd(538, auth); err != nil || !strings.Contains(text, "5.7.11") {
		t.Fatalf("cleartext AUTH: %q %v", text, err)
	}
	if _, err := c.Cmd(220, "STARTTLS"); err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(c.c, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	c.c, c.r = tc, bufio.NewReader(tc)
	if ehlo, err := c.Cmd(250, "EHLO client.test"); err != nil || !strings.Contains(ehlo, "AUTH") {
		t.Fatalf("EHLO after STARTTLS: %q %v", ehlo, err)
	}
	if _, err := c.Cmd(235, auth); err != nil {
		t.Fatal(err)
	}

	lc, err := Dial(in.SMTP)
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Close()
	lc.Cmd(250, "EHLO client.test")
	if _, err := lc.Cmd(535, "AUTH PLAIN "+plain(in.Creds.SMTPUsername, "wrong")); err != nil {
		t.Fatalf("wrong password on loopback: %v", err)
	}
	if _, err := lc.Cmd(235, auth); err != nil {
		t.Fatalf("cleartext AUTH on loopback: %v", err)
	}
	var evs struct{ Items []store.Event }
	in.CLI(&evs, "events", "--type", "auth_failed")
	if len(evs.Items) != 1 || !strings.Contains(evs.Items[0].Detail, "protocol=smtp ip=127.0.0.1") ||
		!strings.Contains(evs.Items[0].Detail, `user="`+in.Creds.SMTPUsername+`"`) || evs.Items[0].TenantID != in.Creds.TenantID {
		b, _ := json.Marshal(evs.Items)
		t.Fatalf("auth_failed events: %s", b)
	}
}

// nonLoopbackIP returns an address of this machine that is not loopback.
func nonLoopbackIP(t *testing.T) string {
	addrs, err := net.InterfaceAddrs()
	if err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
				return n.IP.String()
			}
		}
	}
	if os.Getenv("POSTHORN_REQUIRE_TOOLS") == "1" {
		t.Fatal("no non-loopback IPv4 address to test cleartext AUTH from")
	}
	t.Skip("no non-loopback IPv4 address")
	return ""
}

// TestLoginLimits: wrong passwords on /v1/apikeys are blocked (429) per
// email after 10, even with the right password then; bad API keys are
// never blocked, and write at most 10 auth_failed events per address.
func TestLoginLimits(t *testing.T) {
	in := Start(t, Options{})
	in.CLI(nil, "account", "add", "ops@alpha.test", "--tenant", "default", "--role", "admin", "--password", "right-password")
	for i := range 10 {
		if code, _ := in.basic(t, "ops@alpha.test", "wrong-password", "GET", "/v1/apikeys", nil); code != 401 {
			t.Fatalf("wrong password %d: %d", i, code)
		}
	}
	if code, out := in.basic(t, "ops@alpha.test", "right-password", "GET", "/v1/apikeys", nil); code != 429 {
		t.Fatalf("after 10 failures: %d %s", code, out)
	}
	for i := range 15 {
		if code, _ := in.raw(t, "ph_live_nosuchkey00_secret", "GET", "/v1/events", nil); code != 401 {
			t.Fatalf("bad key %d: %d", i, code)
		}
	}
	if code, _ := in.raw(t, in.Creds.APIKey, "GET", "/v1/events", nil); code != 200 {
		t.Fatalf("a good key from the same address: %d", code)
	}
	var evs struct{ Items []store.Event }
	in.CLI(&evs, "events", "--type", "auth_failed")
	keys, users := 0, 0
	for _, e := range evs.Items {
		if strings.Contains(e.Detail, `user="ph_live_nosuchkey00"`) {
			keys++
		}
		if strings.Contains(e.Detail, `user="ops@alpha.test"`) {
			users++
		}
	}
	if keys != 10 || users != 10 {
		t.Fatalf("auth_failed events: %d for the bad key (want 10), %d for the password (want 10)", keys, users)
	}
}
