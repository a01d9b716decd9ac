// Command dkim measures what DKIM signing costs, all in one posthorn in
// one run, for mail of an unsigned domain, an RSA-2048 domain and an
// Ed25519 domain, in rounds that alternate the three so the machine's
// drift falls on all alike. Per measurement (-n messages over -sessions
// concurrent SMTP sessions with AUTH, one recipient each) it reports:
//
//   - acceptance: n / time until the last 250 (which follows the durable
//     commit); signing happens after it (internal/signer);
//   - end to end: n / time until the fake MX (which discards) holds all
//     n, so every message was signed and delivered.
//
// Each measurement waits for the previous one's deliveries to finish, so
// no backlog of signing or delivery falls on the next one. It prints the
// median of each and the signed/unsigned ratios. With -cpuprofile DIR it
// writes a CPU profile of posthorn during the first measurement of each
// kind (DIR/<kind>.pprof; read with go tool pprof -top). On Linux it
// also reports posthorn's CPU time per message, apart from its signer
// threads and theirs: on a shared machine rates drift with the load of
// others, CPU time per message much less.
//
// Run from the project root: go run ./bench/dkim [-n 5000 -rounds 3]
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
	"path/filepath"
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
	profile := flag.String("cpuprofile", "", "directory for CPU profiles of the first round")
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
	m := &meter{p: p, sink: sink, sessions: *sessions, text: text}
	m.measure(*n/2, "unsigned.bench", "") // warm up: connections, store files, caches
	acc, e2e := map[string][]float64{}, map[string][]float64{}
	cpuMain, cpuSign := map[string][]float64{}, map[string][]float64{}
	for r := 0; r < *rounds; r++ {
		for _, k := range kinds {
			prof := ""
			if *profile != "" && r == 0 {
				prof = filepath.Join(*profile, k.label+".pprof")
			}
			main0, sign0 := cpuTimes(p.PID())
			a, e := m.measure(*n, k.domain, prof)
			main1, sign1 := cpuTimes(p.PID())
			cm, cs := ms(main1-main0)/float64(*n), ms(sign1-sign0)/float64(*n)
			acc[k.label] = append(acc[k.label], a)
			e2e[k.label] = append(e2e[k.label], e)
			cpuMain[k.label] = append(cpuMain[k.label], cm)
			cpuSign[k.label] = append(cpuSign[k.label], cs)
			fmt.Printf("round %d %-8s accept %6.0f msg/s   end to end %6.0f msg/s   CPU/msg %.2f ms + signer %.2f ms\n", r+1, k.label, a, e, cm, cs)
		}
	}
	offA, offE := benchkit.Median(acc["off"]), benchkit.Median(e2e["off"])
	fmt.Printf("\n%d sessions, %d messages of %d bytes per measurement, median of %d rounds:\n", *sessions, *n, *size, *rounds)
	for _, k := range kinds {
		a, e := benchkit.Median(acc[k.label]), benchkit.Median(e2e[k.label])
		fmt.Printf("  DKIM %-8s accept %6.0f msg/s (%.2f of unsigned)   end to end %6.0f msg/s (%.2f of unsigned)   CPU/msg %.2f ms + signer %.2f ms\n",
			k.label, a, a/offA, e, e/offE, benchkit.Median(cpuMain[k.label]), benchkit.Median(cpuSign[k.label]))
	}
	fmt.Println("(CPU/msg: posthorn's CPU time per message, accept and delivery, then that of its signer threads)")
}

type meter struct {
	p        *benchkit.Posthorn
	sink     *testkit.MXServer
	sessions int
	text     string
}

// measure sends n messages from domain and returns the acceptance and
// end-to-end rates; with prof, it records a CPU profile meanwhile.
func (m *meter) measure(n int, domain, prof string) (accept, e2e float64) {
	base := m.sink.Accepted()
	var profDone chan struct{}
	if prof != "" {
		profDone = make(chan struct{})
		go func() {
			defer close(profDone)
			if err := m.cpuProfile(prof, 5); err != nil {
				log.Printf("profile: %v", err)
			}
		}()
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for s := 0; s < m.sessions; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := "From: App <app@" + domain + ">\r\nTo: rcpt@sink.test\r\nSubject: bench\r\nMIME-Version: 1.0\r\n" +
				"Content-Type: text/plain\r\n\r\n" + m.text
			if _, err := m.p.Inject(&next, n, "app@"+domain, body); err != nil {
				log.Fatal(err)
			}
		}()
	}
	wg.Wait()
	accepted := time.Since(start)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := m.sink.Wait(ctx, func() bool { return m.sink.Accepted() >= base+n }); err != nil {
		log.Fatalf("deliveries: %d of %d after 10 minutes", m.sink.Accepted()-base, n)
	}
	delivered := time.Since(start)
	if profDone != nil {
		<-profDone
	}
	return float64(n) / accepted.Seconds(), float64(n) / delivered.Seconds()
}

// cpuProfile fetches a profile of secs seconds through the admin socket.
func (m *meter) cpuProfile(path string, secs int) error {
	sock := filepath.Join(m.p.Dir, "admin.sock")
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	resp, err := c.Get(fmt.Sprintf("http://admin/debug/pprof/profile?seconds=%d", secs))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("profile: %s", resp.Status)
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

// cpuTimes returns posthorn's CPU time so far (user and system), apart
// from its signer threads (scheduling policy SCHED_IDLE, or nice 19), and
// theirs. Linux only; zero elsewhere.
func cpuTimes(pid int) (other, signer time.Duration) {
	total, _, _, ok := threadTimes(fmt.Sprintf("/proc/%d/stat", pid))
	if !ok {
		return 0, 0
	}
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
	for _, t := range tasks {
		d, policy, nice, ok := threadTimes(t)
		if ok && (policy == "5" || nice == "19") {
			signer += d
		}
	}
	return total - signer, signer
}

// threadTimes reads utime+stime, the scheduling policy and nice value
// from a /proc stat file.
func threadTimes(path string) (d time.Duration, policy, nice string, ok bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, "", "", false
	}
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+2:])) // from field 3, the state
	if len(f) < 39 {
		return 0, "", "", false
	}
	var ut, st int64
	fmt.Sscan(f[11], &ut)
	fmt.Sscan(f[12], &st)
	return time.Duration(ut+st) * time.Second / 100, f[38], f[16], true // USER_HZ is 100 on Linux
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
