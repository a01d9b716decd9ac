// Package rspamd runs Debian's rspamd for tests and benchmarks: one
// normal worker on a loopback port, the package's own rules from
// /etc/rspamd, no Redis, no network (DNS points at a closed port), no
// hyperscan compilation and a short public-suffix list (compiling the
// package's 9,600 suffixes takes half a minute at every start), state in a
// temporary directory. rspamd refuses to run workers as root, so as
// root it runs them as _rspamd (or nobody).
package rspamd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// GTUBE is the spam test pattern rspamd rejects.
const GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"

// GTUBEAddHeader is rspamd's test pattern for "add header" (with
// enable_test_patterns, which this package's rspamd has on).
const GTUBEAddHeader = "YJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"

// ErrMissing is returned when rspamd is not installed.
var ErrMissing = errors.New("rspamd is not installed")

// Server is a running rspamd.
type Server struct {
	URL  string // http://127.0.0.1:PORT, the normal worker
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
}

const conf = `.include "$CONFDIR/common.conf"
options {
    pidfile = "$RUNDIR/rspamd.pid";
    filters = "chartable,dkim,regexp";
    url_tld = "$DBDIR/tld.dat";
    disable_hyperscan = true;
    enable_test_patterns = true;
    tempdir = "$DBDIR";
    dns { nameserver = ["127.0.0.1:1"]; timeout = 0.1s; retransmits = 0; }
}
logging {
    type = "file";
    filename = "$LOGDIR/rspamd.log";
    level = "warning";
}
worker "normal" {
    bind_socket = "%s";
    .include "$CONFDIR/worker-normal.inc"
    count = %d;
    task_timeout = 8s;
}
`

// Start starts rspamd with one normal worker and waits until it answers
// (rspamd loads its rules for a few seconds).
func Start(timeout time.Duration) (*Server, error) { return StartWorkers(timeout, 1) }

// StartWorkers is Start with n normal workers (benchmarks).
func StartWorkers(timeout time.Duration, n int) (*Server, error) {
	bin, err := exec.LookPath("rspamd")
	if err != nil {
		return nil, ErrMissing
	}
	dir, err := os.MkdirTemp("", "posthorn-rspamd-")
	if err != nil {
		return nil, err
	}
	s := &Server{dir: dir, done: make(chan struct{})}
	fail := func(err error) (*Server, error) {
		s.Stop()
		return nil, err
	}
	db := filepath.Join(dir, "db")
	if err := os.Mkdir(db, 0o777); err != nil {
		return fail(err)
	}
	// The workers (another user) write their state here.
	if err := os.Chmod(dir, 0o755); err != nil {
		return fail(err)
	}
	if err := os.Chmod(db, 0o777); err != nil {
		return fail(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fail(err)
	}
	addr := l.Addr().String()
	l.Close()
	if err := os.WriteFile(filepath.Join(db, "tld.dat"), []byte("com\norg\nnet\ntest\nexample\n"), 0o644); err != nil {
		return fail(err)
	}
	cfg := filepath.Join(dir, "rspamd.conf")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(conf, addr, max(n, 1))), 0o644); err != nil {
		return fail(err)
	}
	args := []string{"-f", "-c", cfg, "--var=DBDIR=" + db, "--var=RUNDIR=" + db, "--var=LOGDIR=" + db,
		"--var=LOCAL_CONFDIR=" + filepath.Join(dir, "local")}
	if os.Geteuid() == 0 {
		u, g := workerUser()
		args = append(args, "-u", u, "-g", g)
	}
	var out bytes.Buffer
	s.cmd = exec.Command(bin, args...)
	s.cmd.Stdout, s.cmd.Stderr = &out, &out
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		return fail(fmt.Errorf("start rspamd: %w", err))
	}
	go func() { s.cmd.Wait(); close(s.done) }()
	s.URL = "http://" + addr
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-s.done:
			log, _ := os.ReadFile(filepath.Join(db, "rspamd.log"))
			return fail(fmt.Errorf("rspamd exited: %s\n%s", tail(out.String()), tail(string(log))))
		default:
		}
		if ping(s.URL) {
			return s, nil
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(db, "rspamd.log"))
			return fail(fmt.Errorf("rspamd not ready after %s: %s\n%s", timeout, tail(out.String()), tail(string(log))))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func ping(url string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", url+"/ping", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode == 200 && strings.Contains(string(b), "pong")
}

// workerUser is the unprivileged user rspamd's workers run as.
func workerUser() (string, string) {
	if _, err := user.Lookup("_rspamd"); err == nil {
		if _, err := user.LookupGroup("_rspamd"); err == nil {
			return "_rspamd", "_rspamd"
		}
	}
	if _, err := user.LookupGroup("nogroup"); err == nil {
		return "nobody", "nogroup"
	}
	return "nobody", "nobody"
}

// Stop ends rspamd (its main process and workers) and removes its
// directory.
func (s *Server) Stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		pgid := s.cmd.Process.Pid
		syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(5 * time.Second):
			syscall.Kill(-pgid, syscall.SIGKILL)
			<-s.done
		}
		// Workers left behind (they are in the group too).
		syscall.Kill(-pgid, syscall.SIGKILL)
		s.cmd = nil
	}
	if s.dir != "" {
		os.RemoveAll(s.dir)
		s.dir = ""
	}
}

func tail(s string) string {
	if len(s) > 2000 {
		return "..." + s[len(s)-2000:]
	}
	return s
}
