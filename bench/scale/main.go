// Command scale measures posthorn with large suppression lists
// (-suppressions N entries over -tenants tenants, addresses in random
// order as real lists come):
//
//  1. import: one CSV file per tenant through `posthorn suppression import`
//     against a running server: wall time, lines/s, the server's peak RSS;
//  2. restart: time until the server listens again and until it has
//     loaded the address lists in the background (it answers from the
//     store meanwhile), its RSS sampled every second for -settle (peak and
//     steady);
//  3. lookups: with the server stopped, the list loaded in this process
//     from the same database (as the server does), the latency of
//     List.Check, the accept-time call, for addresses not in the list (the
//     common case) and for listed ones in another case (a hash hit,
//     confirmed in the store): p50, p99, p99.9, max.
//
// With -queue N it measures a queue of N pending deliveries instead
// (queue.go). With -events N it measures acceptance against an events
// table of N rows (events.go).
//
// Run from the project root: go run ./bench/scale -suppressions 10000000,
// go run ./bench/scale -queue 1000000 or go run ./bench/scale -events 5000000
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/posthorn/posthorn/bench/benchkit"
	"github.com/posthorn/posthorn/internal/store/sqlite"
	"github.com/posthorn/posthorn/internal/suppress"
)

func main() {
	n := flag.Int("suppressions", 1_000_000, "entries in all")
	tenants := flag.Int("tenants", 10, "tenants the entries are spread over")
	lookups := flag.Int("lookups", 200_000, "Check calls per kind (misses, hits)")
	settle := flag.Duration("settle", 10*time.Second, "how long RSS is sampled after the restart")
	keep := flag.Bool("keep", false, "keep the working directory")
	var q queueRun
	flag.IntVar(&q.n, "queue", 0, "instead of suppressions: queue this many messages (queue.go)")
	flag.IntVar(&q.domains, "domains", 5000, "-queue: destination domains")
	flag.IntVar(&q.batch, "batch", 5000, "-queue: messages per bulk request")
	flag.IntVar(&q.clients, "clients", 4, "-queue: bulk requests at once")
	flag.IntVar(&q.high, "high", 200, "-queue: fresh high-lane messages sent while the queue drains")
	flag.DurationVar(&q.due, "due", 0, "-queue: send_at after the start (0: 2m + 1s per 1,000 messages)")
	flag.DurationVar(&q.drain, "drain", 3*time.Minute, "-queue: how long to watch the drain (0: until the queue is empty)")
	flag.StringVar(&q.heapProfile, "heapprofile", "", "-queue: save the server's heap profile after the injection here")
	flag.StringVar(&q.cpuProfile, "cpuprofile", "", "-queue: save a CPU profile of the injection's second half here; -events: of a round of the full server in each phase, here plus .accept and .prune")
	flag.BoolVar(&q.mailLog, "maillog", false, "-queue: run the server with its mail log (log level info) and print the slowest high-lane deliveries' lines (their delays)")
	flag.BoolVar(&q.injectOnly, "inject-only", false, "-queue: stop after the injection and the database size")
	events := flag.Int("events", 0, "instead: acceptance with this many rows in the events table (events.go)")
	eventTenants := flag.Int("event-tenants", 50, "tenants the events are spread over")
	msgs := flag.Int("n", 5000, "with -events: messages per round")
	sessions := flag.Int("sessions", 10, "with -events: SMTP sessions")
	rounds := flag.Int("rounds", 4, "with -events: rounds per server")
	workDir := flag.String("work", "", "with -events: keep the databases here and reuse a filled one")
	fillOnly := flag.Bool("fill-only", false, "with -events: stop after filling the events table")
	pruneAB := flag.Bool("prune-ab", false, "with -events: compare the full database with a copy of it that prunes, instead")
	flag.Parse()
	q.settle = *settle
	if q.due == 0 {
		q.due = 2*time.Minute + time.Duration(q.n/1000)*time.Second
	}

	if *events > 0 && *workDir != "" {
		if err := os.MkdirAll(*workDir, 0o700); err != nil {
			log.Fatal(err)
		}
		eventsBench(*workDir, *events, *eventTenants, *msgs, *sessions, *rounds, *fillOnly, *pruneAB, q.cpuProfile)
		return
	}
	work, err := os.MkdirTemp("", "posthorn-scale-")
	if err != nil {
		log.Fatal(err)
	}
	if !*keep {
		defer os.RemoveAll(work)
	} else {
		fmt.Println("working directory:", work)
	}
	if q.n > 0 {
		if err := runQueue(q, work); err != nil {
			log.Fatal(err)
		}
		return
	}
	if *events > 0 {
		eventsBench(work, *events, *eventTenants, *msgs, *sessions, *rounds, *fillOnly, *pruneAB, q.cpuProfile)
		return
	}
	p, err := benchkit.Start(work, "--log-level", "info") // for "suppression lists loaded"
	if err != nil {
		log.Fatal(err)
	}
	defer p.Stop()
	ids := make([]string, *tenants)
	for t := range ids {
		out, err := exec.Command(p.Bin, "tenant", "add", tenantName(t), "--data-dir", p.Dir, "--json").Output()
		if err != nil {
			log.Fatalf("tenant add: %v", err)
		}
		var res struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(out, &res); err != nil {
			log.Fatalf("tenant add: %s: %v", out, err)
		}
		ids[t] = res.ID
	}
	per := *n / *tenants
	var files []string
	var bytes int64
	for t := range ids {
		f, size, err := writeCSV(work, t, per)
		if err != nil {
			log.Fatal(err)
		}
		files, bytes = append(files, f), bytes+size
	}
	fmt.Printf("suppressions: %d entries over %d tenants, CSV %.0f MiB\n", per**tenants, *tenants, float64(bytes)/(1<<20))

	// 1. Import.
	mon := watchRSS(p.PID())
	serverCPU0 := procCPU(p.PID())
	var cliCPU time.Duration
	start := time.Now()
	for t, f := range files {
		cmd := exec.Command(p.Bin, "suppression", "import", f, "--tenant", tenantName(t), "--data-dir", p.Dir, "--json")
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			log.Fatalf("import %s: %v", f, err)
		}
		cliCPU += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		var res struct {
			Added  int      `json:"added"`
			Errors []string `json:"errors"`
		}
		if err := json.Unmarshal(out, &res); err != nil || res.Added != per || len(res.Errors) > 0 {
			log.Fatalf("import %s: %s (%v)", f, out, err)
		}
	}
	took := time.Since(start)
	serverCPU := procCPU(p.PID()) - serverCPU0
	peak, _ := mon.stop()
	lines := float64(per * *tenants)
	fmt.Printf("import: %d lines in %s = %.0f lines/s; server RSS peak %s\n", per**tenants, took.Round(time.Millisecond),
		lines/took.Seconds(), mib(peak))
	fmt.Printf("import CPU: server %s (%.1f µs/line), CLI %s (%.1f µs/line); load average now %s\n",
		serverCPU.Round(time.Millisecond), float64(serverCPU.Microseconds())/lines,
		cliCPU.Round(time.Millisecond), float64(cliCPU.Microseconds())/lines, loadavg())

	// 2. Restart. The first start logged "suppression lists loaded" too
	// (with none): only what the restart logs counts.
	logPath := filepath.Join(work, "posthorn.log")
	logBefore := 0
	if b, err := os.ReadFile(logPath); err == nil {
		logBefore = len(b)
	}
	start = time.Now()
	if err := p.Restart(30 * time.Minute); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("restart: listening after %s\n", time.Since(start).Round(time.Millisecond))
	// The addresses load in the background; the server logs when.
	for end := time.Now().Add(30 * time.Minute); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if b, _ := os.ReadFile(logPath); len(b) > logBefore && strings.Contains(string(b[logBefore:]), "suppression lists loaded") {
			fmt.Printf("restart: address lists loaded in the background %s after the start\n", time.Since(start).Round(100*time.Millisecond))
			break
		}
	}
	mon = watchRSS(p.PID())
	time.Sleep(*settle)
	peak, steady := mon.stop()
	hwm := procKB(p.PID(), "VmHWM:")
	fmt.Printf("server RSS with the lists loaded: steady %s, peak while sampled %s, peak since start (VmHWM) %s\n", mib(steady), mib(peak), mib(hwm))
	p.Stop()

	// 3. Lookups, in process.
	ctx := context.Background()
	st, err := sqlite.Open(filepath.Join(p.Dir, "posthorn.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start = time.Now()
	l, err := suppress.Load(ctx, st)
	if err != nil {
		log.Fatal(err)
	}
	loadTook := time.Since(start)
	runtime.GC()
	runtime.ReadMemStats(&after)
	fmt.Printf("in process: Load %s, list heap %s (%.1f bytes/entry)\n", loadTook.Round(time.Millisecond),
		mib(int64(after.HeapAlloc-before.HeapAlloc)/1024), float64(after.HeapAlloc-before.HeapAlloc)/float64(per**tenants))
	r := rand.New(rand.NewPCG(7, 7))
	for _, hits := range []bool{false, true} {
		lat := make([]time.Duration, 0, *lookups)
		for range *lookups {
			t := r.IntN(*tenants)
			var addr string
			if hits {
				addr = strings.ToUpper(address(t, r.IntN(per)))
			} else {
				addr = address(t, per+r.IntN(per)) // never imported
			}
			t0 := time.Now()
			_, ok := l.Check(ids[t], addr)
			lat = append(lat, time.Since(t0))
			if ok != hits {
				log.Fatalf("Check(%s) = %v, want %v", addr, ok, hits)
			}
		}
		slices.Sort(lat)
		kind := "miss (not listed)"
		if hits {
			kind = "hit (listed, other case)"
		}
		fmt.Printf("Check %-25s p50 %s  p99 %s  p99.9 %s  max %s\n", kind, benchkit.Percentile(lat, 50), benchkit.Percentile(lat, 99),
			benchkit.Percentile(lat, 99.9), lat[len(lat)-1])
	}
}

func tenantName(t int) string { return fmt.Sprintf("scale%02d", t) }

// address is tenant t's entry i: a random-looking local part, so that
// entries arrive in random order of the store's key.
func address(t, i int) string {
	x := uint64(t)<<40 | uint64(i)
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return fmt.Sprintf("u%016x@d%03d.example.com", x, i%500)
}

func writeCSV(dir string, t, n int) (string, int64, error) {
	path := filepath.Join(dir, fmt.Sprintf("suppressions-%02d.csv", t))
	f, err := os.Create(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	w.WriteString("entry,reason,detail\n")
	for i := range n {
		w.WriteString(address(t, i))
		if i%10 == 0 {
			w.WriteString(",hard_bounce,550 5.1.1 user unknown\n")
		} else {
			w.WriteString(",unsubscribe\n")
		}
	}
	if err := w.Flush(); err != nil {
		return "", 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		return "", 0, err
	}
	return path, fi.Size(), nil
}

// rssWatch samples a process's RSS every second.
type rssWatch struct {
	stopc        chan struct{}
	wg           sync.WaitGroup
	peak, latest int64 // KiB
}

func watchRSS(pid int) *rssWatch {
	w := &rssWatch{stopc: make(chan struct{})}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			if kb := procKB(pid, "VmRSS:"); kb > 0 {
				w.latest, w.peak = kb, max(w.peak, kb)
			}
			select {
			case <-w.stopc:
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

// stop ends the sampling and returns the peak and the last sample.
func (w *rssWatch) stop() (peak, latest int64) {
	close(w.stopc)
	w.wg.Wait()
	return w.peak, w.latest
}

// procKB reads a "Name: N kB" line of /proc/PID/status.
func procKB(pid int, name string) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == name {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb
		}
	}
	return 0
}

// procCPU is the user and system CPU time a process used so far
// (/proc/PID/stat, in clock ticks of 1/100 s).
func procCPU(pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The fields after the command name, which is in parentheses.
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

func loadavg() string {
	data, _ := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(data)); len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "?"
}

func mib(kb int64) string { return fmt.Sprintf("%.0f MiB", float64(kb)/1024) }
