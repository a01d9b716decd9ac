package e2e

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/api"
	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/testkit"
)

// get makes a GET request with key and returns the status and raw body.
func (in *Instance) get(t *testing.T, key, path string, hdr map[string]string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+in.HTTP+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// sseEvents follows GET path as server-sent events and delivers the
// events it receives on the returned channel until the test ends.
func sseEvents(t *testing.T, in *Instance, key, path, lastID string) <-chan store.Event {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+in.HTTP+path, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("stream: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	out := make(chan store.Event, 100)
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		var id string
		for sc.Scan() {
			line := sc.Text()
			if v, ok := strings.CutPrefix(line, "id: "); ok {
				id = v
			}
			if v, ok := strings.CutPrefix(line, "data: "); ok {
				var e store.Event
				if json.Unmarshal([]byte(v), &e) != nil || fmt.Sprint(e.ID) != id {
					return
				}
				select {
				case out <- e:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}

// waitEvent reads c until an event matching ok arrives.
func waitEvent(t *testing.T, c <-chan store.Event, what string, ok func(store.Event) bool) store.Event {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case e := <-c:
			if ok(e) {
				return e
			}
		case <-timeout:
			t.Fatalf("no %s event arrived", what)
		}
	}
}

// TestEventsAPI: the activity log's filters, cursor pages, exports, live
// stream (SSE) and the CLI's listing and --follow, on real deliveries.
func TestEventsAPI(t *testing.T) {
	w := newWorld(t, Options{}, "127.0.0.2")
	w.domain("ev1.test", "127.0.0.2")
	w.domain("ev2.test", "127.0.0.2")
	w.mx["127.0.0.2"].SetScript(testkit.Script{Rcpt: func(rcpt string) testkit.Reply {
		if strings.HasSuffix(rcpt, "@ev2.test") {
			return testkit.Reply{Code: 550, Text: "5.1.1 no such user"}
		}
		return testkit.Reply{Code: 250, Text: "2.1.5 ok"}
	}})
	in, key := w.in, w.in.Creds.APIKey
	var ids []string
	for i := 0; i < 5; i++ {
		body := apiSend(fmt.Sprintf("u%d@ev1.test", i), fmt.Sprintf("gone%d@ev2.test", i)) // each bounces once
		if i%2 == 0 {
			body["tags"] = []string{"even"}
		}
		var res api.SendResponse
		if code := in.call(t, key, "POST", "/v1/messages", body, nil, &res); code != 200 && code != 202 {
			t.Fatalf("send: %d", code)
		}
		ids = append(ids, res.ID)
	}
	for _, id := range ids {
		in.WaitFinal(id, 20*time.Second)
	}
	// 5 messages x 2 recipients x (queued + delivered/bounced) = 20 events.
	page := func(q string) api.EventPage {
		t.Helper()
		var p api.EventPage
		if code := in.call(t, key, "GET", "/v1/events"+q, nil, nil, &p); code != 200 {
			t.Fatalf("GET /v1/events%s: %d", q, code)
		}
		return p
	}
	t.Run("cursor pages, newest first", func(t *testing.T) {
		var all []store.Event
		p := page("?limit=7")
		for pages := 1; ; pages++ {
			all = append(all, p.Items...)
			if p.NextCursor == "" {
				if pages != 3 {
					t.Fatalf("%d pages of 7 for 20 events", pages)
				}
				break
			}
			p = page("?limit=7&cursor=" + p.NextCursor)
		}
		if len(all) != 20 {
			t.Fatalf("%d events over the pages, want 20", len(all))
		}
		for i := 1; i < len(all); i++ {
			if all[i].ID >= all[i-1].ID {
				t.Fatalf("not newest first at %d: %d after %d", i, all[i].ID, all[i-1].ID)
			}
		}
		asc := page("?order=asc&limit=1000")
		if len(asc.Items) != 20 || asc.Items[0].ID != all[19].ID || asc.NextCursor != "" {
			t.Fatalf("order=asc: %d items, first %d (want %d)", len(asc.Items), asc.Items[0].ID, all[19].ID)
		}
	})
	t.Run("filters", func(t *testing.T) {
		for q, want := range map[string]int{
			"?type=delivered": 5, "?type=bounced&domain=ev2.test": 5, "?domain=ev1.test": 10, "?recipient=u1@ev1.test": 2,
			"?tag=even": 12, "?tag=even&type=bounced": 3, "?message=" + ids[0]: 4, "?since=1h": 20, "?until=2000-01-01": 0,
			"?destination=ev2.test": 5,
		} {
			if p := page(q + "&limit=100"); len(p.Items) != want {
				t.Errorf("%s: %d events, want %d", q, len(p.Items), want)
			}
		}
		var e api.APIError
		if code := in.call(t, key, "GET", "/v1/events?type=nonsense", nil, nil, &e); code != 400 ||
			!strings.Contains(e.Error.Message, "delivered") || !strings.Contains(e.Error.Message, "soft_bounced") {
			t.Fatalf("type=nonsense: %d %+v (want 400 listing the valid types)", code, e)
		}
	})
	t.Run("tenant scoped", func(t *testing.T) {
		in.CLI(nil, "tenant", "add", "other")
		var k api.KeyResponse
		in.CLI(&k, "apikey", "create", "--tenant", "other", "--scope", "read")
		var p api.EventPage
		if code := in.call(t, k.APIKey, "GET", "/v1/events", nil, nil, &p); code != 200 || len(p.Items) != 0 {
			t.Fatalf("other tenant sees %d events (%d)", len(p.Items), code)
		}
	})
	t.Run("export", func(t *testing.T) {
		code, b := in.get(t, key, "/v1/events?domain=ev1.test", map[string]string{"Accept": "application/x-ndjson"})
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if code != 200 || len(lines) != 10 {
			t.Fatalf("ndjson: %d, %d lines", code, len(lines))
		}
		var e store.Event
		if err := json.Unmarshal([]byte(lines[0]), &e); err != nil || e.Domain != "ev1.test" {
			t.Fatalf("ndjson line %q: %v", lines[0], err)
		}
		code, b = in.get(t, key, "/v1/events?format=csv&order=asc", nil)
		rows, err := csv.NewReader(strings.NewReader(string(b))).ReadAll()
		if code != 200 || err != nil || len(rows) != 21 || rows[0][2] != "type" || rows[1][2] != "queued" {
			t.Fatalf("csv: %d %v, %d rows, first %v", code, err, len(rows), rows[:min(2, len(rows))])
		}
	})
	t.Run("CLI", func(t *testing.T) {
		var p api.EventPage
		in.CLI(&p, "events", "--limit", "5")
		if len(p.Items) != 5 || p.NextCursor == "" || p.Total != 20 || p.Items[0].ID < p.Items[4].ID {
			t.Fatalf("events --limit 5: %d items, cursor %q, total %d", len(p.Items), p.NextCursor, p.Total)
		}
		out, err := exec.Command(binary, "events", "--limit", "5", "--data-dir", in.Dir).Output()
		if err != nil || !strings.Contains(string(out), "5 of 20 shown") || !strings.Contains(string(out), "--cursor "+p.NextCursor) {
			t.Fatalf("events text: %v\n%s", err, out)
		}
		err = in.TryCLI(nil, "events", "--type", "nonsense")
		if err == nil || !strings.Contains(err.Error(), "valid types") || !strings.Contains(err.Error(), "throttle_changed") {
			t.Fatalf("--type nonsense: %v", err)
		}
	})
	t.Run("stream", func(t *testing.T) {
		live := sseEvents(t, in, key, "/v1/events/stream", "")
		// Wait until the stream is following: a first event proves it.
		var res api.SendResponse
		in.call(t, key, "POST", "/v1/messages", apiSend("live@ev1.test"), nil, &res)
		q := waitEvent(t, live, "queued", func(e store.Event) bool { return e.MessageID == res.ID && e.Type == store.EventQueued })
		waitEvent(t, live, "delivered", func(e store.Event) bool { return e.MessageID == res.ID && e.Type == store.EventDelivered })
		// Resuming after the queued event replays the delivery from the store.
		again := sseEvents(t, in, key, "/v1/events/stream", fmt.Sprint(q.ID))
		waitEvent(t, again, "replayed delivered", func(e store.Event) bool { return e.MessageID == res.ID && e.Type == store.EventDelivered })
		// Another tenant's stream sees none of it.
		in.CLI(nil, "tenant", "add", "watcher")
		var k api.KeyResponse
		in.CLI(&k, "apikey", "create", "--tenant", "watcher", "--scope", "read")
		other := sseEvents(t, in, k.APIKey, "/v1/events/stream", fmt.Sprint(q.ID-1))
		select {
		case e := <-other:
			t.Fatalf("other tenant's stream got %+v", e)
		case <-time.After(300 * time.Millisecond):
		}
	})
	t.Run("follow", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		cmd := exec.CommandContext(ctx, binary, "events", "--follow", "--json", "--type", "delivered", "--data-dir", in.Dir)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { cancel(); cmd.Wait() }()
		lines := make(chan store.Event, 100)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				var e store.Event
				if json.Unmarshal(sc.Bytes(), &e) == nil {
					lines <- e
				}
			}
		}()
		var res api.SendResponse
		in.call(t, key, "POST", "/v1/messages", apiSend("follow@ev1.test"), nil, &res)
		e := waitEvent(t, lines, "followed delivered", func(e store.Event) bool { return e.MessageID == res.ID })
		if e.Type != store.EventDelivered || e.Recipient != "follow@ev1.test" {
			t.Fatalf("followed %+v", e)
		}
	})
}

// TestDeliverabilityReport: the report's numbers match what happened to
// a scenario's recipients, and the events of each kind.
func TestDeliverabilityReport(t *testing.T) {
	inPort := freePort(t)
	inbound := fmt.Sprintf("127.0.0.1:%d", inPort)
	w := newWorld(t, Options{RetryMin: 200 * time.Millisecond, RetryMax: 400 * time.Millisecond, Lifetime: 2 * time.Second,
		Extra: []string{"--bounce-domain", "bounces.test", "--inbound-listen", inbound}}, "127.0.0.2")
	w.domain("rep.test", "127.0.0.2")
	w.domain("dead.test", "127.0.0.1") // nothing listens: connection refused until the lifetime ends
	mx := w.mx["127.0.0.2"]
	mx.SetScript(testkit.Script{RcptReplies: map[string]testkit.Reply{
		"gone@rep.test": {Code: 550, Text: "5.1.1 no such user"},
		"full@rep.test": {Code: 452, Text: "4.2.2 mailbox full"},
	}})
	in, key := w.in, w.in.Creds.APIKey
	send := func(to ...string) string {
		var res api.SendResponse
		body := apiSend(to...)
		body["tags"] = []string{"launch"}
		in.call(t, key, "POST", "/v1/messages", body, nil, &res)
		return res.ID
	}
	id := send("ok@rep.test", "fbl@rep.test", "gone@rep.test", "full@rep.test", "x@dead.test")
	in.WaitFinal(id, 30*time.Second)
	// gone@ is now suppressed: the next message to it is suppressed at acceptance.
	in.WaitFinal(send("gone@rep.test"), 10*time.Second)
	// A complaint (ARF) about fbl@ through its return path.
	var rp string
	for _, m := range mx.Messages() {
		if len(m.To) == 1 && m.To[0] == "fbl@rep.test" {
			rp = m.From
		}
	}
	mailInbound(t, inbound, "fbl@bounces.test", arfFor(rp, "fbl@rep.test"))
	want := store.Counters{Accepted: 6, Delivered: 2, Bounced: 1, SoftBounced: 1, DeadLettered: 1, Suppressed: 1, Complaints: 1}
	var rep api.Report
	deadline := time.Now().Add(10 * time.Second)
	for {
		in.call(t, key, "GET", "/v1/reports/deliverability?group_by=domain", nil, nil, &rep)
		got := rep.Total.Counters
		got.Deferred = 0 // how often full@ and dead.test were retried depends on timing
		if got == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("report total %+v, want %+v", rep.Total.Counters, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The counters match the events.
	count := func(typ string) int64 {
		var p api.EventPage
		in.call(t, key, "GET", "/v1/events?limit=1000&type="+typ, nil, nil, &p)
		return int64(len(p.Items))
	}
	c := rep.Total.Counters
	for typ, n := range map[string]int64{store.EventDelivered: c.Delivered, store.EventDeferred: c.Deferred, store.EventBounced: c.Bounced,
		store.EventSoftBounce: c.SoftBounced, store.EventDeadLetter: c.DeadLettered, store.EventSuppressed: c.Suppressed,
		store.EventComplaint: c.Complaints, store.EventQueued: c.Accepted - 1} {
		if got := count(typ); got != n {
			t.Errorf("%s: %d events, report says %d", typ, got, n)
		}
	}
	if c.Deferred < 2 {
		t.Errorf("deferred %d, want retries of full@ and dead.test", c.Deferred)
	}
	rows := map[string]api.ReportLine{}
	for _, r := range rep.Rows {
		rows[r.Key] = r
	}
	if rows["dead.test"].Accepted != 1 || rows["dead.test"].DeadLettered != 1 || rows["rep.test"].Accepted != 5 {
		t.Errorf("by domain: %+v", rep.Rows)
	}
	if r := rows["rep.test"].Rates; r.Delivered != 0.4 || r.Complaints != 0.5 {
		t.Errorf("rep.test rates %+v, want delivered 0.4 (2 of 5), complaints 0.5 (1 of 2 delivered)", r)
	}
	in.call(t, key, "GET", "/v1/reports/deliverability?group_by=tag", nil, nil, &rep)
	if len(rep.Rows) != 1 || rep.Rows[0].Key != "launch" || rep.Rows[0].Accepted != 6 {
		t.Errorf("by tag: %+v", rep.Rows)
	}
	code, b := in.get(t, key, "/v1/reports/deliverability?group_by=day&format=csv", nil)
	if code != 200 || !strings.HasPrefix(string(b), "key,accepted,delivered") || !strings.Contains(string(b), "\ntotal,6,2,") {
		t.Errorf("csv: %d %s", code, b)
	}
	out, err := exec.Command(binary, "report", "--group-by", "destination", "--data-dir", in.Dir).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "rep.test") || !strings.Contains(string(out), "total") {
		t.Errorf("posthorn report: %v\n%s", err, out)
	}
}

// TestRetention: with short retentions, old events go and finished
// messages lose their bodies (the rows stay and say so); reports stay.
func TestRetention(t *testing.T) {
	w := newWorld(t, Options{Config: "events_retention = \"1s\"\nbody_retention = \"1s\"\n"}, "127.0.0.2")
	w.domain("ret.test", "127.0.0.2")
	in, key := w.in, w.in.Creds.APIKey
	var res api.SendResponse
	in.call(t, key, "POST", "/v1/messages", apiSend("a@ret.test"), nil, &res)
	in.WaitFinal(res.ID, 20*time.Second)
	deadline := time.Now().Add(20 * time.Second)
	for {
		var p api.EventPage
		in.call(t, key, "GET", "/v1/events?message="+res.ID, nil, nil, &p)
		var m api.MessageView
		in.call(t, key, "GET", "/v1/messages/"+res.ID, nil, nil, &m)
		if len(p.Items) == 0 && !m.BodyPrunedAt.IsZero() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not pruned: %d events left, body pruned at %v", len(p.Items), m.BodyPrunedAt)
		}
		time.Sleep(100 * time.Millisecond)
	}
	d := in.Show(res.ID)
	if d.Message.BodyPrunedAt.IsZero() || d.Headers != "" || len(d.Deliveries) != 1 {
		t.Fatalf("queue show after pruning: %+v", d)
	}
	out, _ := exec.Command(binary, "queue", "show", res.ID, "--data-dir", in.Dir).Output()
	if !strings.Contains(string(out), "body pruned") {
		t.Fatalf("queue show does not say the body was pruned:\n%s", out)
	}
	var rep api.Report
	in.call(t, key, "GET", "/v1/reports/deliverability", nil, nil, &rep)
	if rep.Total.Delivered != 1 {
		t.Fatalf("report after pruning: %+v", rep.Total)
	}
}
