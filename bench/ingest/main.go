// Command ingest compares the two ways into posthorn's queue on this
// machine: SMTP submission (-sessions concurrent sessions with AUTH, one
// recipient per message) and the bulk HTTP API (-clients concurrent
// requests of -batch messages). Both count only durably committed mail
// (the 250, the 200 answer). Delivery goes to a fake MX that discards.
//
// Run from the project root: go run ./bench/ingest [-n 20000]
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
	text := strings.Repeat(strings.Repeat("x", 75)+"\n", *size/76)

	// SMTP.
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for s := 0; s < *sessions; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := "Subject: bench\r\n\r\n" + strings.ReplaceAll(text, "\n", "\r\n")
			if _, err := p.Inject(&next, *n, "app@app.test", body); err != nil {
				log.Fatal(err)
			}
		}()
	}
	wg.Wait()
	smtpRate := float64(*n) / time.Since(start).Seconds()

	// Bulk API.
	items := make([]map[string]any, *batch)
	for i := range items {
		items[i] = map[string]any{"from": "app@app.test", "to": []string{"rcpt@sink.test"}, "subject": "bulk", "text": text}
	}
	var sent atomic.Int64
	start = time.Now()
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
	bulkRate := float64(*n) / time.Since(start).Seconds()
	fmt.Printf("SMTP submission: %d messages, %d sessions: %.0f msg/s accepted\n", *n, *sessions, smtpRate)
	fmt.Printf("bulk HTTP API:   %d messages, %d clients x %d per request: %.0f recipients/s accepted (%.1fx SMTP)\n",
		*n, *clients, *batch, bulkRate, bulkRate/smtpRate)
}
