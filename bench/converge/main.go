// Command converge measures adaptive throttling against a provider that
// accepts at most -n messages per -window and answers 421 4.7.28 above
// that. posthorn has no configured rate: it must find the limit itself.
// After -warmup it prints the share of attempts deferred and the achieved
// rate as a share of the provider's limit.
//
// Run from the project root: go run ./bench/converge [-n 100 -window 10s -duration 4m -warmup 90s]
package main

import (
	"flag"
	"fmt"
	"log"
	"strings"
	"time"

	"github.com/posthorn/posthorn/bench/benchkit"
	"github.com/posthorn/posthorn/internal/testkit"
)

func main() {
	n := flag.Int("n", 100, "messages the provider accepts per window")
	window := flag.Duration("window", 10*time.Second, "the provider's sliding window")
	duration := flag.Duration("duration", 4*time.Minute, "how long to run")
	warmup := flag.Duration("warmup", 90*time.Second, "time to converge before measuring")
	cooldown := flag.Duration("cooldown", 5*time.Second, "posthorn's pause after a rate_limited reply")
	flag.Parse()

	w, err := benchkit.NewWorld("converge", "provider.test", testkit.Script{DiscardData: true,
		RateLimit: testkit.RateLimit{Messages: *n, Window: *window, Reply: testkit.Reply{Code: 421, Text: "4.7.28 Rate limit exceeded, try again later", Close: true}}},
		fmt.Sprintf("[delivery]\ncooldown = %q\nmax_connections_per_destination = 10\n", cooldown.String()),
		"--retry-min", "5s", "--retry-max", "30s")
	if err != nil {
		log.Fatal(err)
	}
	defer w.Close()
	p, mx := w.P, w.MX

	// Keep a backlog far above what the provider takes.
	limitPerMin := float64(*n) * float64(time.Minute) / float64(*window)
	total := int(limitPerMin*duration.Minutes()*1.5) + 1000
	for sent := 0; sent < total; sent += 5000 {
		items := make([]map[string]any, min(5000, total-sent))
		for i := range items {
			items[i] = map[string]any{"from": "app@app.test", "to": []string{fmt.Sprintf("u%d@provider.test", sent+i)}, "text": "hello"}
		}
		if code, err := p.Call("POST", "/v1/messages/bulk", map[string]any{"messages": items}, nil); err != nil || code != 200 {
			log.Fatalf("bulk: %d %v", code, err)
		}
	}
	start := time.Now()
	time.Sleep(*warmup)
	a0, m0 := len(mx.Attempts()), mx.Accepted()
	t0 := time.Now()
	time.Sleep(*duration - *warmup)
	attempts, accepted := len(mx.Attempts())-a0, mx.Accepted()-m0
	el := time.Since(t0)
	// Attempts are end-of-data phases; 421s at MAIL never reach DATA, so
	// count refusals from the commands log instead.
	refused := 0
	for _, c := range mx.Commands() {
		if c.Time.After(t0) && strings.HasPrefix(strings.ToUpper(c.Line), "MAIL FROM") {
			refused++
		}
	}
	refused -= accepted
	if refused < 0 {
		refused = 0
	}
	rate := float64(accepted) / el.Minutes()
	fmt.Printf("provider limit %d per %s (%.0f/min); measured %.0fs after %.0fs of convergence\n", *n, *window, limitPerMin,
		el.Seconds(), t0.Sub(start).Seconds())
	fmt.Printf("achieved %.0f/min = %.0f%% of the limit; %d of %d attempts deferred (%.1f%%)\n", rate, 100*rate/limitPerMin,
		refused, accepted+refused, 100*float64(refused)/float64(max(1, accepted+refused)))
	_ = attempts
}
