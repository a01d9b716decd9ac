// Command cluster measures posthorn on a shared PostgreSQL store with 1, 2
// and 3 nodes against one node on its embedded SQLite store, in one run:
//
//	SMTP sessions --> posthorn node(s) --> fake MX sink (127.0.0.2, discards)
//	                       |
//	                  PostgreSQL (pgtest: Debian's binaries, fsync on)
//
// For each setup it injects -n messages (one recipient, -size bytes) over
// -sessions authenticated SMTP sessions spread round robin over the nodes,
// and reports
//
//	accept   n / time until every message got its 250 (durably queued)
//	e2e      n / time until the sink accepted n messages (all delivered)
//	ratios   of both to the SQLite node's, from the same round
//	cpu      CPU (user+sys, /proc) per message of the posthorn processes and
//	         of the PostgreSQL server's processes, over accept+delivery
//	xact     transactions committed in the database per message
//	         (pg_stat_database xact_commit; every autocommit statement,
//	         read-only ones included, is one: about the round trips that
//	         are statements), rows written per message, WAL bytes per
//	         message and WAL flushes (fsyncs) per message (pg_stat_wal)
//	waits    where the database's active backends were, sampled every 50ms
//	         from pg_stat_activity (CPU = active and not waiting)
//	other    CPU used by processes outside the benchmark: the machine is
//	         shared, so rates only compare within one run
//
// Setups run in rounds (sqlite, pg1, pg2, pg3, then again) so noise from
// other work on the machine hits them alike; the summary is the median.
// At the end pgbench measures the server's commit rate on this disk
// (-pgbench 0 skips it). -profile FILE saves a 10s CPU profile of node1
// of the largest PostgreSQL setup in the last round (go tool pprof -top).
// -trips puts a proxy between the nodes and PostgreSQL that counts round
// trips (simple queries and Syncs) per message; it slows the nodes, so
// take rates from a run without it. -domains spreads the recipients over
// domains, or gives each node its own (per-node), to show what the
// shared daily rollup row costs.
//
// Run from the project root (as root, PostgreSQL runs as user postgres):
//
//	go run ./bench/cluster [-n 3000] [-sessions 20] [-rounds 1] [-nodes 1,2,3]
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
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/posthorn/posthorn/bench/benchkit"
	"github.com/posthorn/posthorn/internal/testkit"
	"github.com/posthorn/posthorn/internal/testkit/pgtest"
)

type options struct {
	config            string // TOML every node reads
	domains           string
	n, sessions, size int
	timeout           time.Duration
	profile           string
	trips             bool // nodes reach PostgreSQL through a round-trip counter
}

// result is one setup's run.
type result struct {
	setup            string
	accept, e2e      float64 // msg/s
	delivered        int     // messages the sink accepted (duplicates make it > n)
	maxConns         int     // most connections the sink saw at once
	conns            int     // connections the sink accepted
	phCPU, pgCPU     float64 // ms per message
	xact, rows       float64 // per message
	walBytes, walSyn float64 // per message
	otherCores       float64 // cores used by processes outside the benchmark
	idlePH, idlePG   float64 // CPU ms per second while idle, before the load
	waits            map[string]int
	trips            float64 // round trips to PostgreSQL per message (-trips)
}

func main() {
	var o options
	flag.IntVar(&o.n, "n", 3000, "messages per setup and round")
	flag.IntVar(&o.sessions, "sessions", 20, "concurrent SMTP sessions, spread over the nodes")
	flag.IntVar(&o.size, "size", 4096, "message bytes")
	rounds := flag.Int("rounds", 1, "rounds over all setups")
	nodeList := flag.String("nodes", "1,2,3", "node counts on PostgreSQL")
	flag.DurationVar(&o.timeout, "timeout", 15*time.Minute, "longest wait for delivery per setup")
	pgbenchFor := flag.Duration("pgbench", 10*time.Second, "pgbench run length per client count (0: skip)")
	flag.StringVar(&o.domains, "domains", "1", `recipient domains: a count K (message i goes to d<i mod K>.test) or "per-node" (node k's sessions send to node<k>.test)`)
	flag.BoolVar(&o.trips, "trips", false, "count the nodes' round trips to PostgreSQL through a proxy (slows them: rates are not comparable)")
	flag.StringVar(&o.profile, "profile", "", "save a CPU profile of node1 of the largest setup here")
	flag.Parse()
	if k, err := strconv.Atoi(o.domains); o.domains != "per-node" && (err != nil || k < 1) {
		log.Fatalf("-domains %q: want a count or per-node", o.domains)
	}
	var counts []int
	for _, f := range strings.Split(*nodeList, ",") {
		k, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || k < 1 {
			log.Fatalf("-nodes %q: want counts like 1,2,3", *nodeList)
		}
		counts = append(counts, k)
	}

	work, err := os.MkdirTemp("", "posthorn-bench-cluster-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(work)
	// Every session logs in at once from 127.0.0.1: logins in flight
	// count against max_auth_failures.
	o.config = filepath.Join(work, "posthorn.toml")
	if err := os.WriteFile(o.config, []byte("[smtp]\nmax_auth_failures = 10000\n"), 0o600); err != nil {
		log.Fatal(err)
	}
	bin, err := benchkit.Build(work)
	if err != nil {
		log.Fatal(err)
	}
	pg, err := pgtest.Start()
	if err != nil {
		log.Fatalf("start PostgreSQL: %v", err)
	}
	defer pg.Stop()
	pm, err := postmasterPID(pg)
	if err != nil {
		log.Fatal(err)
	}
	ver, _ := queryString(pg.URL("postgres"), "SELECT current_setting('server_version')")
	fmt.Printf("cluster bench: %d messages x %d B to %s recipient domain(s), %d sessions, %d round(s), PostgreSQL %s (fsync on, synchronous_commit on), %d CPUs\n",
		o.n, o.size, o.domains, o.sessions, *rounds, ver, ncpu())

	body := "Subject: bench\r\n\r\n" + strings.Repeat(strings.Repeat("x", 74)+"\r\n", o.size/76)
	all := map[string][]result{}
	var order []string
	for r := 1; r <= *rounds; r++ {
		res, err := runSQLite(bin, work, o, body)
		if err != nil {
			log.Fatalf("sqlite: %v", err)
		}
		report(res)
		all[res.setup] = append(all[res.setup], res)
		if r == 1 {
			order = append(order, res.setup)
		}
		for i, k := range counts {
			prof := ""
			if r == *rounds && i == len(counts)-1 {
				prof = o.profile
			}
			res, err := runPostgres(bin, work, pg, pm, k, o, body, prof)
			if err != nil {
				log.Fatalf("postgres x%d: %v", k, err)
			}
			report(res)
			all[res.setup] = append(all[res.setup], res)
			if r == 1 {
				order = append(order, res.setup)
			}
		}
	}
	summary(order, all)
	if *pgbenchFor > 0 {
		if err := runPgbench(pg, *pgbenchFor); err != nil {
			log.Fatalf("pgbench: %v", err)
		}
	}
}

// runSQLite measures one node on its embedded store.
func runSQLite(bin, work string, o options, body string) (result, error) {
	dir, err := os.MkdirTemp(work, "sqlite-")
	if err != nil {
		return result{}, err
	}
	defer os.RemoveAll(dir)
	sink, err := testkit.NewMX("127.0.0.2", 0, testkit.Script{DiscardData: true})
	if err != nil {
		return result{}, err
	}
	defer sink.Close()
	p, err := benchkit.StartBin(bin, dir, "--config", o.config, "--smarthost", sink.Addr())
	if err != nil {
		return result{}, err
	}
	defer p.Stop()
	res := result{setup: "sqlite x1"}
	idle([]*benchkit.Posthorn{p}, 0, &res)
	before := sampleCPU([]*benchkit.Posthorn{p}, 0)
	if err := drive(&res, []*benchkit.Posthorn{p}, sink, o, body); err != nil {
		return res, err
	}
	after := sampleCPU([]*benchkit.Posthorn{p}, 0)
	before.into(&res, after, o.n)
	return res, nil
}

// runPostgres measures k nodes on a fresh database of pg.
func runPostgres(bin, work string, pg *pgtest.Server, pm, k int, o options, body, profile string) (result, error) {
	dir, err := os.MkdirTemp(work, fmt.Sprintf("pg%d-", k))
	if err != nil {
		return result{}, err
	}
	defer os.RemoveAll(dir)
	db, err := pg.CreateDatabase()
	if err != nil {
		return result{}, err
	}
	defer dropDatabase(pg, db)
	sink, err := testkit.NewMX("127.0.0.2", 0, testkit.Script{DiscardData: true})
	if err != nil {
		return result{}, err
	}
	defer sink.Close()
	url := pg.URL(db)
	var trips *tripCounter
	if o.trips {
		if trips, err = newTripCounter(fmt.Sprintf("127.0.0.1:%d", pg.Port())); err != nil {
			return result{}, err
		}
		defer trips.Close()
		url = strings.Replace(url, fmt.Sprintf(":%d/", pg.Port()), fmt.Sprintf(":%d/", trips.Port()), 1)
	}
	nodes, err := benchkit.StartCluster(bin, dir, url, k, "--config", o.config, "--smarthost", sink.Addr())
	if err != nil {
		return result{}, err
	}
	stopped := false
	stop := func() {
		if !stopped {
			for _, p := range nodes {
				p.Stop()
			}
			stopped = true
		}
	}
	defer stop()
	res := result{setup: fmt.Sprintf("postgres x%d", k)}
	idle(nodes, pm, &res)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mon, err := pgx.Connect(ctx, pg.URL(db))
	if err != nil {
		return res, err
	}
	defer mon.Close(context.Background())
	c0, err := dbCounters(ctx, mon, db)
	if err != nil {
		return res, err
	}
	before := sampleCPU(nodes, pm)
	var trips0 int64
	if trips != nil {
		trips0 = trips.trips.Load()
	}

	waits := map[string]int{}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the wait-event sampler
		defer wg.Done()
		sampleWaits(ctx, pg.URL(db), db, waits)
	}()
	if profile != "" {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select { // past the logins (argon2) at the start
			case <-time.After(3 * time.Second):
			case <-ctx.Done():
				return
			}
			if err := saveProfile(nodes[0], profile, 10*time.Second); err != nil {
				log.Printf("profile: %v", err)
			}
		}()
	}
	err = drive(&res, nodes, sink, o, body)
	cancel()
	wg.Wait()
	if err != nil {
		return res, err
	}
	after := sampleCPU(nodes, pm)
	before.into(&res, after, o.n)
	res.waits = waits
	if trips != nil {
		res.trips = float64(trips.trips.Load()-trips0) / float64(o.n)
	}

	// Stopped nodes' backends exit and flush their statistics.
	stop()
	mctx, mcancel := context.WithTimeout(context.Background(), time.Minute)
	defer mcancel()
	if err := waitBackendsGone(mctx, mon, db); err != nil {
		return res, err
	}
	c1, err := dbCounters(mctx, mon, db)
	if err != nil {
		return res, err
	}
	n := float64(o.n)
	res.xact = float64(c1.xact-c0.xact) / n
	res.rows = float64(c1.rows-c0.rows) / n
	res.walBytes = float64(c1.wal-c0.wal) / n
	res.walSyn = float64(c1.walSync-c0.walSync) / n
	return res, nil
}

// drive injects o.n messages over o.sessions sessions spread over nodes
// and waits until the sink has them all.
func drive(res *result, nodes []*benchkit.Posthorn, sink *testkit.MXServer, o options, body string) error {
	var next atomic.Int64
	errs := make(chan error, o.sessions)
	start := time.Now()
	var wg sync.WaitGroup
	k, _ := strconv.Atoi(o.domains)
	for s := 0; s < o.sessions; s++ {
		node := s % len(nodes)
		rcpt := func(i int64) []string { return []string{fmt.Sprintf("r%d@d%d.test", i, i%int64(k))} }
		if o.domains == "per-node" {
			rcpt = func(i int64) []string { return []string{fmt.Sprintf("r%d@node%d.test", i, node+1)} }
		}
		wg.Add(1)
		go func(p *benchkit.Posthorn) {
			defer wg.Done()
			if _, err := p.InjectTo(&next, o.n, "app@app.test", rcpt, body); err != nil {
				errs <- err
			}
		}(nodes[node])
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return fmt.Errorf("inject: %w", err)
	}
	res.accept = float64(o.n) / time.Since(start).Seconds()
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	if err := sink.Wait(ctx, func() bool { return sink.Accepted() >= o.n }); err != nil {
		return fmt.Errorf("delivery: %d of %d after %v: %w", sink.Accepted(), o.n, o.timeout, err)
	}
	res.e2e = float64(o.n) / time.Since(start).Seconds()
	res.delivered, res.maxConns, res.conns = sink.Accepted(), sink.MaxActiveConnections(), sink.Connections()
	return nil
}

// ---- CPU from /proc

// idle measures the CPU the setup uses with no load, over 3s (heartbeats,
// polls), once the nodes had 2s to settle after start.
func idle(nodes []*benchkit.Posthorn, postmaster int, res *result) {
	time.Sleep(2 * time.Second)
	a := sampleCPU(nodes, postmaster)
	time.Sleep(3 * time.Second)
	b := sampleCPU(nodes, postmaster)
	sec := b.at.Sub(a.at).Seconds()
	res.idlePH = (b.posthorn - a.posthorn) * 1000 / hz / sec
	res.idlePG = (b.postgres - a.postgres) * 1000 / hz / sec
}

// cpuSample is CPU time in clock ticks: the posthorn nodes, the
// PostgreSQL server's process tree, this benchmark (with its sink) and
// the whole machine (busy).
type cpuSample struct {
	posthorn, postgres, self, busy float64
	at                             time.Time
}

func sampleCPU(nodes []*benchkit.Posthorn, postmaster int) cpuSample {
	s := cpuSample{at: time.Now()}
	for _, p := range nodes {
		u, _, _ := procCPU(p.PID())
		s.posthorn += u
	}
	if postmaster > 0 {
		s.postgres = treeCPU(postmaster)
	}
	u, _, _ := procCPU(os.Getpid())
	s.self = u
	s.busy = machineBusy()
	return s
}

func (b cpuSample) into(res *result, a cpuSample, n int) {
	ms := 1000 / float64(hz) / float64(n)
	res.phCPU = (a.posthorn - b.posthorn) * ms
	res.pgCPU = (a.postgres - b.postgres) * ms
	ours := (a.posthorn - b.posthorn) + (a.postgres - b.postgres) + (a.self - b.self)
	res.otherCores = (a.busy - b.busy - ours) / float64(hz) / a.at.Sub(b.at).Seconds()
}

const hz = 100 // USER_HZ on Linux

// procCPU is a process's utime+stime, its waited-for children's
// cutime+cstime, and its parent's pid.
func procCPU(pid int) (own, children float64, ppid int) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, 0
	}
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:]) // f[0] is field 3 (state)
	num := func(i int) float64 { v, _ := strconv.ParseFloat(f[i-3], 64); return v }
	return num(14) + num(15), num(16) + num(17), int(num(4))
}

// treeCPU is the CPU of the postmaster, of its children that ended (the
// postmaster waits for them: cutime) and of those alive.
func treeCPU(postmaster int) float64 {
	own, gone, _ := procCPU(postmaster)
	total := own + gone
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == postmaster {
			continue
		}
		if u, _, ppid := procCPU(pid); ppid == postmaster {
			total += u
		}
	}
	return total
}

// machineBusy is the machine's CPU ticks not idle nor waiting for I/O.
func machineBusy() float64 {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	f := strings.Fields(strings.SplitN(string(data), "\n", 2)[0])[1:]
	var busy float64
	for i, v := range f {
		if i == 3 || i == 4 || i >= 8 { // idle, iowait; guest time is in user already
			continue
		}
		x, _ := strconv.ParseFloat(v, 64)
		busy += x
	}
	return busy
}

func ncpu() int {
	data, _ := os.ReadFile("/proc/stat")
	return len(regexp.MustCompile(`(?m)^cpu\d+ `).FindAll(data, -1))
}

// ---- PostgreSQL

func postmasterPID(pg *pgtest.Server) (int, error) {
	dir, err := queryString(pg.URL("postgres"), "SHOW data_directory")
	if err != nil {
		return 0, err
	}
	data, err := os.ReadFile(filepath.Join(dir, "postmaster.pid"))
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(strings.SplitN(string(data), "\n", 2)[0]))
}

func queryString(url, q string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		return "", err
	}
	defer c.Close(ctx)
	var s string
	err = c.QueryRow(ctx, q).Scan(&s)
	return s, err
}

func dropDatabase(pg *pgtest.Server, db string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := pgx.Connect(ctx, pg.URL("postgres"))
	if err != nil {
		return
	}
	defer c.Close(ctx)
	c.Exec(ctx, "DROP DATABASE IF EXISTS "+db+" WITH (FORCE)")
}

type counters struct{ xact, rows, wal, walSync int64 }

// dbCounters reads the database's transaction and row counters and the
// server's WAL position and flush count. Statistics are read afresh.
func dbCounters(ctx context.Context, c *pgx.Conn, db string) (counters, error) {
	var k counters
	if _, err := c.Exec(ctx, "SELECT pg_stat_clear_snapshot()"); err != nil {
		return k, err
	}
	err := c.QueryRow(ctx, `SELECT d.xact_commit, d.tup_inserted + d.tup_updated + d.tup_deleted,
		pg_current_wal_lsn() - '0/0'::pg_lsn, w.wal_sync
		FROM pg_stat_database d, pg_stat_wal w WHERE d.datname = $1`, db).Scan(&k.xact, &k.rows, &k.wal, &k.walSync)
	if err != nil {
		return k, fmt.Errorf("read counters: %w", err)
	}
	return k, nil
}

// waitBackendsGone waits until only c is connected to db.
func waitBackendsGone(ctx context.Context, c *pgx.Conn, db string) error {
	for {
		var n int
		if _, err := c.Exec(ctx, "SELECT pg_stat_clear_snapshot()"); err != nil {
			return err
		}
		if err := c.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`, db).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d backends still connected: %w", n, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// sampleWaits counts, every 50ms until ctx ends, what db's active
// backends are doing (wait event, or CPU when not waiting), plus the WAL
// writer's.
func sampleWaits(ctx context.Context, url, db string, into map[string]int) {
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		return
	}
	defer c.Close(context.Background())
	for ctx.Err() == nil {
		rows, err := c.Query(ctx, `SELECT CASE WHEN backend_type = 'client backend' THEN '' ELSE backend_type || ' ' END ||
			coalesce(wait_event_type || ':' || wait_event, 'CPU')
			FROM pg_stat_activity
			WHERE (datname = $1 AND state = 'active' AND pid <> pg_backend_pid())
				OR (backend_type = 'walwriter' AND wait_event IS DISTINCT FROM 'WalWriterMain')`, db)
		if err != nil {
			return
		}
		ws, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return
		}
		into["samples"]++
		for _, w := range ws {
			into[w]++
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// saveProfile fetches a CPU profile of p through its admin socket.
func saveProfile(p *benchkit.Posthorn, file string, d time.Duration) error {
	sock := filepath.Join(p.Dir, "admin.sock")
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	resp, err := client.Get(fmt.Sprintf("http://admin/debug/pprof/profile?seconds=%d", int(d.Seconds())))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// runPgbench measures the server's commit rate on this disk: pgbench's
// simple-update transactions (-N) with 1 client (one commit waits for
// the previous flush) and with 16 (the server groups their flushes).
func runPgbench(pg *pgtest.Server, d time.Duration) error {
	db, err := pg.CreateDatabase()
	if err != nil {
		return err
	}
	defer dropDatabase(pg, db)
	tool, err := exec.LookPath("pgbench")
	if err != nil {
		tool = filepath.Join(pgtest.Binaries(), "pgbench")
	}
	if out, err := exec.Command(tool, "-i", "-q", "-s", "4", pg.URL(db)).CombinedOutput(); err != nil {
		return fmt.Errorf("init: %v: %s", err, out)
	}
	fmt.Println("\n==== pgbench on the same server (simple-update, -N: 3 statements and 1 commit per transaction)")
	tps := regexp.MustCompile(`tps = ([0-9.]+) \(without`)
	for _, clients := range []int{1, 16} {
		out, err := exec.Command(tool, "-N", "-c", strconv.Itoa(clients), "-j", "2", "-T", strconv.Itoa(int(d.Seconds())), pg.URL(db)).CombinedOutput()
		if err != nil {
			return fmt.Errorf("run: %v: %s", err, out)
		}
		m := tps.FindSubmatch(out)
		if m == nil {
			return fmt.Errorf("no tps in %s", out)
		}
		fmt.Printf("pgbench %2d client(s): %s commits/s\n", clients, m[1])
	}
	return nil
}

// ---- output

func report(r result) {
	fmt.Printf("%-12s accept %6.0f msg/s  e2e %6.0f msg/s  delivered %d (sink conns: %d at most, %d in all)  cpu/msg posthorn %.2f ms postgres %.2f ms",
		r.setup, r.accept, r.e2e, r.delivered, r.maxConns, r.conns, r.phCPU, r.pgCPU)
	if r.waits != nil {
		fmt.Printf("  xact/msg %.2f rows/msg %.1f WAL %.1f KiB/msg flushes/msg %.3f", r.xact, r.rows, r.walBytes/1024, r.walSyn)
		if r.trips > 0 {
			fmt.Printf(" round trips/msg %.2f", r.trips)
		}
	}
	fmt.Printf("  other load %.2f cores  idle cpu posthorn %.0f ms/s postgres %.0f ms/s\n", r.otherCores, r.idlePH, r.idlePG)
	if n := r.waits["samples"]; n > 0 {
		type kv struct {
			k string
			v int
		}
		var ws []kv
		for k, v := range r.waits {
			if k != "samples" {
				ws = append(ws, kv{k, v})
			}
		}
		sort.Slice(ws, func(i, j int) bool { return ws[i].v > ws[j].v })
		var parts []string
		for i, w := range ws {
			if i == 8 {
				break
			}
			parts = append(parts, fmt.Sprintf("%s %.2f", w.k, float64(w.v)/float64(n)))
		}
		fmt.Printf("%-12s backends busy per sample: %s\n", "", strings.Join(parts, ", "))
	}
}

func summary(order []string, all map[string][]result) {
	med := func(rs []result, f func(result) float64) float64 {
		xs := make([]float64, len(rs))
		for i, r := range rs {
			xs[i] = f(r)
		}
		return benchkit.Median(xs)
	}
	base := all["sqlite x1"]
	ba, be := med(base, func(r result) float64 { return r.accept }), med(base, func(r result) float64 { return r.e2e })
	fmt.Printf("\n==== medians (ratios to one node on SQLite)\n")
	fmt.Printf("%-12s %10s %7s %10s %7s %12s %12s %9s %9s %9s\n", "setup", "accept/s", "ratio", "e2e/s", "ratio",
		"ph cpu ms", "pg cpu ms", "xact/msg", "KiB WAL", "flush/msg")
	for _, s := range order {
		rs := all[s]
		a, e := med(rs, func(r result) float64 { return r.accept }), med(rs, func(r result) float64 { return r.e2e })
		fmt.Printf("%-12s %10.0f %6.2fx %10.0f %6.2fx %12.2f %12.2f %9.2f %9.1f %9.3f\n", s, a, a/ba, e, e/be,
			med(rs, func(r result) float64 { return r.phCPU }), med(rs, func(r result) float64 { return r.pgCPU }),
			med(rs, func(r result) float64 { return r.xact }), med(rs, func(r result) float64 { return r.walBytes })/1024,
			med(rs, func(r result) float64 { return r.walSyn }))
	}
}
