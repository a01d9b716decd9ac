package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/api"
	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/tenant"
	"github.com/posthorn/posthorn/internal/testkit/pgtest"
)

// binary is the posthorn binary built once for all tests.
var binary string

func TestMain(m *testing.M) {
	// POSTHORN_E2E_BINARY runs the tests against a binary built elsewhere
	// (e.g. from an older commit, to see a new test fail there).
	if b := os.Getenv("POSTHORN_E2E_BINARY"); b != "" {
		binary = b
		pgtest.Main(m) // stops the PostgreSQL server cluster tests started
	}
	dir, err := os.MkdirTemp("", "posthorn-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "posthorn")
	build := exec.Command("go", "build", "-o", binary, "github.com/posthorn/posthorn/cmd/posthorn")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build posthorn:", err)
		os.Exit(1)
	}
	pgtest.Main(runThen{m, func() { os.RemoveAll(dir) }})
}

// Options are the serve flags a test cares about.
type Options struct {
	DNS          string // test DNS server
	DeliveryPort int
	Smarthost    string
	RetryMin     time.Duration
	RetryMax     time.Duration
	Lifetime     time.Duration
	Trusted      string
	Extra        []string
	Config       string // TOML text written to a config file
	// ShutdownTimeout is passed as --shutdown-timeout; default 2s, so that
	// stopping a test's posthorn does not wait long for a stalled MX.
	ShutdownTimeout time.Duration
	// LogLevelFromConfig leaves out --log-level debug, so the config's
	// log_level applies (and a reload can change it).
	LogLevelFromConfig bool
	// EnforceSenders keeps the sender-domain check on. Off by default, so
	// tests may send from any domain: the harness passes
	// --allow-unverified-senders unless this is set.
	EnforceSenders bool
	// SMTPListenAll listens for submission on every address (same port as
	// SMTP), so a test can connect from a non-loopback address.
	SMTPListenAll bool
	// Store is passed as --store (a PostgreSQL URL: cluster_test.go).
	Store string
}

// Instance is one running posthorn.
type Instance struct {
	t       testing.TB
	Dir     string
	Creds   tenant.Credentials
	SMTP    string
	HTTP    string
	opts    Options
	cmd     *exec.Cmd
	log     *bytes.Buffer
	exited  chan struct{}
	logFile string
	exit    int // exit status of the last run (after exited)
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Start initialises a data directory and starts posthorn serve.
func Start(t testing.TB, o Options) *Instance {
	t.Helper()
	dir := t.TempDir()
	in := &Instance{t: t, Dir: filepath.Join(dir, "data"), opts: o, logFile: filepath.Join(dir, "posthorn.log")}
	out, err := exec.Command(binary, "init", "--data-dir", in.Dir, "--json").Output()
	if err != nil {
		t.Fatalf("posthorn init: %v", err)
	}
	if err := json.Unmarshal(out, &in.Creds); err != nil {
		t.Fatalf("init output %q: %v", out, err)
	}
	in.run()
	return in
}

// StartOn starts posthorn serve on an existing data directory (one a
// restore filled); Creds stay empty.
func StartOn(t testing.TB, dataDir string, o Options) *Instance {
	t.Helper()
	in := &Instance{t: t, Dir: dataDir, opts: o, logFile: filepath.Join(t.TempDir(), "posthorn.log")}
	in.run()
	return in
}

func (in *Instance) run() {
	t := in.t
	t.Helper()
	in.SMTP = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	in.HTTP = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	in.start()
	t.Cleanup(func() {
		in.Stop()
		if t.Failed() {
			b, _ := os.ReadFile(in.logFile)
			t.Logf("posthorn log:\n%s", tail(string(b), 6000))
		}
	})
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

func (in *Instance) args() []string {
	o := in.opts
	smtpListen := in.SMTP
	if o.SMTPListenAll {
		smtpListen = "0.0.0.0:" + in.SMTP[strings.LastIndexByte(in.SMTP, ':')+1:]
	}
	a := []string{"serve", "--data-dir", in.Dir, "--smtp-listen", smtpListen, "--http-listen", in.HTTP,
		"--hostname", "posthorn.test"}
	if !o.LogLevelFromConfig {
		a = append(a, "--log-level", "debug")
	}
	if o.DNS != "" {
		a = append(a, "--dns-server", o.DNS)
	} else {
		a = append(a, "--dns-server", "127.0.0.1:1")
	}
	if o.DeliveryPort != 0 {
		a = append(a, "--delivery-port", fmt.Sprint(o.DeliveryPort))
	}
	if o.Smarthost != "" {
		a = append(a, "--smarthost", o.Smarthost)
	}
	if o.RetryMin == 0 {
		o.RetryMin = 500 * time.Millisecond
	}
	if o.RetryMax == 0 {
		o.RetryMax = 2 * time.Second
	}
	if o.Lifetime == 0 {
		o.Lifetime = time.Hour
	}
	if o.ShutdownTimeout == 0 {
		o.ShutdownTimeout = 2 * time.Second
	}
	a = append(a, "--retry-min", o.RetryMin.String(), "--retry-max", o.RetryMax.String(), "--queue-lifetime", o.Lifetime.String(),
		"--shutdown-timeout", o.ShutdownTimeout.String())
	if o.Trusted != "" {
		a = append(a, "--trusted-networks", o.Trusted)
	}
	if !o.EnforceSenders {
		a = append(a, "--allow-unverified-senders")
	}
	if o.Store != "" {
		a = append(a, "--store", o.Store)
	}
	if o.Config != "" {
		if err := os.WriteFile(in.ConfigPath(), []byte(o.Config), 0o600); err != nil {
			in.t.Fatal(err)
		}
		a = append(a, "--config", in.ConfigPath())
	}
	return append(a, o.Extra...)
}

func (in *Instance) start() {
	in.t.Helper()
	logf, err := os.OpenFile(in.logFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		in.t.Fatal(err)
	}
	cmd := exec.Command(binary, in.args()...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		in.t.Fatal(err)
	}
	in.cmd = cmd
	in.exited = make(chan struct{})
	go func() {
		cmd.Wait()
		logf.Close()
		in.exit = cmd.ProcessState.ExitCode()
		close(in.exited)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", in.SMTP, time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-in.exited:
			b, _ := os.ReadFile(in.logFile)
			in.t.Fatalf("posthorn exited at start:\n%s", b)
		case <-time.After(50 * time.Millisecond):
		}
	}
	in.t.Fatal("posthorn did not start listening")
}

// ServeFails runs posthorn serve on dataDir with extra flags, expects it to
// refuse to start, and returns what it printed.
func ServeFails(t testing.TB, dataDir string, extra ...string) string {
	t.Helper()
	args := append([]string{"serve", "--data-dir", dataDir, "--smtp-listen", fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		"--http-listen", fmt.Sprintf("127.0.0.1:%d", freePort(t)), "--dns-server", "127.0.0.1:1"}, extra...)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, binary, args...).CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("posthorn %s kept running; want it to refuse to start:\n%s", strings.Join(extra, " "), out)
	}
	if err == nil {
		t.Fatalf("posthorn %s exited 0; want an error:\n%s", strings.Join(extra, " "), out)
	}
	return string(out)
}

// Stop stops posthorn gracefully (SIGTERM).
func (in *Instance) Stop() {
	if in.cmd == nil {
		return
	}
	in.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-in.exited:
	case <-time.After(40 * time.Second):
		in.cmd.Process.Kill()
		<-in.exited
	}
	in.cmd = nil
}

// ConfigPath is where Options.Config is written (rewrite it and send
// SIGHUP to test a reload).
func (in *Instance) ConfigPath() string { return filepath.Join(filepath.Dir(in.Dir), "posthorn.toml") }

// Signal sends sig to the running posthorn.
func (in *Instance) Signal(sig os.Signal) {
	in.t.Helper()
	if err := in.cmd.Process.Signal(sig); err != nil {
		in.t.Fatal(err)
	}
}

// WaitExit waits for posthorn to exit by itself and returns its exit status.
func (in *Instance) WaitExit(timeout time.Duration) int {
	in.t.Helper()
	select {
	case <-in.exited:
	case <-time.After(timeout):
		in.t.Fatalf("posthorn still running after %s", timeout)
	}
	in.cmd = nil
	return in.exit
}

// Log is what posthorn has written to stdout and stderr so far (all runs).
func (in *Instance) Log() string {
	b, _ := os.ReadFile(in.logFile)
	return string(b)
}

// WaitLog waits until the log has a line containing every one of parts,
// and returns that line.
func (in *Instance) WaitLog(timeout time.Duration, parts ...string) string {
	in.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if l := findLine(in.Log(), parts...); l != "" {
			return l
		}
		if time.Now().After(deadline) {
			in.t.Fatalf("no log line with %q after %s", parts, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// findLine is the first line of log containing all parts ("" if none).
func findLine(log string, parts ...string) string {
	for _, l := range strings.Split(log, "\n") {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(l, p)
		}
		if ok {
			return l
		}
	}
	return ""
}

// Kill stops posthorn with SIGKILL, as a crash would.
func (in *Instance) Kill() {
	if in.cmd == nil {
		return
	}
	in.cmd.Process.Kill()
	<-in.exited
	in.cmd = nil
}

// Restart starts posthorn again on the same data directory.
func (in *Instance) Restart() { in.start() }

// CLI runs a posthorn command against this instance with --json and
// decodes its output into out (when not nil).
func (in *Instance) CLI(out any, args ...string) {
	in.t.Helper()
	if err := in.TryCLI(out, args...); err != nil {
		in.t.Fatal(err)
	}
}

// TryCLI is CLI returning the error.
func (in *Instance) TryCLI(out any, args ...string) error {
	args = append(args, "--data-dir", in.Dir, "--json")
	cmd := exec.Command(binary, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("posthorn %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("posthorn %s: output %q: %v", strings.Join(args, " "), b, err)
		}
	}
	return nil
}

// Run runs a posthorn command against this instance (--data-dir added)
// with stdin and extra environment, and returns its output and exit
// status (for commands whose exit status matters, like sendmail).
func (in *Instance) Run(stdin string, env []string, args ...string) (stdout, stderr string, code int) {
	in.t.Helper()
	return RunBinary(in.t, binary, stdin, env, append(args, "--data-dir", in.Dir)...)
}

// RunBinary runs path (the posthorn binary, or a link to it) with args.
func RunBinary(t testing.TB, path, stdin string, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(path, args...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("run %s: %v", path, err)
	}
	return out.String(), errb.String(), code
}

// Show returns queue show ID.
func (in *Instance) Show(id string) api.MessageDetail {
	in.t.Helper()
	var d api.MessageDetail
	in.CLI(&d, "queue", "show", id)
	return d
}

// WaitFinal waits until every delivery of message id is in a final state
// and returns the message's details.
func (in *Instance) WaitFinal(id string, timeout time.Duration) api.MessageDetail {
	in.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		d := in.Show(id)
		final := len(d.Deliveries) > 0
		for _, dl := range d.Deliveries {
			final = final && dl.State.Final()
		}
		if final {
			return d
		}
		if time.Now().After(deadline) {
			in.t.Fatalf("message %s not final after %s: %+v", id, timeout, states(d))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func states(d api.MessageDetail) map[string]store.State {
	m := map[string]store.State{}
	for _, dl := range d.Deliveries {
		m[dl.Recipient] = dl.State
	}
	return m
}

// Send submits a message with AUTH PLAIN and returns posthorn's message
// ID (from the 250 reply).
func (in *Instance) Send(from string, to []string, body string) string {
	in.t.Helper()
	id, err := in.TrySend(from, to, body)
	if err != nil {
		in.t.Fatal(err)
	}
	return id
}

// TrySend is Send returning the error.
func (in *Instance) TrySend(from string, to []string, body string) (string, error) {
	c, err := Dial(in.SMTP)
	if err != nil {
		return "", err
	}
	defer c.Close()
	if _, err := c.Cmd(250, "EHLO client.test"); err != nil {
		return "", err
	}
	if _, err := c.Cmd(235, "AUTH PLAIN "+plain(in.Creds.SMTPUsername, in.Creds.SMTPPassword)); err != nil {
		return "", err
	}
	return c.Transaction(from, to, body)
}

func plain(user, pass string) string {
	return b64("\x00" + user + "\x00" + pass)
}

// Conn is a raw SMTP client for precise dialogues.
type Conn struct {
	c        net.Conn
	r        *bufio.Reader
	Greeting string // the server's first reply
}

// Dial connects and reads the greeting.
func Dial(addr string) (*Conn, error) { return DialFrom(addr, "") }

// DialFrom is Dial from a given local address (e.g. "127.0.0.5", so one
// test can act as several client hosts); "" lets the system choose.
func DialFrom(addr, local string) (*Conn, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	c := &Conn{c: nc, r: bufio.NewReader(nc)}
	if _, c.Greeting, err = c.Read(); err != nil {
		nc.Close()
		return nil, err
	}
	return c, nil
}

// Close closes the connection.
func (c *Conn) Close() error { return c.c.Close() }

// Write sends raw bytes.
func (c *Conn) Write(s string) error {
	c.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := c.c.Write([]byte(s))
	return err
}

// Read reads one (possibly multi-line) reply.
func (c *Conn) Read() (int, string, error) {
	c.c.SetReadDeadline(time.Now().Add(30 * time.Second))
	var text []string
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			return 0, strings.Join(text, "\n"), err
		}
		line = strings.TrimRight(line, "\r\n")
		if len(line) < 3 {
			return 0, line, fmt.Errorf("short reply line %q", line)
		}
		var code int
		fmt.Sscanf(line[:3], "%d", &code)
		text = append(text, line)
		if len(line) == 3 || line[3] == ' ' {
			return code, strings.Join(text, "\n"), nil
		}
	}
}

// Cmd sends a command line and checks the reply code (0: any).
func (c *Conn) Cmd(want int, line string) (string, error) {
	if err := c.Write(line + "\r\n"); err != nil {
		return "", err
	}
	code, text, err := c.Read()
	if err != nil {
		return text, fmt.Errorf("%s: %v", line, err)
	}
	if want != 0 && code != want {
		return text, fmt.Errorf("%s: got %q, want %d", clip(line), text, want)
	}
	return text, nil
}

func clip(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}

// Transaction runs MAIL, RCPT..., DATA and returns the queue id.
func (c *Conn) Transaction(from string, to []string, body string) (string, error) {
	if _, err := c.Cmd(250, "MAIL FROM:<"+from+">"); err != nil {
		return "", err
	}
	for _, r := range to {
		if _, err := c.Cmd(250, "RCPT TO:<"+r+">"); err != nil {
			return "", err
		}
	}
	if _, err := c.Cmd(354, "DATA"); err != nil {
		return "", err
	}
	text, err := c.Cmd(250, dotStuff(body)+".")
	if err != nil {
		return "", err
	}
	i := strings.LastIndex(text, "queued as ")
	if i < 0 {
		return "", fmt.Errorf("no queue id in %q", text)
	}
	return strings.TrimSpace(text[i+len("queued as "):]), nil
}

func dotStuff(body string) string {
	body = strings.ReplaceAll(body, "\r\n", "\n")
	var b strings.Builder
	for _, l := range strings.SplitAfter(body, "\n") {
		if l == "" {
			continue
		}
		if strings.HasPrefix(l, ".") {
			b.WriteString(".")
		}
		b.WriteString(strings.TrimSuffix(l, "\n") + "\r\n")
	}
	return b.String()
}

// stdSend submits with the standard library's client (a second, independent
// SMTP client implementation).
func stdSend(addr, user, pass, from string, to []string, msg string) error {
	auth := smtp.PlainAuth("", user, pass, "127.0.0.1")
	return smtp.SendMail(addr, auth, from, to, []byte(msg))
}
