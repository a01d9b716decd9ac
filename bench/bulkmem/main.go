// Command bulkmem measures the server's memory for bulk requests: the
// peak RSS (VmHWM) of a fresh posthorn while -parallel clients each send
// one bulk request of -items messages and -size bytes, once with valid
// items and once with every item invalid (a bad recipient address). The
// defaults are the largest bulk the default limits accept (max_bulk 5000,
// api.max_bulk_bytes 64 MiB) sent twice at once. Delivery goes to a closed
// port, so what is measured is the API, not the outbound side.
//
// Run from the project root: go run ./bench/bulkmem [-size 67108864] [-items 5000]
//
// Bodies larger than the defaults allow need raised limits, e.g. the
// 360 MiB bulks the old code read whole:
//
//	go run ./bench/bulkmem -size 377487360 -only invalid -config "$(printf '[api]\nmax_bulk_bytes = 400000000\nmax_inflight_bytes = 800000000')"
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/posthorn/posthorn/bench/benchkit"
)

func main() {
	size := flag.Int("size", 64<<20, "bytes per bulk request")
	items := flag.Int("items", 5000, "messages per bulk request")
	parallel := flag.Int("parallel", 2, "concurrent bulk requests")
	config := flag.String("config", "", "extra posthorn TOML (e.g. larger [api] limits)")
	only := flag.String("only", "", `"valid" or "invalid": run one case`)
	flag.Parse()

	for _, valid := range []bool{true, false} {
		if *only == "valid" && !valid || *only == "invalid" && valid {
			continue
		}
		body := bulkBody(*items, *size, valid)
		if err := run(body, *items, *parallel, valid, *config); err != nil {
			log.Fatal(err)
		}
	}
}

// run starts a fresh posthorn, sends the bulk requests at once and prints
// the answers and the peak RSS.
func run(body []byte, items, parallel int, valid bool, config string) error {
	work, err := os.MkdirTemp("", "posthorn-bulkmem-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	extra := []string{"--smarthost", "127.0.0.1:1", "--retry-min", "1h", "--retry-max", "2h"}
	if config != "" {
		path := filepath.Join(work, "posthorn.toml")
		if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
			return err
		}
		extra = append(extra, "--config", path)
	}
	p, err := benchkit.Start(work, extra...)
	if err != nil {
		return err
	}
	defer p.Stop()
	base, err := vmHWM(p.PID())
	if err != nil {
		return err
	}
	type answer struct {
		status           int
		accepted, failed int
		err              error
	}
	answers := make([]answer, parallel)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range answers {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			a := &answers[i]
			req, err := http.NewRequest("POST", "http://"+p.HTTP+"/v1/messages/bulk", bytes.NewReader(body))
			if err != nil {
				a.err = err
				return
			}
			req.Header.Set("Authorization", "Bearer "+p.APIKey)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				a.err = err
				return
			}
			defer resp.Body.Close()
			data, _ := io.ReadAll(resp.Body)
			a.status = resp.StatusCode
			var res struct{ Accepted, Failed int }
			if json.Unmarshal(data, &res) == nil {
				a.accepted, a.failed = res.Accepted, res.Failed
			}
			if resp.StatusCode != 200 {
				a.err = fmt.Errorf("%.200s", data)
			}
		}(i)
	}
	wg.Wait()
	took := time.Since(start)
	peak, err := vmHWM(p.PID())
	if err != nil {
		return err
	}
	kind := "valid"
	if !valid {
		kind = "invalid"
	}
	fmt.Printf("%d parallel bulk requests of %d %s items, %.1f MiB each: %s\n", parallel, items, kind, float64(len(body))/(1<<20), took.Round(time.Millisecond))
	for i, a := range answers {
		fmt.Printf("  request %d: status %d, accepted %d, failed %d", i+1, a.status, a.accepted, a.failed)
		if a.err != nil {
			fmt.Printf(" (%v)", a.err)
		}
		fmt.Println()
	}
	fmt.Printf("  server peak RSS: %.0f MiB (%.0f MiB after start-up)\n", float64(peak)/1024, float64(base)/1024)
	return nil
}

// bulkBody is a bulk request of n items of about equal size, padded with
// spaces to size bytes. Invalid items have a recipient that does not parse.
func bulkBody(n, size int, valid bool) []byte {
	to := "rcpt@sink.test"
	if !valid {
		to = "not an address"
	}
	item := func(text string) []byte {
		b, _ := json.Marshal(map[string]any{"from": "app@app.test", "to": []string{to}, "subject": "bulk", "text": text})
		return b
	}
	per := (size-32)/n - 1 - len(item(""))
	line := strings.Repeat("x", 75) + "\n" // 77 bytes in JSON
	text := strings.Repeat(line, max(per, 0)/77)
	text += strings.Repeat("y", max(per-len(item(text))+len(item("")), 0))
	one := item(text)
	var b bytes.Buffer
	b.WriteString(`{"messages":[`)
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(one)
	}
	b.WriteString("]")
	if pad := size - b.Len() - 1; pad > 0 {
		b.Write(bytes.Repeat([]byte(" "), pad))
	}
	b.WriteString("}")
	return b.Bytes()
}

// vmHWM is a process's peak resident set size in KiB.
func vmHWM(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			var kb int64
			fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(v), " kB"), &kb)
			return kb, nil
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}
