// Package benchkit starts a posthorn binary for the Go benchmarks in
// bench/: build it, initialise a data directory, serve, and call its API.
package benchkit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/posthorn/posthorn/internal/testkit"
)

// Posthorn is a running posthorn.
type Posthorn struct {
	Bin, Dir, SMTP, HTTP string
	APIKey, User, Pass   string
	cmd                  *exec.Cmd
	args                 []string
	log                  string
	client               *http.Client
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Start builds ./cmd/posthorn (from the module root, found from the working
// directory) and runs serve with extra flags. Benchmarks send from any
// domain, so the sender-domain check is off (--allow-unverified-senders).
func Start(work string, extra ...string) (*Posthorn, error) {
	bin, err := Build(work)
	if err != nil {
		return nil, err
	}
	return StartBin(bin, work, extra...)
}

// Build builds ./cmd/posthorn into dir and returns the binary's path.
func Build(dir string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "posthorn")
	build := exec.Command("go", "build", "-o", bin, "./cmd/posthorn")
	build.Dir, build.Stderr = root, os.Stderr
	if err := build.Run(); err != nil {
		return "", fmt.Errorf("build: %w", err)
	}
	return bin, nil
}

// StartBin is Start with a binary already built: it initialises the data
// directory work/data and serves it.
func StartBin(bin, work string, extra ...string) (*Posthorn, error) {
	// A work directory started before (a large prepared database kept
	// between runs) keeps its credentials beside the data directory.
	credsFile := filepath.Join(work, "credentials.json")
	out, err := os.ReadFile(credsFile)
	if err != nil {
		if out, err = exec.Command(bin, "init", "--data-dir", filepath.Join(work, "data"), "--json").Output(); err != nil {
			return nil, fmt.Errorf("init: %w", err)
		}
		if err := os.WriteFile(credsFile, out, 0o600); err != nil {
			return nil, err
		}
	}
	p, err := newPosthorn(bin, work, out)
	if err != nil {
		return nil, err
	}
	if err := p.listen(extra, 30*time.Minute); err != nil { // long: a large prepared database may migrate first
		return nil, err
	}
	return p, nil
}

// StartCluster initialises the shared PostgreSQL store storeURL once
// (posthorn init --store) and starts n nodes serving it, node<i> with its
// own data directory work/node<i>/data. The first node migrates the store
// before the others start (they would wait on its lock anyway).
func StartCluster(bin, work, storeURL string, n int, extra ...string) ([]*Posthorn, error) {
	out, err := exec.Command(bin, "init", "--store", storeURL, "--json").Output()
	if err != nil {
		return nil, fmt.Errorf("init --store: %w", err)
	}
	var nodes []*Posthorn
	for i := 1; i <= n; i++ {
		p, err := newPosthorn(bin, filepath.Join(work, fmt.Sprintf("node%d", i)), out)
		if err == nil {
			err = os.MkdirAll(filepath.Dir(p.Dir), 0o700)
		}
		if err == nil {
			err = p.listen(append([]string{"--store", storeURL, "--node-name", fmt.Sprintf("node%d", i)}, extra...), time.Minute)
		}
		if err != nil {
			for _, q := range nodes {
				q.Stop()
			}
			return nil, fmt.Errorf("node %d: %w", i, err)
		}
		nodes = append(nodes, p)
	}
	return nodes, nil
}

// newPosthorn is a posthorn in work with the credentials init printed.
func newPosthorn(bin, work string, initJSON []byte) (*Posthorn, error) {
	p := &Posthorn{Bin: bin, Dir: filepath.Join(work, "data"), log: filepath.Join(work, "posthorn.log"),
		client: &http.Client{Timeout: 5 * time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
	var creds struct {
		APIKey string `json:"api_key"`
		User   string `json:"smtp_username"`
		Pass   string `json:"smtp_password"`
	}
	if err := json.Unmarshal(initJSON, &creds); err != nil {
		return nil, fmt.Errorf("init output %.200q: %w", initJSON, err)
	}
	p.APIKey, p.User, p.Pass = creds.APIKey, creds.User, creds.Pass
	return p, nil
}

// listen picks the ports and serves with extra flags.
func (p *Posthorn) listen(extra []string, wait time.Duration) error {
	sp, err := freePort()
	if err != nil {
		return err
	}
	hp, err := freePort()
	if err != nil {
		return err
	}
	p.SMTP, p.HTTP = fmt.Sprintf("127.0.0.1:%d", sp), fmt.Sprintf("127.0.0.1:%d", hp)
	p.args = append([]string{"serve", "--data-dir", p.Dir, "--smtp-listen", p.SMTP, "--http-listen", p.HTTP,
		"--hostname", "bench.posthorn.test", "--log-level", "warn", "--allow-unverified-senders"}, extra...)
	return p.serve(wait)
}

// Restart stops posthorn and serves again on the same data directory and
// flags, returning once it listens (after up to wait: a large data
// directory takes a while to load).
func (p *Posthorn) Restart(wait time.Duration) error {
	p.Stop()
	return p.serve(wait)
}

// Serve starts posthorn again after Stop, on the same data directory and
// flags, returning once its HTTP port takes connections (after up to
// wait).
func (p *Posthorn) Serve(wait time.Duration) error { return p.serve(wait) }

// RestartWith restarts with more flags than it was started with (kept
// for later restarts).
func (p *Posthorn) RestartWith(wait time.Duration, extra ...string) error {
	p.Stop()
	p.args = append(p.args, extra...)
	return p.serve(wait)
}

func (p *Posthorn) serve(wait time.Duration) error {
	logf, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	p.cmd = exec.Command(p.Bin, p.args...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		return err
	}
	// Both ports: the listeners open one after the other, and a bench
	// that starts with SMTP found it refusing now and then.
	for end := time.Now().Add(wait); time.Now().Before(end); {
		if listening(p.HTTP) && listening(p.SMTP) {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.Stop()
	return fmt.Errorf("posthorn did not start (see %s)", p.log)
}

// Stop ends posthorn.
func (p *Posthorn) Stop() {
	if p.cmd != nil && p.cmd.Process != nil {
		p.cmd.Process.Signal(syscall.SIGTERM)
		p.cmd.Wait()
	}
}

// PID is the server's process id (for /proc measurements).
func (p *Posthorn) PID() int { return p.cmd.Process.Pid }

// Admin makes a request without a body on the admin socket and fails
// unless it is answered 200.
func (p *Posthorn) Admin(method, path string) error {
	_, err := p.AdminBody(method, path)
	return err
}

// AdminBody is Admin returning the answer's body (a pprof profile from
// /debug/pprof/profile, for one).
func (p *Posthorn) AdminBody(method, path string) ([]byte, error) {
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", filepath.Join(p.Dir, "admin.sock"))
	}}}
	req, err := http.NewRequest(method, "http://admin"+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s %s: %s %.200s", method, path, resp.Status, data)
	}
	return data, err
}

// Call makes an API request with the admin key and decodes the answer.
func (p *Posthorn) Call(method, path string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "http://"+p.HTTP+path, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+p.APIKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("answer %.200q: %w", data, err)
		}
	}
	return resp.StatusCode, nil
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// Percentile returns the p-th percentile (0-100) of sorted durations.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1) * p / 100)
	return sorted[i]
}

// World is a posthorn delivering to one fake MX host (127.0.0.2) that
// serves one domain through a test DNS server.
type World struct {
	Work string
	DNS  *testkit.DNS
	MX   *testkit.MXServer
	P    *Posthorn
}

// NewWorld starts the DNS server, the MX for domain with script, and
// posthorn with config (TOML) and extra serve flags.
func NewWorld(name, domain string, script testkit.Script, config string, extra ...string) (*World, error) {
	w := &World{}
	var err error
	if w.Work, err = os.MkdirTemp("", "posthorn-"+name+"-"); err != nil {
		return nil, err
	}
	if w.DNS, err = testkit.NewDNS("127.0.0.1:0"); err != nil {
		w.Close()
		return nil, err
	}
	if w.MX, err = testkit.NewMX("127.0.0.2", 0, script); err != nil {
		w.Close()
		return nil, err
	}
	w.DNS.SetMX(domain, testkit.MX{Pref: 10, Host: "mx." + domain})
	w.DNS.SetA("mx."+domain, "127.0.0.2")
	cfgPath := filepath.Join(w.Work, "posthorn.toml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o600); err != nil {
		w.Close()
		return nil, err
	}
	args := append([]string{"--config", cfgPath, "--dns-server", w.DNS.Addr(), "--delivery-port", fmt.Sprint(w.MX.Port())}, extra...)
	if w.P, err = Start(w.Work, args...); err != nil {
		w.Close()
		return nil, err
	}
	return w, nil
}

// Close stops everything and removes the working directory.
func (w *World) Close() {
	if w.P != nil {
		w.P.Stop()
	}
	if w.MX != nil {
		w.MX.Close()
	}
	if w.DNS != nil {
		w.DNS.Close()
	}
	os.RemoveAll(w.Work)
}

// CPUTime is the user and system CPU time process pid used so far
// (/proc/PID/stat, in clock ticks of 1/100 s).
func CPUTime(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The fields after the command name, which is in parentheses.
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}

// listening reports whether addr takes TCP connections.
func listening(addr string) bool {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return false
	}
	c.Close()
	return true
}
