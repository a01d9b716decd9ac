package e2e

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/api"
	"github.com/posthorn/posthorn/internal/queue/ops"
	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/testkit"
)

// TestQueueWhy asks why for deliveries held back in each way an operator
// meets: a destination that answered 421 4.7.28 (paused until the end of
// its cool-down, for the deferred delivery and for one that arrived
// since), a deferred delivery (backoff after its reply), a held one (the
// hold event), a send_at one (scheduled); then the public API's answer
// (tenant-scoped), queue show's text, the queue summary's counts, and the
// destination's paused gauge.
func TestQueueWhy(t *testing.T) {
	cfg := "[delivery]\ncooldown = \"1h\"\n"
	w := newWorld(t, Options{Config: cfg, RetryMin: time.Hour, RetryMax: time.Hour, Lifetime: 3 * time.Hour}, "127.0.0.2", "127.0.0.3")
	w.domain("pause.test", "127.0.0.2")
	w.domain("defer.test", "127.0.0.3")
	w.mx["127.0.0.2"].SetScript(testkit.Script{Greeting: testkit.Reply{Code: 421, Text: "4.7.28 unusual rate of unsolicited mail", Close: true}})
	w.mx["127.0.0.3"].SetScript(testkit.Script{Rcpt: func(string) testkit.Reply { return testkit.Reply{Code: 451, Text: "4.3.0 try again later"} }})
	in := w.in
	why := func(id string) ops.WhyItem {
		t.Helper()
		var res ops.WhyResponse
		in.CLI(&res, "queue", "why", id)
		if len(res.Recipients) != 1 || res.MessageID != id {
			t.Fatalf("why %s: %+v", id, res)
		}
		return res.Recipients[0]
	}

	paused := in.Send("sender@app.test", []string{"x@pause.test"}, msgBody("paused"))
	waitDeliveryState(t, in, paused, store.Deferred)
	start := time.Now()
	it := why(paused)
	if it.Reason != ops.WhyPaused || !strings.Contains(it.PauseReply, "4.7.28") || !strings.Contains(it.Detail, "4.7.28") ||
		it.PausedUntil.Before(start.Add(50*time.Minute)) || it.PausedUntil.After(start.Add(61*time.Minute)) {
		t.Fatalf("why of the rate-limited delivery: %+v", it)
	}
	// A new delivery to the paused destination waits in its ready list.
	behind := in.Send("sender@app.test", []string{"y@pause.test"}, msgBody("behind the pause"))
	deadline := time.Now().Add(10 * time.Second)
	for it = why(behind); it.Reason != ops.WhyPaused && time.Now().Before(deadline); it = why(behind) {
		time.Sleep(50 * time.Millisecond)
	}
	if it.Reason != ops.WhyPaused || it.State != store.Queued || !strings.Contains(it.PauseReply, "421 4.7.28") ||
		it.PausedUntil.Before(start.Add(50*time.Minute)) || !strings.Contains(it.Detail, "paused until") {
		t.Fatalf("why of the delivery queued behind the pause: %+v", it)
	}

	deferred := in.Send("sender@app.test", []string{"z@defer.test"}, msgBody("deferred"))
	waitDeliveryState(t, in, deferred, store.Deferred)
	it = why(deferred)
	d := in.Show(deferred).Deliveries[0]
	if it.Reason != ops.WhyBackoff || !it.NextAttemptAt.Equal(d.NextAttemptAt) || it.NextAttemptAt.Before(time.Now().Add(40*time.Minute)) ||
		!strings.Contains(it.Detail, "451 4.3.0 try again later") || it.Attempts != 1 {
		t.Fatalf("why of the deferred delivery (store: %+v): %+v", d, it)
	}

	held := in.Send("sender@app.test", []string{"h@defer.test"}, msgBody("held"))
	waitDeliveryState(t, in, held, store.Deferred)
	var op ops.OpResult
	in.CLI(&op, "queue", "hold", held)
	it = why(held)
	if it.Reason != ops.WhyHeld || it.HeldAt.IsZero() || time.Since(it.HeldAt) > time.Minute || it.HeldBy == "" {
		t.Fatalf("why of the held delivery: %+v", it)
	}

	sendAt := time.Now().Add(time.Hour).Truncate(time.Second)
	var res api.SendResponse
	if code := in.call(t, in.Creds.APIKey, "POST", "/v1/messages", map[string]any{"from": "app@app.test", "to": []string{"s@defer.test"},
		"text": "later", "send_at": sendAt}, nil, &res); code != 202 {
		t.Fatalf("send_at: %d", code)
	}
	scheduled := res.ID
	it = why(scheduled)
	if it.Reason != ops.WhyScheduled || !it.NextAttemptAt.Equal(sendAt) {
		t.Fatalf("why of the scheduled delivery (send_at %s): %+v", sendAt, it)
	}

	// The public API answers the same, for the key's tenant only.
	var pub ops.WhyResponse
	if code := in.call(t, in.Creds.APIKey, "GET", "/v1/messages/"+deferred+"/why", nil, nil, &pub); code != 200 ||
		len(pub.Recipients) != 1 || pub.Recipients[0].Reason != ops.WhyBackoff {
		t.Fatalf("GET /v1/messages/{id}/why: %d %+v", code, pub)
	}
	in.CLI(nil, "tenant", "add", "other")
	var k api.KeyResponse
	in.CLI(&k, "apikey", "create", "--tenant", "other", "--scope", "read")
	if code := in.call(t, k.APIKey, "GET", "/v1/messages/"+deferred+"/why", nil, nil, nil); code != 404 {
		t.Fatalf("another tenant's key asks why: %d", code)
	}

	// queue show prints the reason beside each pending delivery.
	out, err := exec.Command(binary, "queue", "show", deferred, "--data-dir", in.Dir).Output()
	if err != nil || !strings.Contains(string(out), "why: next attempt at") {
		t.Fatalf("queue show: %v\n%s", err, out)
	}

	// The summary counts every pending delivery by destination and age.
	var sum ops.QueueSummary
	in.CLI(&sum, "queue", "summary")
	rows := map[string]ops.SummaryRow{}
	for _, r := range sum.Rows {
		rows[r.Destination] = r
	}
	if sum.Total.Total != 5 || sum.Total.Counts[0] != 5 || len(sum.Columns) != 7 || sum.Columns[0] != "0-5m" || sum.Columns[6] != "160m+" ||
		rows["pause.test"].Total != 2 || rows["defer.test"].Total != 3 || rows["defer.test"].Counts[0] != 3 || len(rows) != 2 {
		t.Fatalf("queue summary: %+v", sum)
	}
	var list api.QueueList
	in.CLI(&list, "queue", "list")
	if list.Count != sum.Total.Total {
		t.Fatalf("summary total %d, queue list %d", sum.Total.Total, list.Count)
	}
	out, err = exec.Command(binary, "queue", "summary", "--data-dir", in.Dir).Output()
	if err != nil || !strings.Contains(string(out), "defer.test") || !strings.Contains(string(out), "160m+") {
		t.Fatalf("queue summary text: %v\n%s", err, out)
	}

	// The metrics say the same destination is paused.
	if p := series(Scrape(t, in.HTTP), "posthorn_destination_paused")["pause.test"]; p != 1 {
		t.Fatalf("posthorn_destination_paused{destination=\"pause.test\"} = %v", p)
	}
}
