package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/api"
	"github.com/posthorn/posthorn/internal/domain"
	"github.com/posthorn/posthorn/internal/testkit"
)

// senderWorld is posthorn with sender enforcement on: the default tenant
// (A) owns tenanta.test (unverified-ok) and pending.test (not verified);
// tenant B owns tenantb.test.
func senderWorld(t *testing.T) *Instance {
	t.Helper()
	in := Start(t, Options{EnforceSenders: true})
	in.CLI(nil, "tenant", "add", "tenantb")
	var d domain.Info
	in.CLI(&d, "domain", "add", "tenanta.test", "--unverified-ok")
	in.CLI(&d, "domain", "add", "pending.test")
	in.CLI(&d, "domain", "add", "tenantb.test", "--tenant", "tenantb", "--unverified-ok", "--algorithm", "ed25519")
	if err := in.TryCLI(nil, "domain", "add", "TenantB.test", "--unverified-ok"); err == nil || !strings.Contains(err.Error(), "another tenant") {
		t.Fatalf("adding tenant B's domain to tenant A: %v", err)
	}
	return in
}

// smtpTry runs one transaction as tenant A's user and returns the first
// refusal (or the final reply).
func smtpTry(t *testing.T, in *Instance, mailFrom, header string) string {
	t.Helper()
	c, err := Dial(in.SMTP)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Cmd(250, "EHLO client.test")
	if _, err := c.Cmd(235, "AUTH PLAIN "+plain(in.Creds.SMTPUsername, in.Creds.SMTPPassword)); err != nil {
		t.Fatal(err)
	}
	if text, err := c.Cmd(250, "MAIL FROM:<"+mailFrom+">"); err != nil {
		return text
	}
	c.Cmd(250, "RCPT TO:<rcpt@dest.test>")
	c.Cmd(354, "DATA")
	text, _ := c.Cmd(0, dotStuff(header+"To: rcpt@dest.test\r\nSubject: hi\r\n\r\nbody\r\n")+".")
	return text
}

// TestSenderEnforcementSMTP is the open-relay style battery: tenant A's
// user may use its own domains only, in MAIL FROM and in From.
func TestSenderEnforcementSMTP(t *testing.T) {
	in := senderWorld(t)
	refusedB := "553 5.7.1 sender domain tenantb.test is not a verified domain of this account"
	cases := []struct {
		name, mailFrom, from, want string
	}{
		{"own domain", "a@tenanta.test", "From: a@tenanta.test\r\n", "250 "},
		{"own domain, upper case", "a@TENANTA.test", "From: A <a@TenantA.TEST>\r\n", "250 "},
		{"own domain, null sender", "", "From: a@tenanta.test\r\n", "250 "},
		{"own domain, display name in another charset", "a@tenanta.test", "From: =?windows-1252?q?J=F6rg?= <a@tenanta.test>\r\n", "250 "},
		{"B in MAIL FROM", "x@tenantb.test", "From: a@tenanta.test\r\n", refusedB},
		{"B in From", "a@tenanta.test", "From: b@tenantb.test\r\n", refusedB},
		{"B in both", "b@tenantb.test", "From: b@tenantb.test\r\n", refusedB},
		{"B upper case in MAIL FROM", "x@TENANTB.TEST", "From: a@tenanta.test\r\n", refusedB},
		{"B mixed case in From", "a@tenanta.test", "From: b@TenantB.Test\r\n", refusedB},
		{"B with trailing dot", "a@tenanta.test", "From: b@tenantb.test.\r\n", "553 5.7.1"},
		{"B in From, null sender", "", "From: b@tenantb.test\r\n", refusedB},
		{"subdomain of own domain", "a@tenanta.test", "From: a@mail.tenanta.test\r\n", "553 5.7.1 sender domain mail.tenanta.test is not"},
		{"subdomain in MAIL FROM", "a@bounce.tenanta.test", "From: a@tenanta.test\r\n", "553 5.7.1 sender domain bounce.tenanta.test is not"},
		{"display name trick", "a@tenanta.test", "From: \"a@tenanta.test\" <x@evil.test>\r\n", "553 5.7.1 sender domain evil.test is not"},
		{"display name trick reversed", "a@tenanta.test", "From: \"b@tenantb.test\" <x@evil.test>\r\n", "553 5.7.1 sender domain evil.test is not"},
		{"two addresses in From", "a@tenanta.test", "From: a@tenanta.test, b@tenantb.test\r\n", refusedB},
		{"two From fields", "a@tenanta.test", "From: a@tenanta.test\r\nFrom: b@tenantb.test\r\n", refusedB},
		{"group in From", "a@tenanta.test", "From: friends: a@tenanta.test, b@tenantb.test;\r\n", refusedB},
		{"unparseable From", "a@tenanta.test", "From: <<<@@@>\r\n", "553 5.7.1"},
		{"own domain not verified", "a@pending.test", "From: a@pending.test\r\n", "553 5.7.1 sender domain pending.test is not"},
		{"unknown domain", "a@evil.test", "From: a@tenanta.test\r\n", "553 5.7.1 sender domain evil.test is not"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := smtpTry(t, in, c.mailFrom, c.from); !strings.HasPrefix(got, c.want) {
				t.Fatalf("MAIL FROM:<%s> %q: got %q, want %q", c.mailFrom, c.from, got, c.want)
			}
		})
	}
}

// TestSenderEnforcementHTTP: the API refuses other tenants' domains with
// 403 sender_domain_not_allowed, in /v1/messages, /raw and /bulk; /v1/domains
// shows a tenant only its own domains.
func TestSenderEnforcementHTTP(t *testing.T) {
	in := senderWorld(t)
	key := in.Creds.APIKey
	var e struct {
		Error struct{ Code, Message, Field string }
	}
	send := func(from string) int {
		e.Error.Code = ""
		return in.call(t, key, "POST", "/v1/messages", map[string]any{"from": from, "to": []string{"r@dest.test"}, "subject": "s", "text": "t"}, nil, &e)
	}
	if code := send("App <app@tenanta.test>"); code != 202 {
		t.Fatalf("own domain: %d %+v", code, e)
	}
	for _, from := range []string{"b@tenantb.test", "B <b@TENANTB.test>", "x@sub.tenanta.test", "x@pending.test"} {
		if code := send(from); code != 403 || e.Error.Code != "sender_domain_not_allowed" {
			t.Errorf("from %s: %d %+v", from, code, e)
		}
	}
	raw := func(env, hdr string) int {
		e.Error.Code = ""
		return in.call(t, key, "POST", "/v1/messages/raw", map[string]any{"from": env, "to": []string{"r@dest.test"},
			"raw": hdr + "To: r@dest.test\r\nSubject: s\r\n\r\nbody\r\n"}, nil, &e)
	}
	if code := raw("a@tenanta.test", "From: a@tenanta.test\r\n"); code != 202 {
		t.Fatalf("raw own domain: %d %+v", code, e)
	}
	for _, c := range [][2]string{{"a@tenanta.test", "From: \"a@tenanta.test\" <b@tenantb.test>\r\n"}, {"b@tenantb.test", "From: a@tenanta.test\r\n"}} {
		if code := raw(c[0], c[1]); code != 403 || e.Error.Code != "sender_domain_not_allowed" {
			t.Errorf("raw %q: %d %+v", c, code, e)
		}
	}
	var bulk struct {
		Accepted, Failed int
		Items            []struct {
			Error *struct{ Code string }
		}
	}
	in.call(t, key, "POST", "/v1/messages/bulk", map[string]any{"messages": []map[string]any{
		{"from": "a@tenanta.test", "to": []string{"r@dest.test"}, "subject": "s", "text": "t"},
		{"from": "b@tenantb.test", "to": []string{"r@dest.test"}, "subject": "s", "text": "t"},
	}}, nil, &bulk)
	if bulk.Accepted != 1 || bulk.Failed != 1 || bulk.Items[1].Error == nil || bulk.Items[1].Error.Code != "sender_domain_not_allowed" {
		t.Fatalf("bulk: %+v", bulk)
	}

	// /v1/domains is tenant-scoped.
	var list struct {
		Items []domain.Info
	}
	if code := in.call(t, key, "GET", "/v1/domains", nil, nil, &list); code != 200 || len(list.Items) != 2 {
		t.Fatalf("list: %d %+v", code, list)
	}
	for _, d := range list.Items {
		if d.Domain == "tenantb.test" {
			t.Fatal("tenant A lists tenant B's domain")
		}
	}
	for _, p := range []string{"GET /v1/domains/tenantb.test", "POST /v1/domains/tenantb.test/check", "POST /v1/domains/tenantb.test/rotate", "DELETE /v1/domains/tenantb.test"} {
		m, path, _ := strings.Cut(p, " ")
		if code := in.call(t, key, m, path, nil, nil, &e); code != 404 {
			t.Errorf("%s: %d, want 404", p, code)
		}
	}
	if code := in.call(t, key, "POST", "/v1/domains", map[string]any{"domain": "tenantb.test"}, nil, &e); code != 409 {
		t.Errorf("adding tenant B's domain: %d %+v", code, e)
	}
	var added domain.Info
	if code := in.call(t, key, "POST", "/v1/domains", map[string]any{"domain": "api.test", "algorithm": "ed25519", "unverified_ok": true}, nil, &added); code != 201 ||
		added.Algorithm != "ed25519" || len(added.Records) < 3 {
		t.Fatalf("add over the API: %d %+v", code, added)
	}
	if code := send("x@api.test"); code != 202 {
		t.Fatalf("a domain added over the API does not send: %d %+v", code, e)
	}
	// A send-scoped key may not manage domains.
	var k struct {
		APIKey string `json:"api_key"`
	}
	in.CLI(&k, "apikey", "create", "--scope", "send,read")
	if code := in.call(t, k.APIKey, "GET", "/v1/domains", nil, nil, &e); code != 403 {
		t.Fatalf("send key lists domains: %d", code)
	}
	if code := in.call(t, key, "DELETE", "/v1/domains/api.test", nil, nil, nil); code != 200 {
		t.Fatalf("remove: %d", code)
	}
	if code := send("x@api.test"); code != 403 {
		t.Fatalf("a removed domain still sends: %d", code)
	}
}

// TestDSNExemptFromSenderCheck: with the sender check on, the DSNs
// posthorn writes itself (null sender, From its own hostname) still go out.
func TestDSNExemptFromSenderCheck(t *testing.T) {
	w := newWorld(t, Options{EnforceSenders: true}, "127.0.0.2", "127.0.0.3")
	w.domain("dest.test", "127.0.0.2")
	w.domain("app.test", "127.0.0.3")
	w.mx["127.0.0.2"].SetScript(testkit.Script{RcptReplies: map[string]testkit.Reply{"gone@dest.test": {Code: 550, Text: "5.1.1 no such user"}}})
	in := w.in
	in.CLI(nil, "domain", "add", "app.test", "--unverified-ok")
	var u api.UserResponse
	in.CLI(&u, "user", "add", "app", "--dsn")
	c, err := Dial(in.SMTP)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Cmd(250, "EHLO app.test")
	if _, err := c.Cmd(235, "AUTH PLAIN "+plain(u.Username, u.Password)); err != nil {
		t.Fatal(err)
	}
	id, err := c.Transaction("owner@app.test", []string{"gone@dest.test"}, msgBody("will bounce"))
	if err != nil {
		t.Fatal(err)
	}
	in.WaitFinal(id, 20*time.Second)
	m := waitMessages(t, w.mx["127.0.0.3"], 1)[0]
	if m.From != "" || !strings.Contains(string(m.Data), "report-type=delivery-status") {
		t.Fatalf("DSN: from %q\n%s", m.From, m.Data)
	}
}
