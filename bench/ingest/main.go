// Command ingest compares the two ways into posthorn's queue on this
// machine: SMTP submission (-sessions concurrent sessions with AUTH, one
// -rcpts recipients per message) and the bulk HTTP API (-clients
// concurrent requests of -batch one-recipient messages). Both count only
// durably committed mail (the 250, the 200 answer). Delivery goes to a
// fake MX that discards.
//
// Run from the project root: go run ./bench/ingest [-n 20000]
// Issue 14's recipient-rate loads (1 KB messages):
//
//	go run ./bench/ingest -size 1024 -n 2000 -rcpts 100 -only smtp
//	go run ./bench/ingest -size 1024 -n 100000 -batch 5000 -only bulk
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/posthorn/posthorn/bench/benchkit"
	"github.com/posthorn/posthorn/internal/testkit"
)

func main() {
	n := flag.Int("n", 20000, "messages per method")
	sessions := flag.Int("sessions", 10, "concurrent SMTP sessions")
	clients := flag.Int("clients", 4, "concurrent bulk requests")
	batch := flag.Int("batch", 1000, "messages per bulk request")
	size := flag.Int("size", 4096, "body bytes")
	rcpts := flag.Int("rcpts", 1, "recipients per SMTP message")
	only := flag.String("only", "", `"smtp" or "bulk": run one method`)
	profile := flag.String("cpuprofile", "", "write the server's CPU profile of the first -profile-seconds of each method to this file (.smtp/.bulk added)")
	profSecs := flag.Int("profile-seconds", 5, "length of the CPU profile")
	allocs := flag.String("allocprofile", "", "write the server's allocation profile (since it started) to this file after the run")
	hold := flag.Bool("hold", false, "pause delivery (an operator's pause of the sink): measure acceptance alone")
	flag.Parse()

	work, err := os.MkdirTemp("", "posthorn-ingest-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(work)
	sink, err := testkit.NewMX("127.0.0.2", 0, testkit.Script{DiscardData: true})
	if err != nil {
		log.Fatal(err)
	}
	defer sink.Close()
	p, err := benchkit.Start(work, "--smarthost", sink.Addr())
	if err != nil {
		log.Fatal(err)
	}
	defer p.Stop()
	if *hold {
		if err := p.Admin("POST", "/admin/v1/destinations/relay:"+sink.Addr()+"/pause"); err != nil {
			log.Fatal(err)
		}
	}
	text := strings.Repeat(strings.Repeat("x", 75)+"\n", *size/76)

	cpu := func() time.Duration { d, _ := benchkit.CPUTime(p.PID()); return d }
	// prof takes a CPU profile in the background; wait for it with the
	// returned function.
	prof := func(suffix string) func() {
		if *profile == "" {
			return func() {}
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			data, err := p.AdminBody("GET", fmt.Sprintf("/debug/pprof/profile?seconds=%d", *profSecs))
			if err == nil {
				err = os.WriteFile(*profile+"."+suffix, data, 0o644)
			}
			if err != nil {
				log.Print("profile: ", err)
			}
		}()
		return func() { <-done }
	}

	// SMTP.
	var wg sync.WaitGroup
	if *only != "bulk" {
		to := make([]string, *rcpts)
		for i := range to {
			to[i] = fmt.Sprintf("rcpt%d@sink.test", i)
		}
		var next atomic.Int64
		profiled := prof("smtp")
		start, cpu0 := time.Now(), cpu()
		for s := 0; s < *sessions; s++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				body := "Subject: bench\r\n\r\n" + strings.ReplaceAll(text, "\n", "\r\n")
				if _, err := p.InjectTo(&next, *n, "app@app.test", func(int64) []string { return to }, body); err != nil {
					log.Fatal(err)
				}
			}()
		}
		wg.Wait()
		took, used := time.Since(start), cpu()-cpu0
		profiled()
		fmt.Printf("SMTP submission: %d messages x %d recipients, %d sessions: %.0f msg/s = %.0f recipients/s accepted, server CPU %.1f us/recipient\n",
			*n, *rcpts, *sessions, float64(*n)/took.Seconds(), float64(*n**rcpts)/took.Seconds(), float64(used.Microseconds())/float64(*n**rcpts))
	}
	if *only == "smtp" {
		return
	}

	// Bulk API.
	items := make([]map[string]any, *batch)
	for i := range items {
		items[i] = map[string]any{"from": "app@app.test", "to": []string{"rcpt@sink.test"}, "subject": "bulk", "text": text}
	}
	var sent atomic.Int64
	profiled := prof("bulk")
	start, cpu0 := time.Now(), cpu()
	for c := 0; c < *clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for sent.Add(int64(*batch)) <= int64(*n) {
				var res struct{ Accepted, Failed int }
				code, err := p.Call("POST", "/v1/messages/bulk", map[string]any{"messages": items}, &res)
				if err != nil || code != 200 || res.Failed != 0 {
					log.Fatalf("bulk: %d %v %+v", code, err, res)
				}
			}
		}()
	}
	wg.Wait()
	took, used := time.Since(start), cpu()-cpu0
	profiled()
	fmt.Printf("bulk HTTP API:   %d messages, %d clients x %d per request: %.0f recipients/s accepted, server CPU %.1f us/recipient\n",
		*n, *clients, *batch, float64(*n)/took.Seconds(), float64(used.Microseconds())/float64(*n))
	if *allocs != "" {
		data, err := p.AdminBody("GET", "/debug/pprof/allocs")
		if err == nil {
			err = os.WriteFile(*allocs, data, 0o644)
		}
		if err != nil {
			log.Print("allocation profile: ", err)
		}
	}
}
