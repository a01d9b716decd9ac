package main

import (
	"database/sql"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "github.com/mattn/go-sqlite3"

	"github.com/posthorn/posthorn/bench/benchkit"
	"github.com/posthorn/posthorn/internal/testkit"
)

// eventsBench (-events N) measures acceptance against a large events
// table (issue 14, item 5). Two servers relay to one discarding fake MX:
// "empty" on a fresh database and "full" on one whose events table holds
// N rows, written straight into it with the server stopped (spread over
// the last 30 days, -event-tenants tenants, 5,000 recipient domains,
// accepted/delivered/deferred/bounced rows of the widths the server
// writes; the secondary indexes are dropped for the fill and built again
// after it). Then -rounds rounds, alternating between the two servers so
// the machine's load hits both alike, of -n messages over -sessions SMTP
// sessions each: acceptance rate and the latency of each message's end of
// data to its 250 (p50, p99). Then the full server restarts with
// events_retention of 20 days, so retention has a third of the table to
// delete, and the same rounds run while it prunes.
//
// With -work DIR the databases are kept there, and a later run with the
// same -work and -events reuses the filled one (its fill takes long).
// -fill-only stops after the fill. -prune-ab measures pruning alone
// instead: the full database and a copy of it, one of them pruning. With -cpuprofile P, the full server's
// CPU profile of a round in each phase goes to P.accept and P.prune.
func eventsBench(work string, n, tenants, msgs, sessions, rounds int, fillOnly, pruneAB bool, cpuProfile string) {
	sink, err := testkit.NewMX("127.0.0.2", 0, testkit.Script{DiscardData: true})
	if err != nil {
		log.Fatal(err)
	}
	defer sink.Close()
	os.RemoveAll(filepath.Join(work, "empty")) // from an earlier run
	empty, err := benchkit.Start(filepath.Join(work, "empty"), "--smarthost", sink.Addr())
	if err != nil {
		log.Fatal(err)
	}
	defer empty.Stop()
	full, err := benchkit.Start(filepath.Join(work, "full"), "--smarthost", sink.Addr())
	if err != nil {
		log.Fatal(err)
	}
	defer full.Stop()
	full.Stop()
	db := filepath.Join(full.Dir, "posthorn.db")
	filled := filepath.Join(work, fmt.Sprintf("filled-%d", n))
	t0 := time.Now()
	if _, err := os.Stat(filled); err == nil {
		fmt.Printf("events: reusing the %d rows of %s\n", n, db)
	} else {
		if err := fillEvents(db, n, tenants); err != nil {
			log.Fatal(err)
		}
		os.WriteFile(filled, nil, 0o600)
		fmt.Printf("events: %d rows written in %s\n", n, time.Since(t0).Round(time.Second))
	}
	fi, _ := os.Stat(db)
	fmt.Printf("database %.1f GiB\n", float64(fi.Size())/(1<<30))
	if fillOnly {
		return
	}

	body := "Subject: bench\r\n\r\n" + strings.Repeat(strings.Repeat("x", 75)+"\r\n", 4096/77)
	run := func(p *benchkit.Posthorn) (rate float64, lat []time.Duration, cpu time.Duration) {
		cpu0 := procCPU(p.PID())
		var next atomic.Int64
		var wg sync.WaitGroup
		var mu sync.Mutex
		start := time.Now()
		for range sessions {
			wg.Add(1)
			go func() {
				defer wg.Done()
				l, err := p.Inject(&next, msgs, "app@app.test", body)
				if err != nil {
					log.Fatal(err)
				}
				mu.Lock()
				lat = append(lat, l...)
				mu.Unlock()
			}()
		}
		wg.Wait()
		return float64(msgs) / time.Since(start).Seconds(), lat, procCPU(p.PID()) - cpu0
	}
	type result struct {
		rates []float64
		lat   []time.Duration
		cpu   time.Duration
	}
	// With -cpuprofile, the full server's CPU profile of its first
	// measured round of each phase (the seconds a round takes at
	// 2,000 msg/s), to PROFILE.accept and PROFILE.prune.
	profileRound := func(p *benchkit.Posthorn, path string) {
		secs := max(1, msgs/2000)
		go func() {
			if err := adminGet(filepath.Join(p.Dir, "admin.sock"), fmt.Sprintf("/debug/pprof/profile?seconds=%d", secs), path); err != nil {
				log.Printf("cpu profile: %v", err)
			}
		}()
	}
	// compare runs the rounds on a and b in turn; the profile is b's.
	compare := func(title string, a, b *benchkit.Posthorn, names [2]string, profile string) {
		var res [2]result
		run(a) // warm both up (the first round after a start is slow)
		run(b)
		for r := range rounds {
			for i, p := range []*benchkit.Posthorn{a, b} {
				if r%2 == 1 {
					i = 1 - i // alternate which goes first
					p = []*benchkit.Posthorn{a, b}[i]
				}
				if i == 1 && r == 0 && profile != "" {
					profileRound(p, profile)
				}
				rate, lat, cpu := run(p)
				res[i].rates = append(res[i].rates, rate)
				res[i].lat = append(res[i].lat, lat...)
				res[i].cpu += cpu
			}
		}
		fmt.Printf("%s (%d rounds of %d messages, %d sessions; load average %s):\n", title, rounds, msgs, sessions, loadavg())
		var p99 [2]time.Duration
		for i, x := range res {
			slices.Sort(x.lat)
			p99[i] = benchkit.Percentile(x.lat, 99)
			fmt.Printf("  %-22s accept %6.0f msg/s (median of %v)  p50 %s  p99 %s  server CPU %.0f µs/msg\n", names[i], benchkit.Median(x.rates),
				roundAll(x.rates), benchkit.Percentile(x.lat, 50).Round(10*time.Microsecond), p99[i].Round(10*time.Microsecond),
				float64(x.cpu.Microseconds())/float64(rounds*msgs))
		}
		fmt.Printf("  ratio %s/%s: rate %.2f, p99 %.2f\n", names[1], names[0], benchkit.Median(res[1].rates)/benchkit.Median(res[0].rates),
			float64(p99[1])/float64(p99[0]))
	}
	cfg := filepath.Join(work, "retention.toml")
	if err := os.WriteFile(cfg, []byte("events_retention = \"480h\"\n"), 0o600); err != nil {
		log.Fatal(err)
	}
	if pruneAB {
		empty.Stop()
		pruneBeside(full, cfg, sink.Addr(), func(a, b *benchkit.Posthorn) {
			compare("one database, without and with pruning", a, b, [2]string{fmt.Sprintf("%d events", n), fmt.Sprintf("%d events, pruning", n)},
				withSuffix(cpuProfile, ".prune"))
		})
		return
	}
	t0 = time.Now()
	if err := full.Restart(10 * time.Minute); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("full server listening %s after start\n", time.Since(t0).Round(time.Millisecond))
	waitMetrics(full, t0)
	compare("acceptance", empty, full, [2]string{"empty", fmt.Sprintf("%d events", n)}, withSuffix(cpuProfile, ".accept"))

	// Retention: restart the full server keeping 20 of the 30 days.
	ro, err := sql.Open("sqlite3", "file:"+db+"?mode=ro&_busy_timeout=10000")
	if err != nil {
		log.Fatal(err)
	}
	defer ro.Close()
	oldest := func() int64 {
		var id int64
		if err := ro.QueryRow("SELECT min(id) FROM events").Scan(&id); err != nil {
			log.Fatal(err)
		}
		return id
	}
	if err := full.RestartWith(10*time.Minute, "--config", cfg); err != nil {
		log.Fatal(err)
	}
	waitMetrics(full, time.Now())
	from, t0 := oldest(), time.Now()
	compare("retention pruning (events_retention 20 days)", empty, full, [2]string{"empty", fmt.Sprintf("%d events, pruning", n)}, withSuffix(cpuProfile, ".prune"))
	to := oldest()
	fmt.Printf("  pruned while measured: about %d events in %s (%.0f/s); %d left to prune\n", to-from, time.Since(t0).Round(time.Second),
		float64(to-from)/time.Since(t0).Seconds(), max(0, int64(n)/3-to))
}

// pruneBeside (-prune-ab) copies the full server's stopped database and
// serves both, the original as it is and the copy with retention, so
// that compare measures what pruning alone does to acceptance: the same
// events, the same file size, one of them pruning.
func pruneBeside(full *benchkit.Posthorn, cfg, smarthost string, compare func(a, b *benchkit.Posthorn)) {
	work := filepath.Dir(full.Dir)
	dup := work + "-pruning"
	os.RemoveAll(dup)
	t0 := time.Now()
	if out, err := exec.Command("cp", "-a", work, dup).CombinedOutput(); err != nil {
		log.Fatalf("copy %s: %v %s", work, err, out)
	}
	defer os.RemoveAll(dup)
	fmt.Printf("copied the database in %s\n", time.Since(t0).Round(time.Second))
	if err := full.Restart(10 * time.Minute); err != nil {
		log.Fatal(err)
	}
	waitMetrics(full, time.Now())
	pruning, err := benchkit.StartBin(full.Bin, dup, "--smarthost", smarthost, "--config", cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer pruning.Stop()
	waitMetrics(pruning, time.Now())
	dupDB := filepath.Join(pruning.Dir, "posthorn.db")
	ro, err := sql.Open("sqlite3", "file:"+dupDB+"?mode=ro&_busy_timeout=10000")
	if err != nil {
		log.Fatal(err)
	}
	defer ro.Close()
	oldest := func() (id int64) {
		if err := ro.QueryRow("SELECT min(id) FROM events").Scan(&id); err != nil {
			log.Fatal(err)
		}
		return id
	}
	from, t1 := oldest(), time.Now()
	compare(full, pruning)
	fmt.Printf("  pruned while measured: about %d events in %s (%.0f/s)\n", oldest()-from, time.Since(t1).Round(time.Second),
		float64(oldest()-from)/time.Since(t1).Seconds())
}

// waitMetrics waits until /metrics answers: the server brings its
// counters up to date after it starts, in the background (from the
// counters it saved when it stopped, or, with none saved, by reading the
// whole event history: minutes with tens of millions of events).
func waitMetrics(p *benchkit.Posthorn, since time.Time) {
	c := &http.Client{Timeout: time.Hour}
	resp, err := c.Get("http://" + p.HTTP + "/metrics")
	if err != nil {
		log.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	fmt.Printf("  /metrics answered %s after start (the counters brought up to date)\n", time.Since(since).Round(time.Millisecond))
}

func withSuffix(path, suffix string) string {
	if path == "" {
		return ""
	}
	return path + suffix
}

func roundAll(xs []float64) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = float64(int(x))
	}
	return out
}

// fillEvents writes n events into the database at path, the server
// stopped. Rows come in ID order with times rising over the last 30 days:
// two per message (accepted, then delivered, deferred or bounced).
func fillEvents(path string, n, tenants int) error {
	db, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	rows, err := db.Query(`SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' AND sql IS NOT NULL`)
	if err != nil {
		return err
	}
	var indexes [][2]string
	for rows.Next() {
		var x [2]string
		if err := rows.Scan(&x[0], &x[1]); err != nil {
			return err
		}
		indexes = append(indexes, x)
	}
	rows.Close()
	for _, q := range []string{"PRAGMA journal_mode=OFF", "PRAGMA synchronous=OFF", "PRAGMA cache_size=-1000000"} {
		if _, err := db.Exec(q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	for _, x := range indexes {
		if _, err := db.Exec("DROP INDEX " + x[0]); err != nil {
			return err
		}
	}
	now := time.Now().UnixMilli()
	span := int64(30*24*time.Hour/time.Millisecond) - 60_000 // all inside the default retention
	const chunk = 1_000_000
	for done := 0; done < n; done += chunk {
		m := min(chunk, n-done)
		// i counts events from 0; message k = i/2.
		q := fmt.Sprintf(`WITH RECURSIVE c(i) AS (SELECT %d UNION ALL SELECT i+1 FROM c WHERE i+1 < %d),
			e(i, k, at, t, h) AS (SELECT i, i/2, %d + i*%d/%d, CASE WHEN i%%2 = 0 THEN 0 WHEN (i/2)%%20 = 1 THEN 2 WHEN (i/2)%%50 = 3 THEN 3 ELSE 1 END,
				((i/2)*2654435761) %% 4294967296 FROM c)
			INSERT INTO events (id, at, type, tenant_id, message_id, delivery_id, recipient, attempt, mx, code, enhanced, text, detail, domain, destination)
			SELECT i+1, at,
				CASE t WHEN 0 THEN 'accepted' WHEN 1 THEN 'delivered' WHEN 2 THEN 'deferred' ELSE 'bounced' END,
				printf('01JTENANT%%017d', k %% %d),
				printf('%%010X%%016X', at, k),
				k+1,
				printf('u%%08x@d%%04d.example.com', h, k %% 5000),
				CASE t WHEN 0 THEN 0 ELSE 1 END,
				CASE t WHEN 0 THEN '' ELSE printf('mx%%d.d%%04d.example.com', k %% 3, k %% 5000) END,
				CASE t WHEN 0 THEN 0 WHEN 1 THEN 250 WHEN 2 THEN 451 ELSE 550 END,
				CASE t WHEN 0 THEN '' WHEN 1 THEN '2.0.0' WHEN 2 THEN '4.7.1' ELSE '5.1.1' END,
				CASE t WHEN 0 THEN '' WHEN 1 THEN printf('2.0.0 Ok: queued as %%08X', h) WHEN 2 THEN '4.7.1 Try again later'
					ELSE '5.1.1 The email account that you tried to reach does not exist' END,
				'',
				printf('d%%04d.example.com', k %% 5000),
				CASE t WHEN 0 THEN '' ELSE printf('provider%%d', k %% 20) END
			FROM e`, done, done+m, now-span, span, n, tenants)
		if _, err := db.Exec(q); err != nil {
			return fmt.Errorf("fill events: %w", err)
		}
	}
	for _, x := range indexes {
		if _, err := db.Exec(x[1]); err != nil {
			return fmt.Errorf("%s: %w", x[1], err)
		}
	}
	// A schema with the late index of events' domains
	// (internal/store/sqlite/lateindex.go) gets it filled as the
	// migration would.
	var late int
	if err := db.QueryRow(`SELECT count(*) FROM sqlite_master WHERE name = 'events_by_domain'`).Scan(&late); err != nil {
		return err
	}
	if late > 0 {
		for _, q := range []string{
			`DELETE FROM events_by_domain`,
			`DELETE FROM events_by_domain_recent`,
			`INSERT INTO events_by_domain (edomain, eid) SELECT domain, id FROM events WHERE domain != '' ORDER BY domain, id`,
		} {
			if _, err := db.Exec(q); err != nil {
				return fmt.Errorf("%s: %w", q, err)
			}
		}
	}
	_, err = db.Exec("PRAGMA journal_mode=WAL")
	return err
}
