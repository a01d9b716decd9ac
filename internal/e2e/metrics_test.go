package e2e

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/posthorn/posthorn/internal/api"
	"github.com/posthorn/posthorn/internal/queue/ops"
	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/testkit"
)

// Scrape reads /metrics at addr (host:port) and parses it with
// Prometheus's own text parser.
func Scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("scrape %s: %s", addr, resp.Status)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// series returns the samples of one family keyed by their label values
// in label name order, e.g. "high,queued" for lane, state (the value; for a histogram its
// sample count).
func series(fams map[string]*dto.MetricFamily, name string) map[string]float64 {
	out := map[string]float64{}
	f := fams[name]
	if f == nil {
		return out
	}
	for _, m := range f.Metric {
		key := ""
		for i, l := range m.Label {
			if i > 0 {
				key += ","
			}
			key += l.GetValue()
		}
		switch {
		case m.Counter != nil:
			out[key] = m.Counter.GetValue()
		case m.Gauge != nil:
			out[key] = m.Gauge.GetValue()
		case m.Histogram != nil:
			out[key] = float64(m.Histogram.GetSampleCount())
		}
	}
	return out
}

// truth is what the store says, read through the CLI.
type truth struct {
	attempts   map[string]float64 // "class,destination"
	hard, soft int
	dead       int
	delivered  map[store.Lane]int
}

func storeTruth(t *testing.T, in *Instance, ids []string) truth {
	t.Helper()
	tr := truth{attempts: map[string]float64{}, delivered: map[store.Lane]int{}}
	for _, id := range ids {
		d := in.Show(id)
		domain := map[int64]string{}
		for _, dl := range d.Deliveries {
			domain[dl.ID] = dl.Domain
			switch dl.State {
			case store.Bounced:
				tr.hard++
			case store.SoftBounced:
				tr.soft++
			case store.DeadLetter:
				tr.dead++
			case store.Delivered:
				tr.delivered[dl.Lane]++
			}
		}
		for _, a := range d.Attempts {
			tr.attempts[a.Class+","+domain[a.DeliveryID]]++ // labels sort by name
		}
	}
	var dlq api.QueueList
	in.CLI(&dlq, "dlq", "list")
	if dlq.Count != tr.dead {
		t.Fatalf("dlq list has %d, the messages %d", dlq.Count, tr.dead)
	}
	return tr
}

// checkCounters compares the scraped counters with the store.
func checkCounters(t *testing.T, fams map[string]*dto.MetricFamily, tr truth, accepted int) {
	t.Helper()
	got := series(fams, "posthorn_delivery_attempts_total")
	if fmt.Sprint(got) != fmt.Sprint(tr.attempts) {
		t.Errorf("attempts by destination and class:\n got %v\nwant %v", got, tr.attempts)
	}
	b := series(fams, "posthorn_bounces_total")
	if b["hard"] != float64(tr.hard) || b["soft"] != float64(tr.soft) {
		t.Errorf("bounces %v, want hard %d soft %d", b, tr.hard, tr.soft)
	}
	if g := series(fams, "posthorn_dead_letters")[""]; g != float64(tr.dead) {
		t.Errorf("posthorn_dead_letters %v, want %d", g, tr.dead)
	}
	if g := series(fams, "posthorn_dead_letters_total")[""]; g != float64(tr.dead) {
		t.Errorf("posthorn_dead_letters_total %v, want %d", g, tr.dead)
	}
	lat := series(fams, "posthorn_delivery_latency_seconds")
	for _, l := range []store.Lane{store.LaneHigh, store.LaneNormal, store.LaneLow} {
		if lat[string(l)] != float64(tr.delivered[l]) {
			t.Errorf("latency samples of lane %s: %v, want %d", l, lat[string(l)], tr.delivered[l])
		}
	}
	if a := series(fams, "posthorn_accepted_total")["smtp"]; a != float64(accepted) {
		t.Errorf("accepted over smtp: %v, want %d", a, accepted)
	}
}

// TestMetricsMatchStore runs deliveries, deferrals, hard and soft bounces
// and dead letters, scrapes /metrics, and checks every figure against the
// store's state read through the CLI: first when all is final, again
// after a restart (the counters are the store's, so they survive it),
// and then with deliveries pending in several lanes and states (depth and
// oldest age).
func TestMetricsMatchStore(t *testing.T) {
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	w := newWorld(t, Options{RetryMin: 300 * time.Millisecond, RetryMax: 600 * time.Millisecond, Lifetime: 3 * time.Second,
		Extra: []string{"--metrics-listen", metricsAddr}}, "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6")
	w.domain("ok.test", "127.0.0.2")
	w.domain("hard.test", "127.0.0.3")
	w.domain("full.test", "127.0.0.4")
	w.domain("dead.test", "127.0.0.5")
	w.domain("later.test", "127.0.0.6")
	rcpt := func(code int, text string) testkit.Script {
		return testkit.Script{Rcpt: func(string) testkit.Reply { return testkit.Reply{Code: code, Text: text} }}
	}
	w.mx["127.0.0.3"].SetScript(rcpt(550, "5.1.1 no such user"))
	w.mx["127.0.0.4"].SetScript(rcpt(452, "4.2.2 mailbox full"))
	w.mx["127.0.0.5"].SetScript(rcpt(451, "4.3.0 temporary local problem"))
	w.mx["127.0.0.6"].SetScript(rcpt(451, "4.3.0 try again later"))
	in := w.in

	var ids []string
	for _, to := range [][]string{{"a@ok.test", "b@ok.test"}, {"c@ok.test"}, {"x@hard.test"}, {"y@hard.test"},
		{"f@full.test"}, {"d@dead.test"}, {"e@dead.test"}} {
		ids = append(ids, in.Send("sender@app.test", to, msgBody("metrics")))
	}
	for _, id := range ids {
		in.WaitFinal(id, 30*time.Second)
	}
	tr := storeTruth(t, in, ids)
	if tr.hard != 2 || tr.soft != 1 || tr.dead != 2 || tr.delivered[store.LaneNormal] != 3 {
		t.Fatalf("scenario did not give 2 hard bounces, 1 soft, 2 dead letters, 3 delivered: %+v", tr)
	}
	if tr.attempts["mailbox_full,full.test"] < 2 || tr.attempts["deferred,dead.test"] < 4 {
		t.Fatalf("scenario did not retry: %v", tr.attempts)
	}
	fams := Scrape(t, metricsAddr)
	checkCounters(t, fams, tr, len(ids))
	// The HTTP listener serves the same to a loopback client.
	if viaHTTP := Scrape(t, in.HTTP); fmt.Sprint(series(viaHTTP, "posthorn_bounces_total")) != fmt.Sprint(series(fams, "posthorn_bounces_total")) {
		t.Errorf("/metrics on the HTTP listener differs: %v", series(viaHTTP, "posthorn_bounces_total"))
	}

	// Restart with long retries: counters come back equal to the store.
	in.Stop()
	in.opts.Lifetime, in.opts.RetryMin, in.opts.RetryMax = time.Hour, time.Hour, time.Hour
	in.Restart()
	checkCounters(t, Scrape(t, metricsAddr), tr, len(ids))

	// Pending work in several lanes and states.
	later := []string{in.Send("sender@app.test", []string{"p@later.test"}, msgBody("deferred normal"))}
	var res api.SendResponse
	send := func(body map[string]any) string {
		if code := in.call(t, in.Creds.APIKey, "POST", "/v1/messages", body, nil, &res); code != 202 && code != 200 {
			t.Fatalf("send: %d", code)
		}
		return res.ID
	}
	later = append(later, send(map[string]any{"from": "app@app.test", "to": []string{"q@later.test"}, "text": "hi", "lane": "high"}))
	held := in.Send("sender@app.test", []string{"h@later.test"}, msgBody("held"))
	sched := send(map[string]any{"from": "app@app.test", "to": []string{"s@ok.test"}, "text": "hi", "lane": "low", "send_at": time.Now().Add(time.Hour)})
	for _, id := range append(later, held) {
		waitDeliveryState(t, in, id, store.Deferred)
	}
	var op ops.OpResult
	in.CLI(&op, "queue", "hold", held)
	in.CLI(nil, "suppression", "add", "blocked@ok.test", "--reason", "unsubscribe")
	blocked := in.Send("sender@app.test", []string{"blocked@ok.test"}, msgBody("suppressed"))
	if st := in.Show(blocked).Deliveries[0].State; st != store.Suppressed {
		t.Fatalf("delivery to a suppressed address: %s", st)
	}
	ids = append(ids, later...)
	ids = append(ids, held, sched, blocked)

	var pending api.QueueList
	deadline := time.Now().Add(10 * time.Second)
	for {
		in.CLI(&pending, "queue", "list")
		want := map[string]float64{}
		oldest := map[store.Lane]time.Time{}
		for _, l := range []string{"high", "normal", "low"} {
			for _, s := range store.PendingStates {
				want[l+","+string(s)] = 0
			}
		}
		for _, d := range pending.Items {
			want[string(d.Lane)+","+string(d.State)]++
			if d.State == store.Queued || d.State == store.Sending || d.State == store.Deferred {
				if o, ok := oldest[d.Lane]; !ok || d.CreatedAt.Before(o) {
					oldest[d.Lane] = d.CreatedAt
				}
			}
		}
		before := time.Now()
		fams = Scrape(t, metricsAddr)
		after := time.Now()
		got := series(fams, "posthorn_queue_depth")
		if fmt.Sprint(got) == fmt.Sprint(want) {
			if want["high,deferred"] != 1 || want["normal,deferred"] != 1 || want["normal,held"] != 1 || want["low,scheduled"] != 1 {
				t.Fatalf("unexpected queue: %v", want)
			}
			ages := series(fams, "posthorn_queue_oldest_age_seconds")
			for _, l := range []store.Lane{store.LaneHigh, store.LaneNormal, store.LaneLow} {
				lo, hi := 0.0, 0.0
				if o, ok := oldest[l]; ok {
					// created_at is stored in milliseconds.
					lo, hi = before.Sub(o).Seconds()-0.01, after.Sub(o).Seconds()+0.01
				}
				if a := ages[string(l)]; a < lo || a > hi {
					t.Errorf("oldest age of lane %s: %v, want between %v and %v", l, a, lo, hi)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue depth:\n got %v\nwant %v", got, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
	tr = storeTruth(t, in, ids)
	if tr.attempts["deferred,later.test"] != 3 {
		t.Fatalf("later.test deferrals in the store: %v", tr.attempts)
	}
	checkCounters(t, fams, tr, len(ids)-2) // two were sent over HTTP
	if a := series(fams, "posthorn_accepted_total")["http"]; a != 2 {
		t.Errorf("accepted over http: %v, want 2", a)
	}
	if s := series(fams, "posthorn_suppressed_total"); len(s) != 1 || s["unsubscribe"] != 1 {
		t.Errorf("suppressed: %v, want unsubscribe 1", s)
	}
	if f := fams["posthorn_webhook_outbox_depth"]; f == nil || f.Metric[0].Gauge.GetValue() != 0 {
		t.Errorf("webhook outbox gauge: %v", f)
	}
	// The writer has committed every acceptance, lease and outcome above
	// (a dozen messages: many requests, at least a few commits), and took
	// time for both phases.
	commits, reqs := series(fams, "posthorn_store_commits_total")[""], series(fams, "posthorn_store_write_requests_total")[""]
	if commits < 3 || reqs < commits || reqs < float64(len(ids)) {
		t.Errorf("store writer: %v commits carrying %v requests for %d messages", commits, reqs, len(ids))
	}
	if busy := series(fams, "posthorn_store_writer_busy_seconds_total"); busy["exec"] <= 0 || busy["commit"] <= 0 {
		t.Errorf("store writer busy seconds: %v, want exec and commit above 0", busy)
	}
	// Every delivery above looked its domain up through the test DNS.
	if q := series(fams, "posthorn_dns_queries_total")[""]; q < 1 {
		t.Errorf("DNS queries: %v, want some", q)
	}
	for _, name := range []string{"posthorn_dns_retransmits_total", "posthorn_dns_failures_total"} {
		if fams[name] == nil {
			t.Errorf("%s missing", name)
		}
	}
}

// waitDeliveryState waits until the first delivery of message id is in
// state want.
func waitDeliveryState(t *testing.T, in *Instance, id string, want store.State) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		d := in.Show(id)
		if len(d.Deliveries) > 0 && d.Deliveries[0].State == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %+v, want %s", id, states(d), want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
