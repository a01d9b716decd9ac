// Command lanes measures priority lanes and tenant fairness under backlog.
//
// Mode "lanes" (default): queue -low low-lane messages (through the bulk
// API) to a destination that accepts slowly, then send -high high-lane
// messages one by one while the backlog waits, and print accept-to-
// delivered p50/p99 of the high lane and how many low-lane messages were
// delivered meanwhile (the low lane must keep moving). The bulk injection
// also reports recipients accepted per second through the bulk API.
//
// Mode "tenants": tenant A queues -low normal-lane messages; tenant B then
// sends -high normal-lane messages; B's accept-to-delivered p50/p99 show
// whether A's backlog delays B (tenants are served round-robin per lane).
//
// Run from the project root: go run ./bench/lanes [-mode lanes|tenants] [-low 100000] [-high 100]
package main

import (
	"flag"
	"fmt"
	"log"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/posthorn/posthorn/bench/benchkit"
	"github.com/posthorn/posthorn/internal/testkit"
)

func main() {
	mode := flag.String("mode", "lanes", "lanes or tenants")
	low := flag.Int("low", 100000, "backlog size")
	high := flag.Int("high", 100, "priority messages sent while the backlog waits")
	stall := flag.Duration("stall", 20*time.Millisecond, "the destination's delay before answering each message")
	conns := flag.Int("conns", 10, "posthorn's connections per destination")
	batch := flag.Int("batch", 5000, "bulk request size")
	flag.Parse()

	w, err := benchkit.NewWorld("lanes", "slow.test", testkit.Script{DiscardData: true, Stall: testkit.Stalls{EndOfData: *stall}},
		fmt.Sprintf("[delivery]\nmax_connections_per_destination = %d\n", *conns))
	if err != nil {
		log.Fatal(err)
	}
	defer w.Close()
	p, mx := w.P, w.MX

	backlogLane, priorityLane, priorityKey := "low", "high", p.APIKey
	if *mode == "tenants" {
		backlogLane, priorityLane = "normal", "normal"
		if _, err := run(p.Bin, "tenant", "add", "tenant-b", "--data-dir", p.Dir); err != nil {
			log.Fatal(err)
		}
		out, err := run(p.Bin, "apikey", "create", "--tenant", "tenant-b", "--scope", "send,read", "--data-dir", p.Dir, "--json")
		if err != nil {
			log.Fatal(err)
		}
		priorityKey = jsonField(out, "api_key")
	}

	// The backlog, through the bulk API.
	start := time.Now()
	for sent := 0; sent < *low; sent += *batch {
		n := min(*batch, *low-sent)
		items := make([]map[string]any, n)
		for i := range items {
			items[i] = map[string]any{"from": "news@app.test", "to": []string{"backlog@slow.test"}, "subject": "newsletter",
				"text": strings.Repeat("newsletter text\n", 100), "lane": backlogLane}
		}
		var res struct{ Accepted, Failed int }
		if code, err := p.Call("POST", "/v1/messages/bulk", map[string]any{"messages": items}, &res); err != nil || code != 200 || res.Failed > 0 {
			log.Fatalf("bulk: %d %v %+v", code, err, res)
		}
	}
	el := time.Since(start)
	fmt.Printf("backlog: %d %s-lane messages accepted through the bulk API in %.1fs: %.0f recipients/s\n",
		*low, backlogLane, el.Seconds(), float64(*low)/el.Seconds())
	lowBefore := countTo(mx, "backlog@slow.test")

	// Priority messages while the backlog waits.
	pk := *p
	pk.APIKey = priorityKey
	sentAt := map[string]time.Time{}
	phase := time.Now()
	for i := 0; i < *high; i++ {
		rcpt := fmt.Sprintf("prio-%d@slow.test", i)
		t0 := time.Now()
		code, err := pk.Call("POST", "/v1/messages", map[string]any{"from": "app@app.test", "to": []string{rcpt},
			"subject": "password reset", "text": "your code is 123456", "lane": priorityLane}, nil)
		if err != nil || code != 202 {
			log.Fatalf("priority send: %d %v", code, err)
		}
		sentAt[rcpt] = t0
		time.Sleep(50 * time.Millisecond)
	}
	deadline := time.Now().Add(5 * time.Minute)
	var lat []time.Duration
	for time.Now().Before(deadline) {
		lat = lat[:0]
		for _, m := range mx.Messages() {
			if t0, ok := sentAt[m.To[0]]; ok {
				lat = append(lat, m.Time.Sub(t0))
			}
		}
		if len(lat) == len(sentAt) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	phaseDur := time.Since(phase)
	slices.Sort(lat)
	lowDuring := countTo(mx, "backlog@slow.test") - lowBefore
	fmt.Printf("%s: %d/%d %s-lane messages delivered; accept-to-delivered p50 %s p99 %s max %s\n", *mode, len(lat), *high,
		priorityLane, benchkit.Percentile(lat, 50).Round(time.Millisecond), benchkit.Percentile(lat, 99).Round(time.Millisecond),
		benchkit.Percentile(lat, 100).Round(time.Millisecond))
	fmt.Printf("backlog progress meanwhile: %d %s-lane messages delivered in %.1fs (%.0f/s)\n", lowDuring, backlogLane,
		phaseDur.Seconds(), float64(lowDuring)/phaseDur.Seconds())
}

var countMu sync.Mutex

func countTo(mx *testkit.MXServer, rcpt string) int {
	countMu.Lock()
	defer countMu.Unlock()
	n := 0
	for _, m := range mx.Messages() {
		if len(m.To) > 0 && m.To[0] == rcpt {
			n++
		}
	}
	return n
}
