package main

// The -queue mode: a queue of N pending one-recipient 1 KB messages across
// -domains destination domains (issue 14, item 3).
//
//  1. inject: N messages through POST /v1/messages/bulk (-batch per
//     request, -clients at once), all with one send_at (-due after the
//     start, long enough for the steps before the drain); the server's RSS
//     sampled every second (peak), then for -settle after (steady), and a
//     heap profile from the admin socket's pprof (-heapprofile); every
//     tenth of the run, the rate of that tenth with the server's CPU and
//     disk writes a recipient (the rate falls as the store grows: these
//     say what it falls on), and a CPU profile of the last half
//     (-cpuprofile); -inject-only stops after step 2;
//  2. database bytes per queued message (posthorn.db and its WAL);
//  3. restart: time from starting the process until SMTP greets and HTTP
//     answers, then RSS for -settle (peak and steady);
//  4. drain: once due, the queue goes to a fake MX (every domain has its
//     own MX name, all served by one fake MX host through the test DNS)
//     while -high fresh high-lane messages are sent one by one to random
//     domains of the queue; their accept-to-delivered latency p50/p99
//     (and the resolver's queries, retransmissions and failures),
//     the drain rate and RSS, for -drain (0: until the queue is empty).

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/posthorn/posthorn/bench/benchkit"
	"github.com/posthorn/posthorn/internal/testkit"
)

type queueRun struct {
	n, domains, batch, clients, high int
	mailLog                          bool // the server logs at info: the mail log's delays of the slowest
	due, settle, drain               time.Duration
	heapProfile, cpuProfile          string
	injectOnly                       bool
}

func domainName(i int) string { return fmt.Sprintf("d%04d.queue.test", i) }

func runQueue(q queueRun, work string) error {
	dns, err := testkit.NewDNS("127.0.0.1:0")
	if err != nil {
		return err
	}
	defer dns.Close()
	var prioMu sync.Mutex
	prioSent := map[string]time.Time{}
	prioTook := map[string]time.Duration{} // recipient -> accept to delivered
	var delivered atomic.Int64
	script := testkit.Script{DiscardData: true, Data: func(m *testkit.Message, _ int) testkit.Reply {
		now := time.Now()
		for _, r := range m.To {
			if strings.HasPrefix(r, "prio-") {
				prioMu.Lock()
				if t0, ok := prioSent[r]; ok {
					prioTook[r] = now.Sub(t0)
					delete(prioSent, r)
				}
				prioMu.Unlock()
			} else {
				delivered.Add(1)
			}
		}
		return testkit.Reply{}
	}}
	mx, err := testkit.NewMX("127.0.0.2", 0, script)
	if err != nil {
		return err
	}
	defer mx.Close()
	dns.SetA("mx.queue.test", "127.0.0.2")
	for i := range q.domains {
		d := domainName(i)
		dns.SetMX(d, testkit.MX{Pref: 10, Host: "mx." + d})
		dns.SetA("mx."+d, "127.0.0.2")
	}
	args := []string{"--dns-server", dns.Addr(), "--delivery-port", fmt.Sprint(mx.Port())}
	if q.mailLog {
		args = append(args, "--log-level", "info") // after benchkit's warn: the last one counts
	}
	p, err := benchkit.Start(work, args...)
	if err != nil {
		return err
	}
	defer p.Stop()

	// 1. Inject.
	start := time.Now()
	due := start.Add(q.due).UTC().Truncate(time.Second)
	text := strings.Repeat(strings.Repeat("x", 70)+"\n", 12) // with the headers, about 1 KB
	mon := watchRSS(p.PID())
	var next atomic.Int64
	var lastDue atomic.Int64 // a slow injection pushes send_at out (the API refuses one in the past)
	lastDue.Store(due.UnixNano())
	errc := make(chan error, q.clients)
	var done atomic.Int64 // messages accepted
	prog := watchProgress(p, q, &done)
	var wg sync.WaitGroup
	for range q.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				first := int(next.Add(int64(q.batch))) - q.batch
				if first >= q.n {
					return
				}
				at := due
				if time.Until(at) < 2*time.Minute {
					at = time.Now().Add(2 * time.Minute).Truncate(time.Second)
					for old := lastDue.Load(); old < at.UnixNano() && !lastDue.CompareAndSwap(old, at.UnixNano()); old = lastDue.Load() {
					}
				}
				n := min(q.batch, q.n-first)
				if err := postBulk(p, first, n, q.domains, text, at); err != nil {
					errc <- err
					return
				}
				done.Add(int64(n))
			}
		}()
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return err
	}
	took := time.Since(start)
	prog.stop()
	if last := time.Unix(0, lastDue.Load()); last.After(due) {
		fmt.Printf("(the injection outran -due: the last messages are due at %s, not %s)\n", last.Format(time.TimeOnly), due.Format(time.TimeOnly))
		due = last
	}
	fmt.Printf("queue: %d one-recipient messages over %d domains, send_at %s after the start\n", q.n, q.domains, q.due)
	fmt.Printf("inject: %s = %.0f recipients/s (bulk of %d, %d clients); %s left before due\n", took.Round(time.Millisecond),
		float64(q.n)/took.Seconds(), q.batch, q.clients, time.Until(due).Round(time.Second))
	time.Sleep(q.settle)
	peak, steady := mon.stop()
	fmt.Printf("server RSS while injecting and %s after: peak %s, steady %s (VmHWM %s)\n", q.settle, mib(peak), mib(steady),
		mib(procKB(p.PID(), "VmHWM:")))
	if q.heapProfile != "" {
		if err := heapProfile(filepath.Join(p.Dir, "admin.sock"), q.heapProfile); err != nil {
			log.Printf("heap profile: %v", err)
		} else {
			fmt.Printf("heap profile: %s (go tool pprof -sample_index=inuse_space %s)\n", q.heapProfile, q.heapProfile)
		}
		// The text form ends with the runtime's MemStats: how much of the
		// RSS is Go's (HeapSys less HeapReleased) and how much is not.
		if err := adminGet(filepath.Join(p.Dir, "admin.sock"), "/debug/pprof/heap?debug=1", q.heapProfile+".txt"); err != nil {
			log.Printf("heap profile text: %v", err)
		}
	}

	// 2. Database bytes per message.
	var size [2]int64
	for i, f := range []string{"posthorn.db", "posthorn.db-wal"} {
		if fi, err := os.Stat(filepath.Join(p.Dir, f)); err == nil {
			size[i] = fi.Size()
		}
	}
	fmt.Printf("database: %.0f MiB = %.0f bytes per queued message (file %.0f MiB, WAL %.0f MiB)\n", float64(size[0]+size[1])/(1<<20),
		float64(size[0]+size[1])/float64(q.n), float64(size[0])/(1<<20), float64(size[1])/(1<<20))
	if q.injectOnly {
		return nil
	}

	// 3. Restart.
	p.Stop()
	t0 := time.Now()
	if err := p.Serve(10 * time.Minute); err != nil {
		return err
	}
	httpAt, smtpAt := time.Duration(0), time.Duration(0)
	for httpAt == 0 || smtpAt == 0 {
		if httpAt == 0 && httpAnswers(p) {
			httpAt = time.Since(t0)
		}
		if smtpAt == 0 && smtpGreets(p.SMTP) {
			smtpAt = time.Since(t0)
		}
		if time.Since(t0) > 10*time.Minute {
			return fmt.Errorf("restart: not accepting after 10 minutes")
		}
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Printf("restart: HTTP answering after %s, SMTP greeting after %s\n", httpAt.Round(time.Millisecond), smtpAt.Round(time.Millisecond))
	mon = watchRSS(p.PID())
	time.Sleep(q.settle)
	peak, steady = mon.stop()
	fmt.Printf("server RSS after the restart (%s): peak %s, steady %s\n", q.settle, mib(peak), mib(steady))

	// 4. Drain, with fresh high-lane mail.
	if w := time.Until(due); w > 0 {
		fmt.Printf("waiting %s until the queue is due\n", w.Round(time.Second))
		time.Sleep(w)
	}
	mon = watchRSS(p.PID())
	d0, t0 := delivered.Load(), time.Now()
	r := rand.New(rand.NewPCG(1, 2))
	var acceptLat []time.Duration
	prioID := map[string]string{} // recipient -> message id
	for i := range q.high {
		rcpt := fmt.Sprintf("prio-%d@%s", i, domainName(r.IntN(q.domains)))
		sent := time.Now()
		prioMu.Lock()
		prioSent[rcpt] = sent
		prioMu.Unlock()
		var ans struct {
			ID string `json:"id"`
		}
		code, err := p.Call("POST", "/v1/messages", map[string]any{"from": "app@app.test", "to": []string{rcpt},
			"subject": "password reset", "text": "your code is 123456", "lane": "high"}, &ans)
		if err != nil || code != 202 {
			return fmt.Errorf("high-lane send: %d %v", code, err)
		}
		prioID[rcpt] = ans.ID
		acceptLat = append(acceptLat, time.Since(sent))
		time.Sleep(250 * time.Millisecond)
	}
	for end := time.Now().Add(max(q.drain-time.Since(t0), time.Minute)); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		prioMu.Lock()
		left := len(prioSent)
		prioMu.Unlock()
		if left == 0 && (q.drain > 0 && time.Since(t0) >= q.drain || delivered.Load() >= int64(q.n)) {
			break
		}
		if q.drain == 0 {
			end = time.Now().Add(time.Minute) // until the queue is empty
		}
	}
	drainTook := time.Since(t0)
	n := delivered.Load() - d0
	peak, steady = mon.stop()
	prioMu.Lock()
	prioDone := maps.Clone(prioTook)
	missing := len(prioSent)
	prioMu.Unlock()
	lat := slices.Sorted(maps.Values(prioDone))
	fmt.Printf("drain: %d delivered in %s = %.0f/s (%d of %d delivered in all); RSS peak %s, last %s\n", n, drainTook.Round(time.Second),
		float64(n)/drainTook.Seconds(), delivered.Load(), q.n, mib(peak), mib(steady))
	fmt.Printf("high lane while draining: %d/%d delivered, accept-to-delivered p50 %s p99 %s max %s\n", len(lat), len(lat)+missing,
		benchkit.Percentile(lat, 50).Round(time.Millisecond), benchkit.Percentile(lat, 99).Round(time.Millisecond),
		benchkit.Percentile(lat, 100).Round(time.Millisecond))
	// A high-lane message not delivered in time: say where it is (its
	// state, last reply and what holds it, from the API's /why).
	prioMu.Lock()
	var late []string
	for rcpt := range prioSent {
		late = append(late, rcpt)
	}
	prioMu.Unlock()
	slices.Sort(late)
	for _, rcpt := range late {
		var why any
		code, err := p.Call("GET", "/v1/messages/"+prioID[rcpt]+"/why", nil, &why)
		b, _ := json.Marshal(why)
		if len(b) > 600 {
			b = append(b[:600], "…"...)
		}
		fmt.Printf("  not delivered: %s (message %s): %d %v %s\n", rcpt, prioID[rcpt], code, err, b)
	}
	// The slowest delivered ones: their journey from the activity log
	// (a deferral and its reply, or only accepted then delivered: a wait
	// inside the queue, for a lookup or a connection).
	slow := slices.SortedFunc(maps.Keys(prioDone), func(a, b string) int { return cmp.Compare(prioDone[b], prioDone[a]) })
	for _, rcpt := range slow[:min(3, len(slow))] {
		fmt.Printf("  slow: %s took %s: %s\n", rcpt, prioDone[rcpt].Round(time.Millisecond), journey(p, prioID[rcpt]))
		if q.mailLog {
			fmt.Printf("    %s\n", mailLogLine(filepath.Join(work, "posthorn.log"), prioID[rcpt]))
		}
	}
	fmt.Printf("  DNS during the run: %s\n", dnsCounters(p))
	slices.Sort(acceptLat)
	fmt.Printf("  of which the API's 202: p50 %s p99 %s\n", benchkit.Percentile(acceptLat, 50).Round(time.Millisecond),
		benchkit.Percentile(acceptLat, 99).Round(time.Millisecond))
	fmt.Printf("load average now %s\n", loadavg())
	return nil
}

// mailLogLine is the delivery line of message id in the server's log,
// from relay= on (delays says where the time went).
func mailLogLine(path, id string) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if l := sc.Text(); strings.Contains(l, "msg=delivery") && strings.Contains(l, "queue_id="+id) {
			return l[strings.Index(l, "relay="):]
		}
	}
	return "(no mail log line)"
}

// dnsCounters reads the delivery resolver's counters from /metrics:
// retransmissions mean lost queries, each a second or more added to a
// delivery (a high-lane one among them, at the start of a drain).
func dnsCounters(p *benchkit.Posthorn) string {
	resp, err := http.Get("http://" + p.HTTP + "/metrics")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	var out []string
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if name, v, ok := strings.Cut(sc.Text(), " "); ok && strings.HasPrefix(name, "posthorn_dns_") {
			out = append(out, strings.TrimSuffix(strings.TrimPrefix(name, "posthorn_dns_"), "_total")+" "+v)
		}
	}
	return strings.Join(out, ", ")
}

// journey is a message's events, oldest first, each with its time after
// the first and its reply or detail if any.
func journey(p *benchkit.Posthorn, id string) string {
	var page struct {
		Items []struct {
			At     time.Time `json:"at"`
			Type   string    `json:"type"`
			Detail string    `json:"detail"`
			Reply  *struct {
				Code int    `json:"code"`
				Text string `json:"text"`
			} `json:"reply"`
		} `json:"items"`
	}
	code, err := p.Call("GET", "/v1/events?order=asc&limit=50&message="+id, nil, &page)
	if err != nil || code != 200 {
		return fmt.Sprintf("events: %d %v", code, err)
	}
	var b strings.Builder
	for i, e := range page.Items {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s +%s", e.Type, e.At.Sub(page.Items[0].At).Round(time.Millisecond))
		if e.Reply != nil {
			fmt.Fprintf(&b, " (%d %s)", e.Reply.Code, e.Reply.Text)
		} else if e.Detail != "" {
			fmt.Fprintf(&b, " (%s)", e.Detail)
		}
	}
	return b.String()
}

// postBulk sends messages first..first+n-1 in one bulk request.
func postBulk(p *benchkit.Posthorn, first, n, domains int, text string, due time.Time) error {
	var b bytes.Buffer
	b.WriteString(`{"messages":[`)
	sendAt := due.Format(time.RFC3339)
	for i := first; i < first+n; i++ {
		if i > first {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"from":"news@app.test","to":["r%d@%s"],"subject":"queued %d","text":%q,"send_at":%q}`,
			i, domainName(i%domains), i, text, sendAt)
	}
	b.WriteString(`]}`)
	req, err := http.NewRequest("POST", "http://"+p.HTTP+"/v1/messages/bulk", &b)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+p.APIKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var res struct{ Accepted, Failed int }
	if resp.StatusCode != 200 || json.Unmarshal(data, &res) != nil || res.Accepted != n {
		return fmt.Errorf("bulk: %d %.300s", resp.StatusCode, data)
	}
	return nil
}

// httpAnswers reports whether the API answers a request (any status).
func httpAnswers(p *benchkit.Posthorn) bool {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get("http://" + p.HTTP + "/v1/messages/none")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return true
}

// smtpGreets reports whether the SMTP port sends its 220 greeting.
func smtpGreets(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "220")
}

// heapProfile saves the server's heap profile, read from its admin socket.
func heapProfile(sock, path string) error { return adminGet(sock, "/debug/pprof/heap?gc=1", path) }

// adminGet saves the answer to a GET of target on the admin socket to path.
func adminGet(sock, target, path string) error {
	c := http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	resp, err := c.Get("http://admin" + target)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// progress prints, for each tenth of the injection, its rate and the
// server's CPU time and bytes written to disk (/proc/PID/io write_bytes:
// the WAL and the checkpoints' writes to the database) a recipient; and
// takes a CPU profile from the admin socket over the second half.
type progress struct {
	stopc chan struct{}
	wg    sync.WaitGroup
}

func watchProgress(p *benchkit.Posthorn, q queueRun, done *atomic.Int64) *progress {
	start := time.Now()
	pr := &progress{stopc: make(chan struct{})}
	pr.wg.Add(1)
	go func() {
		defer pr.wg.Done()
		step := int64(max(q.n/10, 1))
		mark, t0, cpu0, w0 := int64(0), time.Now(), procCPU(p.PID()), procWrites(p.PID())
		profiling := false
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-pr.stopc:
				return
			case <-tick.C:
			}
			n := done.Load()
			if q.cpuProfile != "" && !profiling && n >= int64(q.n)/2 {
				profiling = true
				pr.wg.Add(1)
				go func() { // the second half takes about as long as the first took so far
					defer pr.wg.Done()
					secs := max(int(time.Since(start).Seconds()), 5)
					if err := adminGet(filepath.Join(p.Dir, "admin.sock"), fmt.Sprintf("/debug/pprof/profile?seconds=%d", secs), q.cpuProfile); err != nil {
						log.Printf("cpu profile: %v", err)
					} else {
						fmt.Printf("cpu profile of %d s from half way: %s\n", secs, q.cpuProfile)
					}
				}()
			}
			if n-mark < step && n < int64(q.n) {
				continue
			}
			now, cpu, w := time.Now(), procCPU(p.PID()), procWrites(p.PID())
			k := float64(n - mark)
			fmt.Printf("  injected %7d: %6.0f rcpt/s, server CPU %5.1f µs and %5.0f bytes written a recipient\n", n,
				k/now.Sub(t0).Seconds(), float64((cpu-cpu0).Microseconds())/k, float64(w-w0)/k)
			mark, t0, cpu0, w0 = n, now, cpu, w
			if n >= int64(q.n) {
				return
			}
		}
	}()
	return pr
}

func (pr *progress) stop() {
	close(pr.stopc)
	pr.wg.Wait()
}

// procWrites is the bytes a process caused to be written to storage so far.
func procWrites(pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "write_bytes: "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}
