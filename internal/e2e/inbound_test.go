package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/api"
	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/testkit"
	"github.com/posthorn/posthorn/internal/verp"
)

func dsnFor(verpAddr, rcpt, status, diag string) string {
	return "From: MAILER-DAEMON@mx.dsn.test\r\nTo: " + verpAddr + "\r\nSubject: Undelivered Mail Returned to Sender\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b1\"\r\n\r\n" +
		"--b1\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n" +
		"--b1\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.dsn.test\r\n\r\n" +
		"Final-Recipient: rfc822; " + rcpt + "\r\nAction: failed\r\nStatus: " + status + "\r\n" +
		"Diagnostic-Code: smtp; " + diag + "\r\n\r\n" +
		"--b1\r\nContent-Type: text/rfc822-headers\r\n\r\nReturn-Path: <" + verpAddr + ">\r\nTo: " + rcpt + "\r\nSubject: hello\r\n\r\n--b1--\r\n"
}

func arfFor(verpAddr, rcpt string) string {
	return "From: fbl@isp.test\r\nTo: fbl@bounces.test\r\nSubject: complaint\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/report; report-type=feedback-report; boundary=\"b2\"\r\n\r\n" +
		"--b2\r\nContent-Type: text/plain\r\n\r\nThis is an abuse report.\r\n" +
		"--b2\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\nUser-Agent: isp-fbl/1.0\r\nVersion: 1\r\n" +
		"Original-Rcpt-To: " + rcpt + "\r\n\r\n" +
		"--b2\r\nContent-Type: message/rfc822\r\n\r\nReturn-Path: <" + verpAddr + ">\r\nFrom: s@app.test\r\nTo: " + rcpt + "\r\nSubject: hi\r\n\r\nbody\r\n--b2--\r\n"
}

// TestInboundBounces: mail goes out with a signed VERP return path; a DSN
// and an ARF report mailed to the inbound listener update the original
// deliveries and the suppression list; relay tricks and forged tokens are
// refused.
func TestInboundBounces(t *testing.T) {
	inPort := freePort(t)
	w := newWorld(t, Options{Extra: []string{"--bounce-domain", "bounces.test", "--inbound-listen", fmt.Sprintf("127.0.0.1:%d", inPort)}}, "127.0.0.2")
	w.domain("dsn.test", "127.0.0.2")
	in, mx := w.in, w.mx["127.0.0.2"]
	inbound := fmt.Sprintf("127.0.0.1:%d", inPort)

	id, rp := returnPaths(t, in, mx, []string{"gone@dsn.test", "c@dsn.test"})
	verpAddr := rp["gone@dsn.test"]
	if !strings.HasSuffix(verpAddr, "@bounces.test") {
		t.Fatalf("envelope sender %q is not a VERP address", verpAddr)
	}

	c, err := Dial(inbound)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	expect(t, c, "EHLO mx.dsn.test", 250, "")
	expect(t, c, "MAIL FROM:<>", 250, "")
	for _, bad := range []string{"RCPT TO:<x@other.test>", "RCPT TO:<user%other.test@bounces.test>", `RCPT TO:<"user@other.test"@bounces.test>`,
		"RCPT TO:<@relay.test:user@bounces.test>", "RCPT TO:<bounces+aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@bounces.test>"} {
		if text, _ := c.Cmd(0, bad); !strings.HasPrefix(text, "550") {
			t.Errorf("%s: %q, want 550", bad, text)
		}
	}
	expect(t, c, "RSET", 250, "")
	expect(t, c, "MAIL FROM:<>", 250, "")
	expect(t, c, "RCPT TO:<"+verpAddr+">", 250, "")
	expect(t, c, "DATA", 354, "")
	expect(t, c, dotStuff(dsnFor(verpAddr, "gone@dsn.test", "5.1.1", "550 5.1.1 <gone@dsn.test>: user unknown"))+".", 250, "")
	deadline := time.Now().Add(10 * time.Second)
	for delivery(t, in.Show(id), "gone@dsn.test").State != store.Bounced {
		if time.Now().After(deadline) {
			t.Fatalf("DSN not applied: %+v", in.Show(id).Deliveries)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The ARF report, to the feedback mailbox, found through the original's Return-Path.
	c2, err := Dial(inbound)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	expect(t, c2, "EHLO isp.test", 250, "")
	expect(t, c2, "MAIL FROM:<fbl@isp.test>", 250, "")
	expect(t, c2, "RCPT TO:<fbl@bounces.test>", 250, "")
	expect(t, c2, "DATA", 354, "")
	expect(t, c2, dotStuff(arfFor(rp["c@dsn.test"], "c@dsn.test"))+".", 250, "")

	var list struct {
		Items []store.Suppression `json:"items"`
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		in.CLI(&list, "suppression", "list")
		reasons := map[string]string{}
		for _, s := range list.Items {
			reasons[s.Value] = s.Reason
		}
		if reasons["gone@dsn.test"] == "hard_bounce" && reasons["c@dsn.test"] == "complaint" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("suppressions: %+v", list.Items)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, s := range list.Items {
		if s.Value == "gone@dsn.test" && strings.Count(s.Detail, "5.1.1") != 1 {
			t.Errorf("suppression detail repeats the codes: %q", s.Detail)
		}
	}
	// queue show names the reply that bounced it, not the 250 of the delivery.
	for _, line := range strings.Split(in.mustRun("queue", "show", id), "\n") {
		if strings.Contains(line, "gone@dsn.test") && strings.Contains(line, "bounced ") &&
			(strings.Contains(line, "last=250") || !strings.Contains(line, "user unknown")) {
			t.Errorf("queue show of the asynchronously bounced delivery: %q", line)
		}
	}
	if !strings.Contains(strings.Join(eventTypes(in.Show(id), "c@dsn.test"), ","), "complaint") {
		t.Fatalf("no complaint event: %v", eventTypes(in.Show(id), "c@dsn.test"))
	}
	var res api.SendResponse
	in.call(t, in.Creds.APIKey, "POST", "/v1/messages", map[string]any{"from": "app@app.test", "to": []string{"gone@dsn.test"}, "text": "again"}, nil, &res)
	if res.Recipients[0].State != store.Suppressed {
		t.Fatalf("next message to the bounced address: %+v", res.Recipients)
	}
}

// TestOneClickUnsubscribe: low-lane mail carries List-Unsubscribe and
// List-Unsubscribe-Post; a POST to the URL suppresses the recipient and
// logs an unsubscribed event; a forged token does nothing; normal-lane
// mail has no such header.
func TestOneClickUnsubscribe(t *testing.T) {
	w := newWorld(t, Options{Config: "[unsubscribe]\nbase_url = \"https://mail.example.test\"\nlanes = [\"low\"]\n"}, "127.0.0.2")
	w.domain("news.test", "127.0.0.2")
	in, mx := w.in, w.mx["127.0.0.2"]
	var res api.SendResponse
	in.call(t, in.Creds.APIKey, "POST", "/v1/messages", map[string]any{"from": "news@app.test", "to": []string{"a@news.test", "b@news.test"},
		"subject": "newsletter", "text": "news", "lane": "low"}, nil, &res)
	in.WaitFinal(res.ID, 20*time.Second)
	msgs := waitMessages(t, mx, 2)
	var url string
	for _, m := range msgs {
		data := string(m.Data)
		if len(m.To) != 1 || !strings.Contains(data, "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n") {
			t.Fatalf("low-lane copy to %v lacks one-click headers:\n%s", m.To, data)
		}
		if m.To[0] == "a@news.test" {
			i := strings.Index(data, "<https://mail.example.test/unsubscribe/")
			url = data[i+len("<https://mail.example.test") : i+strings.Index(data[i:], ">")]
		}
	}
	post := func(path string) int {
		resp, err := http.Post("http://"+in.HTTP+path, "application/x-www-form-urlencoded", strings.NewReader("List-Unsubscribe=One-Click"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(url[:len(url)-3] + "aaa"); code != 404 {
		t.Fatalf("forged token: %d", code)
	}
	if code := post(url); code != 200 {
		t.Fatalf("unsubscribe: %d", code)
	}
	var list struct {
		Items []store.Suppression `json:"items"`
	}
	in.CLI(&list, "suppression", "list")
	if len(list.Items) != 1 || list.Items[0].Value != "a@news.test" || list.Items[0].Reason != "unsubscribe" {
		t.Fatalf("suppressions: %+v", list.Items)
	}
	if !strings.Contains(strings.Join(eventTypes(in.Show(res.ID), "a@news.test"), ","), "unsubscribed") {
		t.Fatal("no unsubscribed event")
	}
	// Normal lane: no header.
	in.call(t, in.Creds.APIKey, "POST", "/v1/messages", map[string]any{"from": "app@app.test", "to": []string{"c@news.test"}, "text": "receipt"}, nil, &res)
	in.WaitFinal(res.ID, 20*time.Second)
	for _, m := range waitMessages(t, mx, 3) {
		if m.To[0] == "c@news.test" && strings.Contains(string(m.Data), "List-Unsubscribe") {
			t.Fatal("normal-lane mail got List-Unsubscribe")
		}
	}
}

// TestDSNToSender: for an SMTP user who asked for it, a recipient that
// bounces makes posthorn mail the envelope sender an RFC 3464 DSN from the
// null sender; a user without the option gets none.
func TestDSNToSender(t *testing.T) {
	w := newWorld(t, Options{}, "127.0.0.2", "127.0.0.3")
	w.domain("dest.test", "127.0.0.2")
	w.domain("app.test", "127.0.0.3") // the sender's own domain receives the DSN
	gone := testkit.Reply{Code: 550, Text: "5.1.1 no such user"}
	// One address per message: a bounced address is suppressed, and mail
	// suppressed at accept time is never attempted, so it would get no DSN
	// for that reason alone.
	w.mx["127.0.0.2"].SetScript(testkit.Script{RcptReplies: map[string]testkit.Reply{
		"gone@dest.test": gone, "gone2@dest.test": gone, "gone3@dest.test": gone}})
	in := w.in
	var u api.UserResponse
	in.CLI(&u, "user", "add", "app", "--dsn")
	c, err := Dial(in.SMTP)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	expect(t, c, "EHLO app.test", 250, "")
	expect(t, c, "AUTH PLAIN "+plain(u.Username, u.Password), 235, "")
	id, err := c.Transaction("owner@app.test", []string{"gone@dest.test"}, msgBody("will bounce"))
	if err != nil {
		t.Fatal(err)
	}
	in.WaitFinal(id, 20*time.Second)
	msgs := waitMessages(t, w.mx["127.0.0.3"], 1)
	m := msgs[0]
	if m.From != "" || len(m.To) != 1 || m.To[0] != "owner@app.test" {
		t.Fatalf("DSN envelope: from %q to %v", m.From, m.To)
	}
	data := string(m.Data)
	for _, want := range []string{"report-type=delivery-status", "Final-Recipient: rfc822; gone@dest.test", "Status: 5.1.1", "Diagnostic-Code: smtp; 550 5.1.1 no such user", "Subject: will bounce"} {
		if !strings.Contains(data, want) {
			t.Errorf("DSN lacks %q:\n%s", want, data)
		}
	}
	// The default user did not ask for DSNs. Instead of sleeping to see
	// that none comes, a later bounce of the DSN user's is the barrier: it
	// is submitted only once the silent message is final (when posthorn
	// starts handling its failure), and its DSN needs a whole submission
	// and delivery more before it is composed; both DSNs would go the same
	// way (high lane, same MX), so a DSN for the silent message would
	// arrive first.
	id2 := in.Send("owner@app.test", []string{"gone2@dest.test"}, msgBody("silent"))
	if dl := in.WaitFinal(id2, 20*time.Second).Deliveries[0]; dl.State != store.Bounced {
		t.Fatalf("silent message: %+v, want bounced by the MX", dl)
	}
	id3, err := c.Transaction("owner@app.test", []string{"gone3@dest.test"}, msgBody("barrier"))
	if err != nil {
		t.Fatal(err)
	}
	in.WaitFinal(id3, 20*time.Second)
	msgs = waitMessages(t, w.mx["127.0.0.3"], 2)
	var subjects []string
	for _, m := range msgs {
		for _, s := range []string{"will bounce", "silent", "barrier"} {
			if strings.Contains(string(m.Data), "Subject: "+s+"\r\n") {
				subjects = append(subjects, s)
			}
		}
	}
	if got := strings.Join(subjects, ","); len(msgs) != 2 || got != "will bounce,barrier" {
		t.Fatalf("%d DSNs, for %q; want the DSN user's two only", len(msgs), got)
	}
}

// mailInbound sends one report to the inbound listener for rcpt and
// returns the final reply (250 expected: the listener answers after
// recording).
func mailInbound(t *testing.T, inbound, rcpt, report string) string {
	t.Helper()
	c, err := Dial(inbound)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	expect(t, c, "EHLO mx.remote.test", 250, "")
	expect(t, c, "MAIL FROM:<>", 250, "")
	expect(t, c, "RCPT TO:<"+rcpt+">", 250, "")
	expect(t, c, "DATA", 354, "")
	text, err := c.Cmd(250, dotStuff(report)+".")
	if err != nil {
		t.Fatal(err)
	}
	return text
}

// returnPaths sends from app@app.test to rcpts and returns the envelope
// sender each recipient's copy was sent with.
func returnPaths(t *testing.T, in *Instance, mx *testkit.MXServer, rcpts []string) (string, map[string]string) {
	t.Helper()
	id := in.Send("app@app.test", rcpts, msgBody("per-recipient return path"))
	in.WaitFinal(id, 20*time.Second)
	rp := map[string]string{}
	for _, m := range mx.Messages() {
		for _, r := range m.To {
			rp[r] = m.From
		}
	}
	for _, r := range rcpts {
		if !strings.HasPrefix(rp[r], "bounces+") {
			t.Fatalf("copy to %s sent with return path %q", r, rp[r])
		}
	}
	return id, rp
}

func suppressed(t *testing.T, in *Instance) map[string]string {
	t.Helper()
	var list struct {
		Items []store.Suppression `json:"items"`
	}
	in.CLI(&list, "suppression", "list")
	out := map[string]string{}
	for _, s := range list.Items {
		out[s.Value] = s.Reason
	}
	return out
}

// TestInboundBounceForgery: each recipient's copy has its own return
// path, and a DSN or complaint on one recipient's return path changes only
// that recipient's delivery: alice cannot get bob bounced or suppressed by
// mailing a DSN naming bob to her own return path (it is recorded as a
// report_ignored event). Message-level tokens of the old form still count
// for a message with one recipient, and only for it.
func TestInboundBounceForgery(t *testing.T) {
	inPort := freePort(t)
	w := newWorld(t, Options{Extra: []string{"--bounce-domain", "bounces.test", "--inbound-listen", fmt.Sprintf("127.0.0.1:%d", inPort)}}, "127.0.0.2")
	w.domain("y.test", "127.0.0.2")
	in, mx := w.in, w.mx["127.0.0.2"]
	inbound := fmt.Sprintf("127.0.0.1:%d", inPort)

	id, rp := returnPaths(t, in, mx, []string{"alice@y.test", "bob@y.test"})
	if rp["alice@y.test"] == rp["bob@y.test"] {
		t.Fatalf("alice and bob share the return path %q", rp["alice@y.test"])
	}
	for _, m := range mx.Messages() {
		if len(m.To) != 1 {
			t.Fatalf("a transaction with %d recipients: %v", len(m.To), m.To)
		}
	}

	// Alice forges a DSN and a complaint about bob on her own return path.
	mailInbound(t, inbound, rp["alice@y.test"], dsnFor(rp["alice@y.test"], "bob@y.test", "5.1.1", "550 5.1.1 <bob@y.test>: user unknown"))
	mailInbound(t, inbound, "fbl@bounces.test", arfFor(rp["alice@y.test"], "bob@y.test"))
	d := in.Show(id)
	for _, r := range []string{"alice@y.test", "bob@y.test"} {
		if st := delivery(t, d, r).State; st != store.Delivered {
			t.Fatalf("%s after alice's forged reports: %s", r, st)
		}
	}
	if sup := suppressed(t, in); len(sup) != 0 {
		t.Fatalf("forged reports suppressed %v", sup)
	}
	var ignored []string
	for _, e := range d.Events {
		if e.Type == store.EventReportIgnored {
			ignored = append(ignored, e.Detail)
		}
	}
	if len(ignored) != 2 || !strings.Contains(ignored[0], "bob@y.test") || !strings.Contains(ignored[1], "bob@y.test") {
		t.Fatalf("report_ignored events: %q", ignored)
	}

	// The same DSN on bob's own return path bounces bob, and only bob.
	mailInbound(t, inbound, rp["bob@y.test"], dsnFor(rp["bob@y.test"], "bob@y.test", "5.1.1", "550 5.1.1 <bob@y.test>: user unknown"))
	d = in.Show(id)
	if st := delivery(t, d, "bob@y.test").State; st != store.Bounced {
		t.Fatalf("bob after a DSN on his return path: %s", st)
	}
	if st := delivery(t, d, "alice@y.test").State; st != store.Delivered {
		t.Fatalf("alice after bob's DSN: %s", st)
	}
	if sup := suppressed(t, in); len(sup) != 1 || sup["bob@y.test"] != "hard_bounce" {
		t.Fatalf("suppressions after bob's DSN: %v", sup)
	}

	// Old message-level tokens: honoured for a one-recipient message whose
	// recipient the DSN names, recorded only otherwise.
	key, err := os.ReadFile(filepath.Join(in.Dir, "verp.key"))
	if err != nil {
		t.Fatal(err)
	}
	signer := verp.New(key, "bounces.test", 30*24*time.Hour)
	legacy, err := signer.MessageReturnPath(id)
	if err != nil {
		t.Fatal(err)
	}
	mailInbound(t, inbound, legacy, dsnFor(legacy, "alice@y.test", "5.1.1", "550 5.1.1 user unknown"))
	if st := delivery(t, in.Show(id), "alice@y.test").State; st != store.Delivered {
		t.Fatalf("alice after a message-level DSN for a two-recipient message: %s", st)
	}
	solo, _ := returnPaths(t, in, mx, []string{"solo@y.test"})
	legacy, _ = signer.MessageReturnPath(solo)
	mailInbound(t, inbound, legacy, dsnFor(legacy, "solo@y.test", "5.1.1", "550 5.1.1 user unknown"))
	if st := delivery(t, in.Show(solo), "solo@y.test").State; st != store.Bounced {
		t.Fatalf("solo after a message-level DSN: %s", st)
	}
	if sup := suppressed(t, in); len(sup) != 2 || sup["solo@y.test"] != "hard_bounce" {
		t.Fatalf("suppressions after the message-level DSN: %v", sup)
	}
}
