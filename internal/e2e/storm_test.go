package e2e

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/api"
	"github.com/posthorn/posthorn/internal/queue/ops"
	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/testkit"
)

// TestRateLimitStorm: destination A answers 421 4.7.28 to every
// connection, B is healthy. B's delivery rate holds; connections to A fall
// steeply after the first rate-limited replies (A is paused and throttled
// down); A's mail ends in dead_letter with the reply kept.
func TestRateLimitStorm(t *testing.T) {
	cfg := "[delivery]\nmax_connections_per_destination = 5\ncooldown = \"2s\"\n"
	w := newWorld(t, Options{Config: cfg, Lifetime: 8 * time.Second, RetryMin: 200 * time.Millisecond, RetryMax: time.Second},
		"127.0.0.2", "127.0.0.3")
	w.domain("a.test", "127.0.0.2")
	w.domain("b.test", "127.0.0.3")
	mxA, mxB := w.mx["127.0.0.2"], w.mx["127.0.0.3"]
	mxA.SetScript(testkit.Script{Greeting: testkit.Reply{Code: 421, Text: "4.7.28 Our system has detected an unusual rate of unsolicited mail", Close: true}})
	mxB.SetScript(testkit.Script{DiscardData: true, Stall: testkit.Stalls{EndOfData: 5 * time.Millisecond}})
	in := w.in
	bulk := func(domain string, n int) []string {
		items := make([]map[string]any, n)
		for i := range items {
			items[i] = map[string]any{"from": "app@app.test", "to": []string{fmt.Sprintf("u%d@%s", i, domain)}, "text": "hi"}
		}
		var res api.BulkResponse
		if code := in.call(t, in.Creds.APIKey, "POST", "/v1/messages/bulk", map[string]any{"messages": items}, nil, &res); code != 200 || res.Failed > 0 {
			t.Fatalf("bulk: %d", code)
		}
		ids := make([]string, n)
		for i, it := range res.Items {
			ids[i] = it.ID
		}
		return ids
	}
	// round sends n messages to B and returns B's rate (msg/s) and the
	// most connections B had open at once meanwhile.
	round := func(n int) (rate float64, peak int) {
		mxB.ClearRecords()  // the peak starts from the connections open now
		start := time.Now() // from the submission: a stalled scheduler slows that too
		bulk("b.test", n)
		for mxB.Accepted() < n {
			if time.Since(start) > 30*time.Second {
				t.Fatalf("B got %d of %d", mxB.Accepted(), n)
			}
			time.Sleep(10 * time.Millisecond)
		}
		return float64(n) / time.Since(start).Seconds(), mxB.MaxActiveConnections()
	}
	// B alone.
	alone := []float64{}
	rate, peak := round(300)
	alone = append(alone, rate)
	t.Logf("B alone: %.0f msg/s, %d connections", rate, peak)
	// B while A storms; sample A's connection count as it goes.
	start := time.Now()
	samples := make(chan int, 1)
	go func() {
		var at1 int
		for time.Since(start) < 6*time.Second {
			if at1 == 0 && time.Since(start) >= time.Second {
				at1 = mxA.Connections()
			}
			time.Sleep(20 * time.Millisecond)
		}
		samples <- at1
	}()
	idsA := bulk("a.test", 300)
	// B keeps all its connections during every round of A's storm, and
	// its rate holds. The machine is shared and rates vary twofold between
	// runs, so one sample against one misleads: the rounds during the
	// storm are compared with the median of three alone (one before the
	// storm, two after A's mail is dead): the best within 90% of it, none
	// below 40%.
	var storm []float64
	for i := 1; i <= 3; i++ {
		rate, peak := round(300)
		t.Logf("B during A's storm: %.0f msg/s, %d connections", rate, peak)
		if peak < 5 {
			t.Errorf("B had only %d of its 5 connections while A was rate limiting", peak)
		}
		storm = append(storm, rate)
	}
	// Connections to A: a burst at first, then about one per cool-down.
	early := <-samples
	total := mxA.Connections()
	later := total - early
	t.Logf("A: %d connections in the first second, %d in the next five", early, later)
	if later > early || later > 10 {
		t.Errorf("connections to A did not fall: %d in the first second, %d in the next five", early, later)
	}
	// A's mail ends in dead_letter with the 421 kept.
	d := in.WaitFinal(idsA[0], 45*time.Second)
	dl := d.Deliveries[0]
	if dl.State != store.DeadLetter || dl.LastReply.Code != 421 || dl.LastReply.Enhanced != "4.7.28" || dl.LastClass != "rate_limited" {
		t.Fatalf("A's delivery: %+v", dl)
	}
	// The same through the HTTP API: the dead letters, the throttled
	// destination, and a purge.
	key := in.Creds.APIKey
	var dlq api.QueueList
	deadline := time.Now().Add(30 * time.Second)
	for dlq.Count < 300 && time.Now().Before(deadline) {
		in.call(t, key, "GET", "/v1/dlq?domain=a.test&limit=1000", nil, nil, &dlq)
		time.Sleep(100 * time.Millisecond)
	}
	if dlq.Count != 300 || dlq.Items[0].LastReply.Code != 421 || dlq.Items[0].LastClass != "rate_limited" {
		t.Fatalf("GET /v1/dlq: %d items, first %+v", dlq.Count, dlq.Items[0])
	}
	// B alone again, now that A has nothing left to send.
	for range 2 {
		rate, peak := round(300)
		t.Logf("B alone after the storm: %.0f msg/s, %d connections", rate, peak)
		alone = append(alone, rate)
	}
	// A round far below the rest is a stall, not noise (a scheduler held
	// up by A's replies stalled one round to a tenth).
	slices.Sort(alone)
	if best := slices.Max(storm); best < 0.9*alone[1] {
		t.Errorf("B slowed to %.0f%% of its rate while A was rate limiting (during the storm %.0f msg/s, alone %.0f)", 100*best/alone[1], storm, alone)
	}
	if worst := slices.Min(storm); worst < 0.4*alone[1] {
		t.Errorf("B stalled to %.0f%% of its rate in a round while A was rate limiting (during the storm %.0f msg/s, alone %.0f)", 100*worst/alone[1], storm, alone)
	}
	var dests struct {
		Items []struct {
			Destination string `json:"destination"`
			Throttle    struct {
				Conns     int  `json:"connections_allowed"`
				Throttled bool `json:"throttled"`
			} `json:"throttle"`
			Recent map[string]int `json:"recent_classes"`
		} `json:"items"`
	}
	in.call(t, key, "GET", "/v1/destinations", nil, nil, &dests)
	found := false
	for _, d := range dests.Items {
		if d.Destination == "a.test" {
			found = d.Throttle.Throttled && d.Throttle.Conns < 5 && d.Recent["rate_limited"] > 0
		}
	}
	if !found {
		t.Fatalf("a.test not shown throttled: %+v", dests)
	}
	var purged ops.OpResult
	if code := in.call(t, key, "POST", "/v1/dlq/purge", map[string]any{"domain": "a.test"}, nil, &purged); code != 200 || purged.Changed != 300 {
		t.Fatalf("purge: %d %+v", code, purged)
	}
	var evs struct {
		Items []store.Event `json:"items"`
	}
	in.CLI(&evs, "events", "--type", "throttle_changed")
	if len(evs.Items) == 0 {
		t.Fatal("no throttle_changed event")
	}
}

// TestSilentServer: an MX that never answers costs one command timeout,
// ends in a connection-class deferral, and does not hold up other mail.
func TestSilentServer(t *testing.T) {
	w := newWorld(t, Options{Config: "[delivery]\ncommand_timeout = \"1s\"\nconnect_timeout = \"1s\"\n", RetryMin: time.Hour, RetryMax: time.Hour},
		"127.0.0.2", "127.0.0.3")
	w.domain("silent.test", "127.0.0.2")
	w.domain("fine.test", "127.0.0.3")
	w.mx["127.0.0.2"].SetScript(testkit.Script{Stall: testkit.Stalls{Greeting: time.Minute}})
	silent := w.in.Send("s@app.test", []string{"x@silent.test"}, msgBody("silent"))
	fine := w.in.Send("s@app.test", []string{"y@fine.test"}, msgBody("fine"))
	if d := w.in.WaitFinal(fine, 10*time.Second); d.Deliveries[0].State != store.Delivered {
		t.Fatalf("fine.test: %+v", d.Deliveries[0])
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		dl := w.in.Show(silent).Deliveries[0]
		if dl.State == store.Deferred {
			if dl.LastClass != "connection_error" {
				t.Fatalf("silent server gave class %q", dl.LastClass)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("silent server: still %s", dl.State)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
