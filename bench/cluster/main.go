// Command cluster compares one posthorn node on the embedded SQLite store
// with 1, 2 and 3 nodes sharing one PostgreSQL database (a server this
// command starts from Debian's postgresql binaries, fsync on): acceptance
// (SMTP sessions spread over the nodes, counted at the 250) and end to
// end (until a fake MX that discards has every message), as rates and
// as ratios to SQLite, in one run. Every node delivers through one
// smarthost destination with -conns connections for the whole cluster.
//
// Run from the project root: go run ./bench/cluster [-n 10000]
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/posthorn/posthorn/bench/benchkit"
	"github.com/posthorn/posthorn/internal/testkit"
	"github.com/posthorn/posthorn/internal/testkit/pgtest"
)

type result struct {
	name              string
	accept, endToEnd  float64 // messages per second
	acceptT, deliverT time.Duration
}

func main() {
	n := flag.Int("n", 10000, "messages per configuration")
	sessions := flag.Int("sessions", 8, "concurrent SMTP sessions, spread over the nodes (at most the SMTP max_auth_failures: concurrent logins count until they succeed)")
	size := flag.Int("size", 2048, "body bytes")
	conns := flag.Int("conns", 10, "connections to the destination (whole cluster)")
	flag.Parse()

	pg, err := pgtest.Start()
	if err != nil {
		log.Fatal(err)
	}
	defer pg.Stop()
	text := strings.Repeat(strings.Repeat("x", 75)+"\r\n", *size/77)
	body := "Subject: bench\r\n\r\n" + text
	config := fmt.Sprintf("[delivery]\nmax_connections_per_destination = %d\n", *conns)

	run := func(name string, nodes int, shared bool) result {
		work, err := os.MkdirTemp("", "posthorn-cluster-")
		if err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(work)
		sink, err := testkit.NewMX("127.0.0.2", 0, testkit.Script{DiscardData: true})
		if err != nil {
			log.Fatal(err)
		}
		defer sink.Close()
		cfg := filepath.Join(work, "posthorn.toml")
		if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
			log.Fatal(err)
		}
		extra := []string{"--config", cfg, "--smarthost", sink.Addr()}
		var ps []*benchkit.Posthorn
		if shared {
			db, err := pg.CreateDatabase()
			if err != nil {
				log.Fatal(err)
			}
			if ps, err = benchkit.StartNodes(work, pg.URL(db), nodes, extra...); err != nil {
				log.Fatal(err)
			}
		} else {
			p, err := benchkit.Start(work, extra...)
			if err != nil {
				log.Fatal(err)
			}
			ps = []*benchkit.Posthorn{p}
		}
		defer func() {
			for _, p := range ps {
				p.Stop()
			}
		}()
		for _, p := range ps {
			waitListening(p.SMTP) // serve returns once HTTP listens; SMTP comes last
		}
		var next atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		for s := range *sessions {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := ps[s%len(ps)].Inject(&next, *n, "app@app.test", body); err != nil {
					b, _ := os.ReadFile(filepath.Join(work, "posthorn.log"))
					log.Fatalf("%s: %v\n%s", name, err, b)
				}
			}()
		}
		wg.Wait()
		acceptT := time.Since(start)
		for sink.Accepted() < *n {
			if time.Since(start) > 20*time.Minute {
				log.Fatalf("%s: %d of %d delivered after 20 minutes", name, sink.Accepted(), *n)
			}
			time.Sleep(20 * time.Millisecond)
		}
		deliverT := time.Since(start)
		r := result{name: name, accept: float64(*n) / acceptT.Seconds(), endToEnd: float64(*n) / deliverT.Seconds(), acceptT: acceptT, deliverT: deliverT}
		fmt.Fprintf(os.Stderr, "%s: accepted in %s, delivered in %s\n", name, acceptT.Round(time.Millisecond), deliverT.Round(time.Millisecond))
		return r
	}
	rs := []result{run("sqlite, 1 node", 1, false)}
	for k := 1; k <= 3; k++ {
		rs = append(rs, run(fmt.Sprintf("postgres, %d node", k)+map[bool]string{true: "s"}[k > 1], k, true))
	}
	fmt.Printf("%d messages of %d bytes, %d SMTP sessions, %d connections to the destination\n", *n, *size, *sessions, *conns)
	fmt.Printf("%-20s %12s %8s %14s %8s\n", "", "accepted/s", "ratio", "end to end/s", "ratio")
	for _, r := range rs {
		fmt.Printf("%-20s %12.0f %7.2fx %14.0f %7.2fx\n", r.name, r.accept, r.accept/rs[0].accept, r.endToEnd, r.endToEnd/rs[0].endToEnd)
	}
}

func waitListening(addr string) {
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
	}
	log.Fatalf("%s is not listening", addr)
}
