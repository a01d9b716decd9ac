// Command scan measures what content scanning with rspamd costs at accept
// time: SMTP acceptance rate (-sessions concurrent sessions with AUTH, one
// recipient per message, counted at the 250 after the durable commit) of
// a posthorn with [scan] on against one without, both running in the same
// run, in rounds that alternate them so the machine's drift falls on both
// alike. It prints the median rate of each, their ratio, the added
// latency per message (median and p95 of DATA-to-250, on minus off), and
// rspamd's own scan time, both as rspamd reports it (time_real) and as
// measured from posthorn's side of one sequential request.
//
// It starts Debian's rspamd from internal/testkit/rspamd (loopback, no
// network); delivery goes to a fake MX that discards.
//
// Run from the project root: go run ./bench/scan [-n 2000 -rounds 3]
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/posthorn/posthorn/bench/benchkit"
	"github.com/posthorn/posthorn/internal/scan"
	"github.com/posthorn/posthorn/internal/testkit"
	"github.com/posthorn/posthorn/internal/testkit/rspamd"
)

func main() {
	n := flag.Int("n", 2000, "messages per measurement")
	rounds := flag.Int("rounds", 3, "rounds of (off, on)")
	sessions := flag.Int("sessions", 10, "concurrent SMTP sessions")
	size := flag.Int("size", 4096, "body bytes")
	workers := flag.Int("rspamd-workers", 1, "rspamd normal workers")
	flag.Parse()

	rs, err := rspamd.StartWorkers(2*time.Minute, *workers)
	if err != nil {
		log.Fatal(err)
	}
	defer rs.Stop()
	sink, err := testkit.NewMX("127.0.0.2", 0, testkit.Script{DiscardData: true})
	if err != nil {
		log.Fatal(err)
	}
	defer sink.Close()
	var works []string
	defer func() {
		for _, w := range works {
			os.RemoveAll(w)
		}
	}()
	start := func(name, config string) *benchkit.Posthorn {
		work, err := os.MkdirTemp("", "posthorn-scan-"+name+"-")
		if err != nil {
			log.Fatal(err)
		}
		works = append(works, work)
		cfg := filepath.Join(work, "posthorn.toml")
		if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
			log.Fatal(err)
		}
		p, err := benchkit.Start(work, "--smarthost", sink.Addr(), "--config", cfg)
		if err != nil {
			log.Fatal(err)
		}
		return p
	}
	off := start("off", "")
	defer off.Stop()
	on := start("on", fmt.Sprintf("[scan]\nrspamd_url = %q\ntimeout = \"10s\"\n", rs.URL))
	defer on.Stop()

	text := strings.ReplaceAll(strings.Repeat("Thank you for your order; your parcel ships tomorrow morning. "+"\n", *size/64), "\n", "\r\n")
	body := "From: App <app@app.bench>\r\nTo: rcpt@sink.test\r\nSubject: your order\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: text/plain\r\n\r\n" + text

	own, reported := rspamdTime(rs.URL, body, 200)

	measure(off, *n/4, *sessions, body) // warm up both
	measure(on, *n/4, *sessions, body)
	rates := map[string][]float64{}
	lat := map[string][]time.Duration{}
	for r := 0; r < *rounds; r++ {
		for _, k := range []struct {
			label string
			p     *benchkit.Posthorn
		}{{"off", off}, {"on", on}} {
			rate, ls := measure(k.p, *n, *sessions, body)
			rates[k.label] = append(rates[k.label], rate)
			lat[k.label] = append(lat[k.label], ls...)
			fmt.Printf("round %d scan %-3s %6.0f msg/s\n", r+1, k.label, rate)
		}
	}
	for _, l := range lat {
		sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
	}
	rOff, rOn := benchkit.Median(rates["off"]), benchkit.Median(rates["on"])
	fmt.Printf("\nSMTP acceptance, %d sessions, %d messages of %d bytes per measurement, median of %d rounds, rspamd with %d workers:\n",
		*sessions, *n, len(body), *rounds, *workers)
	fmt.Printf("  scan off %6.0f msg/s\n  scan on  %6.0f msg/s  (%.2f of off)\n", rOff, rOn, rOn/rOff)
	for _, q := range []float64{50, 95} {
		a, b := benchkit.Percentile(lat["off"], q), benchkit.Percentile(lat["on"], q)
		fmt.Printf("  latency p%.0f DATA->250: off %s, on %s, added %s\n", q, a.Round(10*time.Microsecond), b.Round(10*time.Microsecond), (b - a).Round(10*time.Microsecond))
	}
	fmt.Printf("  rspamd alone, one request at a time: median %s round trip, median time_real %s\n", own.Round(10*time.Microsecond), reported.Round(10*time.Microsecond))
}

// rspamdTime scans body n times in a row and returns the median round
// trip and the median of rspamd's own time_real.
func rspamdTime(url, body string, n int) (time.Duration, time.Duration) {
	r := &scan.Rspamd{URL: url}
	var rt, own []time.Duration
	for i := 0; i < n; i++ {
		t0 := time.Now()
		res, err := r.Scan(context.Background(), &scan.Request{Body: []byte(body), From: "app@app.bench", Rcpts: []string{"rcpt@sink.test"}, IP: "127.0.0.1"})
		if err != nil {
			log.Fatal(err)
		}
		rt = append(rt, time.Since(t0))
		own = append(own, res.ScanTime)
	}
	sort.Slice(rt, func(i, j int) bool { return rt[i] < rt[j] })
	sort.Slice(own, func(i, j int) bool { return own[i] < own[j] })
	return rt[n/2], own[n/2]
}

func measure(p *benchkit.Posthorn, n, sessions int, body string) (float64, []time.Duration) {
	var next atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var all []time.Duration
	start := time.Now()
	for s := 0; s < sessions; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ls, err := p.Inject(&next, n, "app@app.bench", body)
			if err != nil {
				log.Fatal(err)
			}
			mu.Lock()
			all = append(all, ls...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return float64(n) / time.Since(start).Seconds(), all
}
