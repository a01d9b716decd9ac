package e2e

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/abuse"
	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/testkit/rspamd"
)

func startRspamd(t *testing.T) *rspamd.Server {
	t.Helper()
	s, err := rspamd.Start(2 * time.Minute)
	if errors.Is(err, rspamd.ErrMissing) {
		requireTool(t, "rspamd")
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// events returns the events of one type (and message, if given).
func (in *Instance) events(typ, msg string) []store.Event {
	in.t.Helper()
	var res struct {
		Items []store.Event `json:"items"`
	}
	args := []string{"events", "--type", typ}
	if msg != "" {
		args = append(args, "--message", msg)
	}
	in.CLI(&res, args...)
	return res.Items
}

const spamBody = "From: app@app.test\r\nTo: rcpt@example.org\r\nSubject: offer\r\n\r\n" + rspamd.GTUBE + "\r\n"
const cleanBody = "From: app@app.test\r\nTo: rcpt@example.org\r\nSubject: your receipt\r\n\r\nThank you for your order.\r\n"

// TestRspamdScanning: GTUBE is refused over SMTP (550 5.7.1) and HTTP
// (422 content_rejected), with rspamd's symbols in a scan_rejected event
// and not in the reply; a clean message passes with a scanned event; an
// "add header" verdict tags the message and adds X-Spam headers; a
// bulk request is scanned item by item; a tenant's policy "hold" holds
// spam instead; with rspamd stopped, fail open
// accepts (scan_failed on the message) and fail closed answers 451 / 503.
func TestRspamdScanning(t *testing.T) {
	rs := startRspamd(t)
	conf := func(fail string) string {
		return fmt.Sprintf("[scan]\nrspamd_url = %q\ntimeout = \"10s\"\nfail = %q\n", rs.URL, fail)
	}
	in := Start(t, Options{Config: conf("open")})

	_, err := in.TrySend("app@app.test", []string{"rcpt@example.org"}, spamBody)
	if err == nil || !strings.Contains(err.Error(), "550 5.7.1 message refused as spam") || strings.Contains(err.Error(), "GTUBE") {
		t.Fatalf("GTUBE over SMTP: %v", err)
	}
	var apiErr struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	st := in.call(t, in.Creds.APIKey, "POST", "/v1/messages", map[string]any{"from": "app@app.test", "to": []string{"rcpt@example.org"},
		"subject": "offer", "text": rspamd.GTUBE + "\n"}, nil, &apiErr)
	if st != http.StatusUnprocessableEntity || apiErr.Error.Code != "content_rejected" || strings.Contains(apiErr.Error.Message, "GTUBE") {
		t.Fatalf("GTUBE over HTTP: %d %+v", st, apiErr)
	}
	rej := in.events("scan_rejected", "")
	if len(rej) != 2 {
		t.Fatalf("%d scan_rejected events, want 2: %+v", len(rej), rej)
	}
	for _, e := range rej {
		var d struct {
			Action  string   `json:"action"`
			Symbols []string `json:"symbols"`
		}
		if json.Unmarshal([]byte(e.Detail), &d) != nil || d.Action != "reject" || !strings.Contains(strings.Join(d.Symbols, ","), "GTUBE") {
			t.Fatalf("scan_rejected detail %s", e.Detail)
		}
	}

	id := in.Send("app@app.test", []string{"rcpt@example.org"}, cleanBody)
	sc := in.events("scanned", id)
	if len(sc) != 1 || !strings.Contains(sc[0].Detail, `"action":"no action"`) || !strings.Contains(sc[0].Detail, `"score"`) {
		t.Fatalf("scanned event of a clean message: %+v", sc)
	}
	if d := in.Show(id); len(d.Deliveries) != 1 || d.Deliveries[0].State == store.Held {
		t.Fatalf("clean message: %+v", states(d))
	}

	// "add header": accepted, with X-Spam headers and the tag spam.
	id = in.Send("app@app.test", []string{"rcpt@example.org"}, strings.Replace(cleanBody, "Thank you for your order.", rspamd.GTUBEAddHeader, 1))
	if d := in.Show(id); !strings.Contains(d.Headers, "X-Spam: yes\r\n") || !strings.Contains(d.Headers, "X-Spam-Score: ") ||
		strings.Join(d.Message.Tags, ",") != "spam" || d.Deliveries[0].State == store.Held {
		t.Fatalf("add header: tags %v, state %v, headers %q", d.Message.Tags, d.Deliveries[0].State, d.Headers)
	}

	// Bulk: the items are scanned (concurrently); the spam one fails alone.
	var bulk struct {
		Accepted, Failed int
		Items            []struct {
			ID    string
			Error *struct{ Code string }
		}
	}
	items := []map[string]any{}
	for i := range 6 {
		text := fmt.Sprintf("Receipt %d\n", i)
		if i == 3 {
			text = rspamd.GTUBE + "\n"
		}
		items = append(items, map[string]any{"from": "app@app.test", "to": []string{"rcpt@example.org"}, "subject": "r", "text": text})
	}
	if st := in.call(t, in.Creds.APIKey, "POST", "/v1/messages/bulk", map[string]any{"messages": items}, nil, &bulk); st != 200 ||
		bulk.Accepted != 5 || bulk.Failed != 1 || bulk.Items[3].Error == nil || bulk.Items[3].Error.Code != "content_rejected" {
		t.Fatalf("bulk: %d %+v", st, bulk)
	}
	for i, it := range bulk.Items {
		if i != 3 && len(in.events("scanned", it.ID)) != 1 {
			t.Fatalf("bulk item %d (%s) has no scanned event", i, it.ID)
		}
	}

	// The tenant's policy holds spam instead: accepted, held, tagged.
	in.Stop()
	in.opts.Config = conf("open") + "[[scan.tenant]]\ntenant = \"default\"\naction_reject = \"hold\"\n"
	in.Restart()
	id = in.Send("app@app.test", []string{"rcpt@example.org"}, spamBody)
	if d := in.Show(id); len(d.Deliveries) != 1 || d.Deliveries[0].State != store.Held || !strings.Contains(strings.Join(d.Message.Tags, ","), "spam") {
		t.Fatalf("spam under the hold policy: %+v, tags %v", states(d), d.Message.Tags)
	}
	if sc := in.events("scanned", id); len(sc) != 1 || !strings.Contains(sc[0].Detail, `"policy":"hold"`) || !strings.Contains(sc[0].Detail, "GTUBE") {
		t.Fatalf("scanned event under the hold policy: %+v", sc)
	}

	// rspamd stops: fail open accepts, unscanned, and says so.
	rs.Stop()
	id = in.Send("app@app.test", []string{"rcpt@example.org"}, cleanBody)
	if f := in.events("scan_failed", id); len(f) != 1 || !strings.Contains(f[0].Detail, "fail_open") {
		t.Fatalf("fail open: scan_failed events %+v", f)
	}

	// Fail closed: 451 over SMTP, 503 over HTTP, nothing stored.
	in.Stop()
	in.opts.Config = conf("closed")
	in.Restart()
	_, err = in.TrySend("app@app.test", []string{"rcpt@example.org"}, cleanBody)
	if err == nil || !strings.Contains(err.Error(), "451 4.7.1") {
		t.Fatalf("fail closed over SMTP: %v", err)
	}
	st = in.call(t, in.Creds.APIKey, "POST", "/v1/messages", apiSend("rcpt@example.org"), nil, &apiErr)
	if st != http.StatusServiceUnavailable || apiErr.Error.Code != "scan_unavailable" {
		t.Fatalf("fail closed over HTTP: %d %+v", st, apiErr)
	}
	if f := in.events("scan_failed", ""); len(f) != 3 {
		t.Fatalf("%d scan_failed events, want 3 (one open, two closed)", len(f))
	}
}

// sendEvery sends n messages as user over one connection, one every
// interval, and returns their queue IDs. It may run in a goroutine: it
// reports failures with t.Error and stops.
func sendEvery(t *testing.T, in *Instance, user, pass string, n int, every time.Duration) []string {
	c, err := Dial(in.SMTP)
	if err != nil {
		t.Error(err)
		return nil
	}
	defer c.Close()
	if _, err := c.Cmd(250, "EHLO client.test"); err != nil {
		t.Error(err)
		return nil
	}
	if _, err := c.Cmd(235, "AUTH PLAIN "+plain(user, pass)); err != nil {
		t.Error(err)
		return nil
	}
	var ids []string
	next := time.Now()
	for i := range n {
		time.Sleep(time.Until(next))
		next = next.Add(every)
		id, err := c.Transaction("app@app.test", []string{fmt.Sprintf("r%d@example.org", i)}, cleanBody)
		if err != nil {
			t.Errorf("%s message %d: %v", user, i, err)
			return ids
		}
		ids = append(ids, id)
	}
	return ids
}

// heldCount counts the held deliveries of the messages ids.
func heldCount(in *Instance, ids []string) int {
	var list struct {
		Items []store.Delivery `json:"items"`
	}
	in.CLI(&list, "queue", "list", "--state", "held")
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	n := 0
	for _, d := range list.Items {
		if want[d.MessageID] {
			n++
		}
	}
	return n
}

// TestSenderAnomalyHeld runs on a compressed clock (an hour is 4s): two
// users send at a steady rate (one a second); then one sends 20 times as
// fast. Its new
// mail is held within the window, with an alert_fired event carrying the
// figures; the other user's mail is not; the operator's release (with
// --release-held) queues the held mail and new mail is queued again.
func TestSenderAnomalyHeld(t *testing.T) {
	in := Start(t, Options{Config: "[abuse]\nhour = \"4s\"\nwindow = \"2s\"\nfactor = 5.0\nmin_volume = 10\nbaseline_hours = 168\n"})
	alice, alicePw := in.Creds.SMTPUsername, in.Creds.SMTPPassword
	var bob struct{ Username, Password string }
	in.CLI(&bob, "user", "add", "bob")

	// Steady: one message a second each (4 per compressed hour), for
	// three compressed hours.
	done := make(chan []string)
	go func() { done <- sendEvery(t, in, bob.Username, bob.Password, 12, time.Second) }()
	steady := sendEvery(t, in, alice, alicePw, 12, time.Second)
	bobSteady := <-done
	if n := heldCount(in, append(steady, bobSteady...)); n != 0 {
		t.Fatalf("%d messages held at the steady rate", n)
	}

	// Alice: 20 a second over four connections, 20 times the rate; bob
	// goes on as before. (The burst must fall mostly within one
	// compressed hour: once a whole hour of it is history, it is the
	// baseline's p95 of so few hours.)
	// Compressed hours are aligned on the clock (Unix time / 4 s): start
	// the burst just after a boundary, or a burst that crosses one makes
	// its first part a complete hour of the baseline and is flagged late
	// or not at all (seen: 11 of 40 held, in about one run of four).
	time.Sleep(time.Until(time.Now().Truncate(4 * time.Second).Add(4*time.Second + 50*time.Millisecond)))
	go func() { done <- sendEvery(t, in, bob.Username, bob.Password, 2, time.Second) }()
	parts := make(chan []string, 4)
	for range 4 {
		go func() { parts <- sendEvery(t, in, alice, alicePw, 10, 200*time.Millisecond) }()
	}
	var burst []string
	for range 4 {
		burst = append(burst, <-parts...)
	}
	bobLater := <-done
	held := heldCount(in, burst)
	// Flagged within the window: the jump needs min_volume (10) messages
	// in the window, steady ones included, above 5 x the baseline.
	if held < 20 || held == 40 {
		t.Fatalf("%d of the 40 burst messages held; want all but the first few", held)
	}
	if n := heldCount(in, bobLater); n != 0 {
		t.Fatalf("bob's steady mail held: %d", n)
	}
	fired := in.events(abuse.EventAlertFired, "")
	if len(fired) != 1 || !strings.Contains(fired[0].Detail, `"principal":"smtp:`+alice+`"`) || !strings.Contains(fired[0].Detail, `"rule":"rate_jump"`) ||
		!strings.Contains(fired[0].Detail, `"baseline_p95_per_hour"`) {
		t.Fatalf("alert_fired events: %+v", fired)
	}
	more := sendEvery(t, in, alice, alicePw, 1, 0)
	if heldCount(in, more) != 1 {
		t.Fatal("alice's new mail is not held while flagged")
	}

	var rel abuse.ReleaseResponse
	in.CLI(&rel, "user", "release", alice, "--release-held")
	if !rel.Released || rel.HeldReleased != held+1 {
		t.Fatalf("release: %+v (held %d+1)", rel, held)
	}
	if n := heldCount(in, append(burst, more...)); n != 0 {
		t.Fatalf("%d still held after release --release-held", n)
	}
	if len(in.events(abuse.EventAlertResolved, "")) != 1 {
		t.Fatal("no alert_resolved event")
	}
	after := sendEvery(t, in, alice, alicePw, 1, 0)
	if heldCount(in, after) != 0 {
		t.Fatal("alice's mail held after release")
	}
}

// TestQuotaExceeded: with an hour of 4s, API keys at the config's 3
// messages per hour and the SMTP user at 2 (set with the CLI, kept over a
// restart), the message over quota gets 452 4.7.1 over SMTP (429 with
// Retry-After over HTTP) and is not queued; the next hour it goes through.
func TestQuotaExceeded(t *testing.T) {
	in := Start(t, Options{Config: "[abuse]\nhour = \"4s\"\nuser_quota_hour = 3\nfactor = 0.0\n"})
	var q abuse.QuotaResponse
	in.CLI(&q, "user", "set", in.Creds.SMTPUsername, "--quota-hour", "2")
	if q.Hour != 2 || q.Day != 0 {
		t.Fatalf("user set: %+v", q)
	}
	in.Stop()
	in.Restart()
	// Start just after an hour boundary (hours are aligned to the Unix
	// epoch, as posthorn counts them), so the sends share one hour.
	hour := 4 * time.Second
	time.Sleep(time.Until(time.Now().Truncate(hour).Add(hour + 100*time.Millisecond)))
	for i := range 3 {
		if i < 2 {
			in.Send("app@app.test", []string{"rcpt@example.org"}, cleanBody)
		}
		if st := in.call(t, in.Creds.APIKey, "POST", "/v1/messages", apiSend("rcpt@example.org"), nil, nil); st != http.StatusAccepted {
			t.Fatalf("API message %d: %d", i, st)
		}
	}
	_, err := in.TrySend("app@app.test", []string{"over@example.org"}, cleanBody)
	if err == nil || !strings.Contains(err.Error(), "452 4.7.1") {
		t.Fatalf("over quota over SMTP: %v", err)
	}
	req, _ := json.Marshal(apiSend("over@example.org"))
	st, hdr, body := in.post(t, "/v1/messages", req, false)
	ra, _ := strconv.Atoi(hdr.Get("Retry-After"))
	if st != http.StatusTooManyRequests || !strings.Contains(string(body), "quota_exceeded") || ra < 1 || ra > 4 {
		t.Fatalf("over quota over HTTP: %d %s, Retry-After %q", st, body, hdr.Get("Retry-After"))
	}
	var list struct {
		Items []store.Delivery `json:"items"`
	}
	in.CLI(&list, "queue", "list", "--state", "all")
	for _, d := range list.Items {
		if d.Recipient == "over@example.org" {
			t.Fatalf("the message over quota was queued: %+v", d)
		}
	}
	time.Sleep(time.Duration(ra) * time.Second)
	in.Send("app@app.test", []string{"next@example.org"}, cleanBody)
	if st := in.call(t, in.Creds.APIKey, "POST", "/v1/messages", apiSend("next@example.org"), nil, nil); st != http.StatusAccepted {
		t.Fatalf("API the next hour: %d", st)
	}
}

// TestAttachmentPolicy: an .exe attachment and an MZ file with an
// innocent name are refused (SMTP 550 5.7.1, HTTP 422 attachment_refused);
// a PDF passes.
func TestAttachmentPolicy(t *testing.T) {
	in := Start(t, Options{})
	exe := "From: app@app.test\r\nTo: rcpt@example.org\r\nSubject: invoice\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"invoice.exe\"\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\n" + base64.StdEncoding.EncodeToString([]byte("not really a program")) + "\r\n--b--\r\n"
	_, err := in.TrySend("app@app.test", []string{"rcpt@example.org"}, exe)
	if err == nil || !strings.Contains(err.Error(), "550 5.7.1 attachment refused") || !strings.Contains(err.Error(), "invoice.exe") {
		t.Fatalf(".exe over SMTP: %v", err)
	}
	mz := append([]byte("MZ\x90\x00\x03\x00\x00\x00\x04\x00"), make([]byte, 200)...)
	msg := apiSend("rcpt@example.org")
	msg["attachments"] = []map[string]any{{"filename": "report.pdf", "content_type": "application/pdf", "content": mz}}
	var apiErr struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if st := in.call(t, in.Creds.APIKey, "POST", "/v1/messages", msg, nil, &apiErr); st != http.StatusUnprocessableEntity ||
		apiErr.Error.Code != "attachment_refused" || !strings.Contains(apiErr.Error.Message, "MZ") {
		t.Fatalf("MZ named report.pdf over HTTP: %d %+v", st, apiErr)
	}
	msg["attachments"] = []map[string]any{{"filename": "report.pdf", "content_type": "application/pdf", "content": []byte("%PDF-1.4\n")}}
	if st := in.call(t, in.Creds.APIKey, "POST", "/v1/messages", msg, nil, nil); st != http.StatusAccepted {
		t.Fatalf("a PDF: %d", st)
	}
}
