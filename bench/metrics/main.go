// Command metrics measures how long a /metrics scrape takes with a large
// queue: it fills a data directory through the store API with -n pending
// deliveries across -dests destinations (scheduled a month ahead, so
// nothing is dialled), starts posthorn on it, and times scrapes of
// /metrics on the metrics listener: each spaced by more than the queue
// aggregate's cache (so each runs the store query), then back to back
// (served from the cache). It also times `queue summary` (the qshape
// view) and the start-up (loading the scheduler).
//
// Run from the project root: go run ./bench/metrics [-n 1000000] [-dests 5000]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/posthorn/posthorn/internal/config"
	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/store/sqlite"
)

func main() {
	n := flag.Int("n", 1000000, "pending deliveries")
	dests := flag.Int("dests", 5000, "destinations (recipient domains)")
	perMsg := flag.Int("rcpts", 5, "recipients per message (each at another domain)")
	scrapes := flag.Int("scrapes", 10, "scrapes of each kind")
	flag.Parse()

	work, err := os.MkdirTemp("", "posthorn-bench-metrics-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(work)
	bin := filepath.Join(work, "posthorn")
	build := exec.Command("go", "build", "-o", bin, "./cmd/posthorn")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		log.Fatalf("build (run from the project root): %v", err)
	}
	cfg := config.Default()
	cfg.DataDir = filepath.Join(work, "data")
	if out, err := exec.Command(bin, "init", "--data-dir", cfg.DataDir, "--json").CombinedOutput(); err != nil {
		log.Fatalf("init: %v: %s", err, out)
	}

	start := time.Now()
	if err := fill(cfg.DBPath(), *n, *dests, *perMsg); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("filled the store with %d pending deliveries across %d destinations in %s\n", *n, *dests, time.Since(start).Round(time.Millisecond))

	metricsAddr, httpAddr := freeAddr(), freeAddr()
	start = time.Now()
	srv := exec.Command(bin, "serve", "--data-dir", cfg.DataDir, "--smtp-listen", freeAddr(), "--http-listen", httpAddr,
		"--metrics-listen", metricsAddr, "--dns-server", "127.0.0.1:1", "--log-level", "warn")
	srv.Stdout, srv.Stderr = os.Stderr, os.Stderr
	if err := srv.Start(); err != nil {
		log.Fatal(err)
	}
	defer func() {
		srv.Process.Signal(syscall.SIGTERM)
		srv.Wait()
	}()
	for {
		if c, err := net.Dial("tcp", metricsAddr); err == nil {
			c.Close()
			break
		}
		if time.Since(start) > 10*time.Minute {
			log.Fatal("posthorn did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
	fmt.Printf("posthorn started (scheduler loaded) in %s\n", time.Since(start).Round(time.Millisecond))

	first, size := scrape(metricsAddr)
	fmt.Printf("first scrape (waits for the counters' pass over the history): %s, %d bytes\n", first.Round(time.Millisecond), size)
	var spaced, cached []time.Duration
	for i := 0; i < *scrapes; i++ {
		time.Sleep(1100 * time.Millisecond) // past the 1s cache of the queue aggregate
		d, _ := scrape(metricsAddr)
		spaced = append(spaced, d)
	}
	for i := 0; i < *scrapes; i++ {
		d, _ := scrape(metricsAddr)
		cached = append(cached, d)
	}
	report("scrape, queue aggregate from the store", spaced)
	report("scrape, queue aggregate cached (<1s old)", cached)

	var sums []time.Duration
	for i := 0; i < 3; i++ {
		t0 := time.Now()
		if out, err := exec.Command(bin, "queue", "summary", "--data-dir", cfg.DataDir, "--json").CombinedOutput(); err != nil {
			log.Fatalf("queue summary: %v: %s", err, out)
		}
		sums = append(sums, time.Since(t0))
	}
	report("queue summary (CLI, by destination and age)", sums)
}

// fill writes n deliveries: messages of perMsg recipients, each at
// another of dests domains, in all three lanes, accepted over the last
// three hours and scheduled a month ahead.
func fill(path string, n, dests, perMsg int) error {
	st, err := sqlite.Open(path)
	if err != nil {
		return err
	}
	defer st.Close()
	ctx := context.Background()
	ts, err := st.ListTenants(ctx)
	if err != nil || len(ts) == 0 {
		return fmt.Errorf("tenants: %v", err)
	}
	tenant := ts[0].ID
	now := time.Now().UTC()
	lanes := []store.Lane{store.LaneHigh, store.LaneNormal, store.LaneNormal, store.LaneLow, store.LaneLow}
	var batch []*store.NewMessage
	msgs := (n + perMsg - 1) / perMsg
	for i := 0; i < msgs; i++ {
		created := now.Add(-time.Duration(msgs-i) * 3 * time.Hour / time.Duration(msgs))
		sendAt := now.Add(30 * 24 * time.Hour)
		lane := lanes[i%len(lanes)]
		m := &store.Message{ID: fmt.Sprintf("bench%010d", i), TenantID: tenant, Sender: "bench@app.test", Lane: lane, Source: "http",
			Size: 10, CreatedAt: created, SendAt: sendAt, Body: []byte("Subject: x\r\n\r\nx\r\n")}
		nm := &store.NewMessage{Message: m}
		for r := 0; r < perMsg && i*perMsg+r < n; r++ {
			dom := fmt.Sprintf("d%04d.test", (i*perMsg+r)%dests)
			nm.Deliveries = append(nm.Deliveries, &store.Delivery{Recipient: fmt.Sprintf("u%d@%s", i, dom), Domain: dom, Lane: lane,
				State: store.Scheduled, CreatedAt: created, NextAttemptAt: sendAt, ExpiresAt: sendAt.Add(24 * time.Hour)})
		}
		batch = append(batch, nm)
		if len(batch) == 2000 || i == msgs-1 {
			if err := st.InsertMessages(ctx, batch); err != nil {
				return fmt.Errorf("insert: %w", err)
			}
			batch = batch[:0]
		}
	}
	return nil
}

func scrape(addr string) (time.Duration, int) {
	t0 := time.Now()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		log.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		log.Fatalf("scrape: %v %s", err, resp.Status)
	}
	return time.Since(t0), len(b)
}

func report(what string, ds []time.Duration) {
	slices.Sort(ds)
	fmt.Printf("%-46s min %7s  median %7s  max %7s  (%d runs)\n", what+":", ds[0].Round(time.Millisecond/10),
		ds[len(ds)/2].Round(time.Millisecond/10), ds[len(ds)-1].Round(time.Millisecond/10), len(ds))
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
