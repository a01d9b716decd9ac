// Command dkim measures what DKIM signing at accept time costs: SMTP
// acceptance rate (-sessions concurrent sessions with AUTH, one recipient
// per message, counted at the 250 that follows the durable commit) for
// mail of an unsigned domain, an RSA-2048 domain and an Ed25519 domain,
// all in one posthorn in one run, in rounds that alternate the three so
// the machine's drift falls on all alike. It prints the median rate of
// each and the signed/unsigned ratios. Delivery goes to a fake MX that
// discards.
//
// Run from the project root: go run ./bench/dkim [-n 5000 -rounds 3]
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
	n := flag.Int("n", 5000, "messages per measurement")
	rounds := flag.Int("rounds", 3, "rounds of (off, rsa, ed25519)")
	sessions := flag.Int("sessions", 10, "concurrent SMTP sessions")
	size := flag.Int("size", 4096, "body bytes")
	flag.Parse()

	work, err := os.MkdirTemp("", "posthorn-dkim-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(work)
	sink, err := testkit.NewMX("127.0.0.2", 0, testkit.Script{DiscardData: true})
	if err != nil {
		log.Fatal(err)
	}
	defer sink.Close()
	// The sender check is off (benchkit), so unsigned.bench, which is no
	// sending domain, is accepted and not signed.
	p, err := benchkit.Start(work, "--smarthost", sink.Addr())
	if err != nil {
		log.Fatal(err)
	}
	defer p.Stop()
	for _, d := range []struct{ name, alg string }{{"rsa.bench", "rsa"}, {"ed.bench", "ed25519"}} {
		code, err := p.Call("POST", "/v1/domains", map[string]any{"domain": d.name, "algorithm": d.alg, "unverified_ok": true}, nil)
		if err != nil || code != 201 {
			log.Fatalf("add domain %s: %d %v", d.name, code, err)
		}
	}
	text := strings.ReplaceAll(strings.Repeat(strings.Repeat("x", 75)+"\n", *size/76), "\n", "\r\n")
	kinds := []struct{ label, domain string }{{"off", "unsigned.bench"}, {"rsa-2048", "rsa.bench"}, {"ed25519", "ed.bench"}}
	measure(p, *n/2, *sessions, "unsigned.bench", text) // warm up: connections, store files, caches
	rates := map[string][]float64{}
	for r := 0; r < *rounds; r++ {
		for _, k := range kinds {
			rate := measure(p, *n, *sessions, k.domain, text)
			rates[k.label] = append(rates[k.label], rate)
			fmt.Printf("round %d %-8s %6.0f msg/s\n", r+1, k.label, rate)
		}
	}
	off := benchkit.Median(rates["off"])
	fmt.Printf("\nSMTP acceptance, %d sessions, %d messages of %d bytes per measurement, median of %d rounds:\n", *sessions, *n, *size, *rounds)
	for _, k := range kinds {
		m := benchkit.Median(rates[k.label])
		fmt.Printf("  DKIM %-8s %6.0f msg/s  (%.2f of unsigned)\n", k.label, m, m/off)
	}
}

func measure(p *benchkit.Posthorn, n, sessions int, domain, text string) float64 {
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for s := 0; s < sessions; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := "From: App <app@" + domain + ">\r\nTo: rcpt@sink.test\r\nSubject: bench\r\nMIME-Version: 1.0\r\n" +
				"Content-Type: text/plain\r\n\r\n" + text
			if _, err := p.Inject(&next, n, "app@"+domain, body); err != nil {
				log.Fatal(err)
			}
		}()
	}
	wg.Wait()
	return float64(n) / time.Since(start).Seconds()
}
