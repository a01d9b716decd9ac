// Command events measures the activity log at scale on this machine:
//
//   - export: -events events (default 1,000,000) written straight into a
//     posthorn's database, then exported through GET /v1/events as NDJSON;
//     it reports the time, the rate and the server's resident memory
//     (VmRSS sampled every 20ms) before and at its peak during the export,
//     which must stay flat: the server pages through the store and writes
//     as it goes.
//   - report: rollup rows holding the counts of -report-events events
//     (default 10,000,000) over 30 days, 2,000 domains and 20 tags, then
//     GET /v1/reports/deliverability by day, domain, destination and tag,
//     timed. For scale, the same by-domain numbers computed by scanning the
//     export's events table instead of the rollups.
//
// The bench fills the tables with SQL (through the schema the server
// migrated) to save time; the rollups' upkeep on the write path is
// measured by bench/ingest.
//
// Run from the project root: go run ./bench/events [-events 1000000]
package main

import (
	"bufio"
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	_ "github.com/mattn/go-sqlite3"

	"github.com/posthorn/posthorn/bench/benchkit"
)

func main() {
	nEvents := flag.Int("events", 1_000_000, "events to export")
	nReport := flag.Int("report-events", 10_000_000, "events the report's rollups count")
	flag.Parse()
	work, err := os.MkdirTemp("", "posthorn-events-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(work)
	p, err := benchkit.Start(work, "--smarthost", "127.0.0.1:1")
	if err != nil {
		log.Fatal(err)
	}
	defer p.Stop()
	tenant, err := defaultTenant(p)
	if err != nil {
		log.Fatal(err)
	}
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(p.Dir, "posthorn.db")+"?_busy_timeout=10000&_txlock=immediate")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)

	t0 := time.Now()
	if err := fillEvents(db, tenant, *nEvents); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("filled %d events in %s\n", *nEvents, time.Since(t0).Round(time.Millisecond))
	pid, err := serverPID(p.Dir)
	if err != nil {
		log.Fatal(err)
	}
	exportBench(p, pid, *nEvents)

	t0 = time.Now()
	rows, err := fillRollups(db, tenant, *nReport)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("filled rollups for %d events (%d rows) in %s\n", *nReport, rows, time.Since(t0).Round(time.Millisecond))
	from := time.Now().UTC().AddDate(0, 0, -29).Format(time.DateOnly)
	for _, g := range []string{"day", "domain", "destination", "tag"} {
		var rep struct {
			Rows  []json.RawMessage `json:"rows"`
			Total struct {
				Accepted int64 `json:"accepted"`
			} `json:"total"`
		}
		best := time.Duration(1 << 62)
		for i := 0; i < 3; i++ {
			t := time.Now()
			code, err := p.Call("GET", "/v1/reports/deliverability?from="+from+"&group_by="+g, nil, &rep)
			if err != nil || code != 200 {
				log.Fatalf("report by %s: %d %v", g, code, err)
			}
			best = min(best, time.Since(t))
		}
		fmt.Printf("report by %-11s over %d events: %d rows, %s (best of 3; total accepted %d)\n", g, *nReport, len(rep.Rows),
			best.Round(100*time.Microsecond), rep.Total.Accepted)
	}
	t := time.Now()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM (SELECT domain, type, count(*) FROM events GROUP BY domain, type)`).Scan(&n); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("for scale: by-domain counts scanning the %d-event table instead: %s\n", *nEvents, time.Since(t).Round(time.Millisecond))
}

func defaultTenant(p *benchkit.Posthorn) (string, error) {
	out, err := exec.Command(p.Bin, "tenant", "list", "--json", "--data-dir", p.Dir).Output()
	if err != nil {
		return "", fmt.Errorf("tenant list: %w", err)
	}
	var res struct {
		Items []struct {
			ID string `json:"id"`
		} `json:"items"`
	}
	if err := json.Unmarshal(out, &res); err != nil || len(res.Items) == 0 {
		return "", fmt.Errorf("tenant list %q: %v", out, err)
	}
	return res.Items[0].ID, nil
}

var types = []string{"queued", "deferred", "delivered", "delivered", "delivered", "bounced", "soft_bounced"}

// fillEvents writes n plausible events, 50,000 per transaction.
func fillEvents(db *sql.DB, tenant string, n int) error {
	start := time.Now().Add(-time.Duration(n) * time.Millisecond)
	for done := 0; done < n; {
		tx, err := db.Begin()
		if err != nil {
			return err
		}
		st, err := tx.Prepare(`INSERT INTO events (at, type, tenant_id, message_id, delivery_id, recipient, attempt, mx, code,
			enhanced, text, detail, domain, destination) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)`)
		if err != nil {
			return err
		}
		for i := 0; i < 50_000 && done < n; i, done = i+1, done+1 {
			dom := fmt.Sprintf("d%d.test", done%2000)
			typ := types[done%len(types)]
			code, text := 250, "2.0.0 Ok: queued as 4ABC"
			if typ == "deferred" || typ == "soft_bounced" {
				code, text = 451, "4.7.1 Try again later"
			} else if typ == "bounced" {
				code, text = 550, "5.1.1 The email account that you tried to reach does not exist"
			}
			if _, err := st.Exec(start.Add(time.Duration(done)*time.Millisecond).UnixMilli(), typ, tenant,
				fmt.Sprintf("01JBENCH%018d", done/2), done, fmt.Sprintf("user%d@%s", done, dom), 1, "mx1."+dom, code, "", text, "", dom,
				"provider"+strconv.Itoa(done%20)); err != nil {
				return err
			}
		}
		st.Close()
		if err := tx.Commit(); err != nil {
			return err
		}
	}
	return nil
}

// serverPID finds the serving posthorn by its data directory.
func serverPID(dir string) (int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		args := strings.Split(string(b), "\x00")
		if len(args) > 2 && args[1] == "serve" && strings.Contains(string(b), dir) {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("no posthorn serving %s", dir)
}

func rssKB(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

func exportBench(p *benchkit.Posthorn, pid, n int) {
	before := rssKB(pid)
	var peak atomic.Int64
	stop := make(chan struct{})
	go func() {
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if r := rssKB(pid); r > peak.Load() {
					peak.Store(r)
				}
			}
		}
	}()
	req, _ := http.NewRequest("GET", "http://"+p.HTTP+"/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+p.APIKey)
	req.Header.Set("Accept", "application/x-ndjson")
	t := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	var lines, bytes int64
	first := time.Duration(0)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var along []string // RSS as the export goes: flat, not growing with it
	for sc.Scan() {
		if lines == 0 {
			first = time.Since(t)
		}
		lines++
		bytes += int64(len(sc.Bytes())) + 1
		if lines%(int64(n)/5) == 0 {
			along = append(along, fmt.Sprintf("%d%%: %d MB", lines*100/int64(n), rssKB(pid)/1024))
		}
	}
	resp.Body.Close()
	el := time.Since(t)
	close(stop)
	if sc.Err() != nil || lines != int64(n) {
		log.Fatalf("export: %d lines of %d: %v", lines, n, sc.Err())
	}
	fmt.Printf("export NDJSON: %d events, %.0f MB in %s (%.0f events/s; first line after %s)\n", lines, float64(bytes)/1e6,
		el.Round(time.Millisecond), float64(lines)/el.Seconds(), first.Round(time.Millisecond))
	fmt.Printf("server RSS: %d MB before, %d MB peak during the export; along the way %s\n", before/1024, peak.Load()/1024,
		strings.Join(along, ", "))
}

// fillRollups writes the rollup rows n events over the last 30 days,
// 2,000 domains (each at one of 20 destinations) and 20 tags add up to.
func fillRollups(db *sql.DB, tenant string, n int) (int, error) {
	tx, err := db.Begin()
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	daily, err := tx.Prepare(`INSERT INTO rollup_daily (tenant_id, day, domain, destination, accepted, delivered, deferred, bounced,
		soft_bounced, complaints, unsubscribed, suppressed, dead_lettered) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)`)
	if err != nil {
		return 0, err
	}
	tags, err := tx.Prepare(`INSERT INTO rollup_tags (tenant_id, day, tag, accepted, delivered, deferred, bounced,
		soft_bounced, complaints, unsubscribed, suppressed, dead_lettered) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)`)
	if err != nil {
		return 0, err
	}
	today := time.Now().UTC().Unix() / 86400
	const days, domains, ntags = 30, 2000, 20
	per := int64(n / (days * domains)) // events per day and domain
	rows := 0
	r := rand.New(rand.NewPCG(1, 2))
	for d := int64(0); d < days; d++ {
		var dayTotal [9]int64
		for dom := 0; dom < domains; dom++ {
			// Of per events: 40% acceptances, 45% deliveries, 8% deferrals, the rest failures.
			acc := per * 40 / 100
			del := per*45/100 - int64(r.IntN(3))
			c := [9]int64{acc, del, per * 8 / 100, per * 3 / 100, per * 2 / 100, per / 1000, per / 500, per / 100, per / 200}
			dest := fmt.Sprintf("provider%d", dom%20)
			if _, err := daily.Exec(tenant, today-d, fmt.Sprintf("d%d.test", dom), "", acc, 0, 0, 0, 0, 0, 0, 0, 0); err != nil {
				return 0, err
			}
			if _, err := daily.Exec(tenant, today-d, fmt.Sprintf("d%d.test", dom), dest, 0, c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8]); err != nil {
				return 0, err
			}
			rows += 2
			for i := range c {
				dayTotal[i] += c[i]
			}
		}
		for tg := 0; tg < ntags; tg++ {
			c := dayTotal
			args := []any{tenant, today - d, fmt.Sprintf("tag%d", tg)}
			for _, v := range c {
				args = append(args, v/ntags)
			}
			if _, err := tags.Exec(args...); err != nil {
				return 0, err
			}
			rows++
		}
	}
	return rows, tx.Commit()
}
