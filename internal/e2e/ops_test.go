package e2e

import (
	"context"
	"crypto/tls"
	"database/sql"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"

	"github.com/posthorn/posthorn/internal/selfsigned"
	"github.com/posthorn/posthorn/internal/server"
	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/testkit"
)

// TestMailLog: the server's log has one grep-friendly line per accepted
// message and one per delivery attempt, for a delivered, a deferred (then
// delivered), a bounced, a suppressed and a dead-lettered recipient.
func TestMailLog(t *testing.T) {
	w := newWorld(t, Options{RetryMin: 200 * time.Millisecond, RetryMax: 400 * time.Millisecond, Lifetime: 3 * time.Second}, "127.0.0.2")
	w.domain("ok.test", "127.0.0.2")
	w.domain("never.test", "127.0.0.2")
	w.domain("later.test", "127.0.0.2")
	w.domain("gone.test", "127.0.0.2")
	mx := w.mx["127.0.0.2"]
	var deferOnce atomic.Bool
	mx.SetScript(testkit.Script{
		RcptReplies: map[string]testkit.Reply{"nobody@gone.test": {Code: 550, Text: "5.1.1 no such user here"}},
		Rcpt: func(rcpt string) testkit.Reply {
			if rcpt == "c@never.test" {
				return testkit.Reply{Code: 451, Text: "4.2.1 mailbox busy, try later"}
			}
			if rcpt == "b@later.test" && deferOnce.CompareAndSwap(false, true) {
				return testkit.Reply{Code: 451, Text: "4.7.1 greylisted, come back later"}
			}
			return testkit.Reply{}
		},
	})
	w.in.CLI(nil, "suppression", "add", "blocked@ok.test")
	id := w.in.Send("sender@app.test", []string{"a@ok.test", "b@later.test", "nobody@gone.test", "blocked@ok.test", "c@never.test"}, "Subject: log\r\n\r\nhi\r\n")
	w.in.WaitFinal(id, 30*time.Second)

	q := "queue_id=" + id
	w.in.WaitLog(10*time.Second, "msg=accepted", q, "from=<sender@app.test>", "nrcpt=5", "source=smtp", "client=127.0.0.1")
	w.in.WaitLog(10*time.Second, "msg=delivery", q, "to=<blocked@ok.test>", "relay=none", "status=suppressed")
	sent := w.in.WaitLog(10*time.Second, "msg=delivery", q, "to=<a@ok.test>", "relay=mx1.ok.test[127.0.0.2]", "dsn=2.0.0", "status=sent")
	for _, want := range []string{"delivery=", "delay=", "delays=", "attempt=1", `reply="250 `} {
		if !strings.Contains(sent, want) {
			t.Errorf("sent line lacks %q: %s", want, sent)
		}
	}
	w.in.WaitLog(10*time.Second, "msg=delivery", q, "to=<b@later.test>", "dsn=4.7.1", "status=deferred", "attempt=1", "next_attempt=", "greylisted")
	w.in.WaitLog(10*time.Second, "msg=delivery", q, "to=<b@later.test>", "status=sent", "attempt=2")
	w.in.WaitLog(10*time.Second, "msg=delivery", q, "to=<nobody@gone.test>", "dsn=5.1.1", "status=bounced", "class=hard_bounce",
		`reply="550 5.1.1 no such user here"`)
	w.in.WaitLog(10*time.Second, "msg=delivery", q, "to=<c@never.test>", "dsn=4.2.1", "status=dead_letter")
}

// limitConfig is a configuration with a per-destination connection limit
// for limit.test and a log level, for the reload test.
func limitConfig(level string, conns int, extra string) string {
	return fmt.Sprintf("log_level = %q\n[delivery]\nidle_timeout = \"50ms\"\n%s\n[[destination]]\nname = \"limit.test\"\nmax_connections = %d\n", level, extra, conns)
}

// TestReloadSIGHUP: SIGHUP applies a changed destination limit and log
// level (both visible in what happens next), reports a setting that needs
// a restart without applying it, refuses an invalid file and keeps
// running and delivering with the configuration it had; `posthorn reload`
// does the same through the admin socket.
func TestReloadSIGHUP(t *testing.T) {
	w := newWorld(t, Options{LogLevelFromConfig: true, Config: limitConfig("warn", 1, "")}, "127.0.0.2")
	w.domain("limit.test", "127.0.0.2")
	mx := w.mx["127.0.0.2"]
	mx.SetScript(testkit.Script{Stall: testkit.Stalls{EndOfData: 300 * time.Millisecond}})
	in := w.in

	sendBatch := func(n int, tag string) []string {
		// Count connections from a quiet start: idle ones close after 50ms.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := mx.Wait(ctx, func() bool { return mx.ActiveConnections() == 0 }); err != nil {
			t.Fatalf("connections stay open: %d", mx.ActiveConnections())
		}
		mx.ClearRecords()
		var ids []string
		var mu sync.Mutex
		var wg sync.WaitGroup
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				id := in.Send("s@app.test", []string{fmt.Sprintf("r%d@limit.test", i)}, "Subject: "+tag+"\r\n\r\nx\r\n")
				mu.Lock()
				ids = append(ids, id)
				mu.Unlock()
			}(i)
		}
		wg.Wait()
		for _, id := range ids {
			in.WaitFinal(id, 30*time.Second)
		}
		return ids
	}
	before := sendBatch(6, "before")
	if n := mx.MaxActiveConnections(); n != 1 {
		t.Fatalf("max_connections = 1 for limit.test, but the MX saw %d connections at once", n)
	}

	// A valid change: limit 1 -> 4, log level warn -> info, and a setting
	// that needs a restart.
	if err := os.WriteFile(in.ConfigPath(), []byte(limitConfig("info", 4, "[api]\nmax_bulk = 10")), 0o600); err != nil {
		t.Fatal(err)
	}
	in.Signal(syscall.SIGHUP)
	in.WaitLog(10*time.Second, `msg="configuration reloaded"`, "log_level: warn -> info", "destination changed", "needs_restart=1")
	in.WaitLog(10*time.Second, "needs a restart", "setting=api.max_bulk")
	after := sendBatch(6, "after")
	if n := mx.MaxActiveConnections(); n < 2 {
		t.Errorf("after the reload to max_connections = 4 the MX saw at most %d connection at once", n)
	}
	// The log level: the deliveries before the reload (level warn) left no
	// info line, those after it do.
	in.WaitLog(10*time.Second, "msg=delivery", "queue_id="+after[0], "status=sent")
	if l := findLine(in.Log(), "msg=delivery", "queue_id="+before[0]); l != "" {
		t.Errorf("an info line was logged at level warn: %s", l)
	}

	// An invalid file: refused, logged, still running with the old limits.
	if err := os.WriteFile(in.ConfigPath(), []byte("log_level = \"info\"\ndelivery_port = \"twenty-five\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	in.Signal(syscall.SIGHUP)
	in.WaitLog(10*time.Second, "level=ERROR", "configuration reload refused", "delivery_port")
	err := in.TryCLI(nil, "reload")
	if err == nil || !strings.Contains(err.Error(), "reload refused") {
		t.Errorf("posthorn reload with an invalid file: %v, want a refusal", err)
	}
	sendBatch(4, "still running")
	if n := mx.MaxActiveConnections(); n < 2 {
		t.Errorf("after a refused reload the limit went back: at most %d connection at once", n)
	}

	// posthorn reload through the admin socket, back to one connection.
	if err := os.WriteFile(in.ConfigPath(), []byte(limitConfig("info", 1, "[api]\nmax_bulk = 10")), 0o600); err != nil {
		t.Fatal(err)
	}
	var rep server.ReloadReport
	in.CLI(&rep, "reload")
	if len(rep.Applied) != 1 || rep.Applied[0] != "destination changed" {
		t.Errorf("reload report %+v, want the destination change only", rep)
	}
	sendBatch(4, "one again")
	if n := mx.MaxActiveConnections(); n != 1 {
		t.Errorf("after reloading max_connections = 1 the MX saw %d connections at once", n)
	}
}

// TestShutdownFinishesDelivery: SIGTERM while a delivery waits for the MX's
// reply to the data: new SMTP sessions get 421 4.3.2 and HTTP 503 while
// the delivery completes; posthorn exits 0, logs each step, and after a
// restart the delivery is recorded as delivered and not sent again.
func TestShutdownFinishesDelivery(t *testing.T) {
	w := newWorld(t, Options{ShutdownTimeout: 30 * time.Second}, "127.0.0.2")
	w.domain("slow.test", "127.0.0.2")
	mx := w.mx["127.0.0.2"]
	mx.SetScript(testkit.Script{Stall: testkit.Stalls{EndOfData: 2 * time.Second}})
	in := w.in
	id := in.Send("s@app.test", []string{"r@slow.test"}, "Subject: slow\r\n\r\nx\r\n")
	waitCommand(t, mx, "DATA") // the worker is inside the transaction; the MX answers the data after 2s
	in.Signal(syscall.SIGTERM)
	in.WaitLog(10*time.Second, "SIGTERM: shutting down")

	c, err := Dial(in.SMTP)
	if err != nil {
		t.Fatalf("dial while shutting down: %v", err)
	}
	c.Close()
	if !strings.HasPrefix(c.Greeting, "421 4.3.2") {
		t.Errorf("greeting while shutting down %q, want 421 4.3.2", c.Greeting)
	}
	resp, err := http.Get("http://" + in.HTTP + "/healthz")
	if err != nil {
		t.Fatalf("http while shutting down: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("HTTP while shutting down: %s, want 503", resp.Status)
	}
	if code := in.WaitExit(30 * time.Second); code != 0 {
		t.Fatalf("exit status %d after SIGTERM, want 0", code)
	}
	log := in.Log()
	for _, want := range []string{"deliveries in flight finished", "posthorn stopped", "status=sent"} {
		if findLine(log, want) == "" {
			t.Errorf("log lacks %q", want)
		}
	}
	if n := len(mx.Messages()); n != 1 {
		t.Fatalf("MX received %d messages, want 1", n)
	}
	in.Restart()
	d := in.WaitFinal(id, 10*time.Second)
	if st := d.Deliveries[0].State; st != store.Delivered {
		t.Fatalf("after restart the delivery is %s, want delivered", st)
	}
	if n := len(mx.Messages()); n != 1 {
		t.Errorf("MX received %d messages after the restart, want 1 (no resend)", n)
	}
}

// TestShutdownDeadline: a delivery slower than shutdown_timeout does not
// hold the exit: posthorn exits 0 at the deadline, and the delivery, left
// leased, is retried after the restart.
func TestShutdownDeadline(t *testing.T) {
	w := newWorld(t, Options{ShutdownTimeout: 500 * time.Millisecond}, "127.0.0.2")
	w.domain("slow.test", "127.0.0.2")
	mx := w.mx["127.0.0.2"]
	mx.SetScript(testkit.Script{Stall: testkit.Stalls{EndOfData: 20 * time.Second}})
	in := w.in
	id := in.Send("s@app.test", []string{"r@slow.test"}, "Subject: slow\r\n\r\nx\r\n")
	waitCommand(t, mx, "DATA")
	start := time.Now()
	in.Signal(syscall.SIGTERM)
	if code := in.WaitExit(15 * time.Second); code != 0 {
		t.Fatalf("exit status %d, want 0", code)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("exit took %s with shutdown_timeout 500ms", d)
	}
	if findLine(in.Log(), "shutdown timeout reached") == "" {
		t.Error("log does not say that the deadline cut deliveries short")
	}
	mx.SetScript(testkit.Script{})
	in.Restart()
	d := in.WaitFinal(id, 20*time.Second)
	if st := d.Deliveries[0].State; st != store.Delivered {
		t.Fatalf("after restart the delivery is %s, want delivered", st)
	}
}

func waitCommand(t *testing.T, mx *testkit.MXServer, verb string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := mx.Wait(ctx, func() bool {
		for _, c := range mx.Commands() {
			if strings.EqualFold(c.Line, verb) {
				return true
			}
		}
		return false
	})
	if err != nil {
		t.Fatalf("MX never got %s", verb)
	}
}

var opsTokenRe = regexp.MustCompile(`X-Ops-Token: (t\d+-\d+)`)

// TestBackupUnderLoad: a backup taken while SMTP clients keep submitting
// restores into a fresh data directory whose server delivers every
// delivery that was pending in the backup, once, and nothing that the
// backup held as delivered.
func TestBackupUnderLoad(t *testing.T) {
	w := newWorld(t, Options{RetryMin: 300 * time.Millisecond, RetryMax: time.Second}, "127.0.0.2")
	w.domain("load.test", "127.0.0.2")
	mx := w.mx["127.0.0.2"]
	// Even tokens are taken, odd ones deferred: the backup holds delivered
	// and pending deliveries.
	mx.SetScript(testkit.Script{Data: func(m *testkit.Message, _ int) testkit.Reply {
		if sm := opsTokenRe.FindSubmatch(m.Data); sm != nil && (sm[1][len(sm[1])-1]-'0')%2 == 1 {
			return testkit.Reply{Code: 451, Text: "4.3.0 odd, later"}
		}
		return testkit.Reply{}
	}})
	in := w.in
	var (
		mu     sync.Mutex
		tokens = map[string]string{} // queue id -> token
		stop   atomic.Bool
		wg     sync.WaitGroup
	)
	for c := 0; c < 4; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				tok := fmt.Sprintf("t%d-%d", c, i)
				id, err := in.TrySend("s@app.test", []string{"r@load.test"}, "Subject: load\r\nX-Ops-Token: "+tok+"\r\n\r\nx\r\n")
				if err != nil {
					t.Errorf("send: %v", err)
					return
				}
				mu.Lock()
				tokens[id] = tok
				mu.Unlock()
			}
		}(c)
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(tokens) }
	for deadline := time.Now().Add(30 * time.Second); count() < 60 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	file := filepath.Join(t.TempDir(), "posthorn-backup.tar.gz")
	in.CLI(nil, "backup", file) // under load
	for deadline := time.Now().Add(30 * time.Second); count() < 120 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	in.Stop()

	restored := filepath.Join(t.TempDir(), "restored")
	out, err := exec.Command(binary, "restore", file, "--data-dir", restored).CombinedOutput()
	if err != nil {
		t.Fatalf("restore: %v: %s", err, out)
	}
	// Every key file came along, byte for byte.
	keyFiles := 0
	filepath.WalkDir(in.Dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !d.Type().IsRegular() {
			return err
		}
		rel, _ := filepath.Rel(in.Dir, p)
		if strings.HasPrefix(rel, "posthorn.db") || rel == "lock" {
			return nil
		}
		want, _ := os.ReadFile(p)
		got, err := os.ReadFile(filepath.Join(restored, rel))
		if err != nil || string(got) != string(want) {
			t.Errorf("%s not restored as it was: %v", rel, err)
		}
		keyFiles++
		return nil
	})
	if keyFiles == 0 {
		t.Error("the data directory had no key files to compare")
	}
	// Restoring over it again is refused without --force.
	if out, err := exec.Command(binary, "restore", file, "--data-dir", restored).CombinedOutput(); err == nil || !strings.Contains(string(out), "not empty") {
		t.Errorf("restore into a non-empty directory: %v %s", err, out)
	}

	// What the backup held: pending deliveries (to deliver) and delivered ones.
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(restored, "posthorn.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	pending, delivered := map[string]bool{}, map[string]bool{}
	rows, err := db.Query("SELECT message_id, state FROM deliveries")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id, st string
		if err := rows.Scan(&id, &st); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		tok, ok := tokens[id]
		mu.Unlock()
		if !ok {
			t.Fatalf("backup holds message %s that no client was told was queued", id)
		}
		switch {
		case store.State(st) == store.Delivered:
			delivered[tok] = true
		case !store.State(st).Final():
			pending[tok] = true
		default:
			t.Fatalf("message %s is %s in the backup", id, st)
		}
	}
	rows.Close()
	db.Close()
	if len(pending) == 0 || len(delivered) == 0 {
		t.Fatalf("backup holds %d pending and %d delivered deliveries; the test wants both", len(pending), len(delivered))
	}

	mx.ClearRecords()
	mx.SetScript(testkit.Script{})
	in2 := StartOn(t, restored, Options{DNS: w.dns.Addr(), DeliveryPort: mx.Port(), RetryMin: 300 * time.Millisecond, RetryMax: time.Second})
	// Wait until the restored server has nothing pending, then compare.
	deadline := time.Now().Add(60 * time.Second)
	for {
		var st server.Status
		in2.CLI(&st, "status")
		left := 0
		for s, n := range st.Queue {
			if !store.State(s).Final() {
				left += n
			}
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("restored server still has %d pending deliveries: %v", left, st.Queue)
		}
		time.Sleep(100 * time.Millisecond)
	}
	got := map[string]int{}
	for _, m := range mx.Messages() {
		if sm := opsTokenRe.FindSubmatch(m.Data); sm != nil {
			got[string(sm[1])]++
		}
	}
	for tok := range pending {
		if got[tok] != 1 {
			t.Errorf("pending in the backup: %s delivered %d times by the restored server, want 1", tok, got[tok])
		}
	}
	for tok, n := range got {
		if !pending[tok] {
			t.Errorf("%s delivered %d times by the restored server but was not pending in the backup (delivered there: %v)", tok, n, delivered[tok])
		}
	}
	t.Logf("backup held %d pending, %d delivered; the restored server delivered %d", len(pending), len(delivered), len(got))
}

// TestNewerSchemaRefused: posthorn refuses to start on (and config check
// reports) a database from a newer posthorn.
func TestNewerSchemaRefused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if out, err := exec.Command(binary, "init", "--data-dir", dir, "--json").CombinedOutput(); err != nil {
		t.Fatalf("init: %v %s", err, out)
	}
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(dir, "posthorn.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("PRAGMA user_version = 999"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	out := ServeFails(t, dir)
	for _, want := range []string{"schema version 999", "newer than this posthorn", "forward"} {
		if !strings.Contains(out, want) {
			t.Errorf("serve output lacks %q:\n%s", want, out)
		}
	}
	chk, err := exec.Command(binary, "config", "check", "--data-dir", dir).CombinedOutput()
	if err == nil || !strings.Contains(string(chk), "schema version 999") {
		t.Errorf("config check on a newer database: %v\n%s", err, chk)
	}
}

// TestOpsCLI: --version, status, env defaults, config check and init on an
// initialised directory.
func TestOpsCLI(t *testing.T) {
	in := Start(t, Options{})
	run := func(env []string, args ...string) (string, error) {
		cmd := exec.Command(binary, args...)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := run(nil, "--version"); err != nil || !strings.HasPrefix(out, "posthorn version ") {
		t.Errorf("--version: %v %q", err, out)
	}
	// POSTHORN_DATA_DIR instead of --data-dir.
	out, err := run([]string{"POSTHORN_DATA_DIR=" + in.Dir}, "status")
	if err != nil || !strings.Contains(out, "smtp     "+in.SMTP) || !strings.Contains(out, "deliveries") {
		t.Errorf("status with POSTHORN_DATA_DIR: %v\n%s", err, out)
	}
	var st server.Status
	in.CLI(&st, "status")
	if st.Listeners["smtp"] != in.SMTP || st.Listeners["http"] != in.HTTP || st.StoreBytes == 0 || st.PID == 0 || st.Version == "" {
		t.Errorf("status %+v", st)
	}
	// init again: exit 1 with what to do next.
	out, err = run(nil, "init", "--data-dir", in.Dir)
	if err == nil || !strings.Contains(out, "already initialised") || !strings.Contains(out, "posthorn user add") {
		t.Errorf("init on an initialised directory: %v\n%s", err, out)
	}
	// config check: POSTHORN_CONFIG names the file.
	bad := filepath.Join(t.TempDir(), "bad.toml")
	os.WriteFile(bad, []byte("retry_min = \"1h\"\nretry_max = \"1m\"\nno_such_key = 1\n"), 0o600)
	out, err = run([]string{"POSTHORN_CONFIG=" + bad}, "config", "check", "--data-dir", in.Dir)
	if err == nil || !strings.Contains(out, "problem:") || !strings.Contains(out, "no_such_key") {
		t.Errorf("config check of a bad file: %v\n%s", err, out)
	}
	good := filepath.Join(t.TempDir(), "good.toml")
	os.WriteFile(good, []byte("retry_min = \"1m\"\n"), 0o600)
	out, err = run(nil, "config", "check", good, "--data-dir", in.Dir)
	if err != nil || !strings.Contains(out, "is intact") {
		t.Errorf("config check of a good setup: %v\n%s", err, out)
	}
	os.Chmod(in.Dir, 0o770)
	defer os.Chmod(in.Dir, 0o700)
	out, err = run(nil, "config", "check", good, "--data-dir", in.Dir)
	if err == nil || !strings.Contains(out, "chmod 700") {
		t.Errorf("config check of a group-writable data dir: %v\n%s", err, out)
	}
}

// TestReloadTLSCertificate: SIGHUP re-reads the certificate files even
// when their names did not change (a renewal), and a broken file is
// refused with the old certificate kept in use.
func TestReloadTLSCertificate(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeCert := func(host string) {
		c, k, err := selfsigned.Generate(host)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(certFile, c, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(keyFile, k, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeCert("one.test")
	in := Start(t, Options{Config: fmt.Sprintf("[smtp]\ntls_cert = %q\ntls_key = %q\n", certFile, keyFile)})
	if got := starttlsName(t, in.SMTP); got != "one.test" {
		t.Fatalf("certificate for %q, want one.test", got)
	}
	writeCert("two.test")
	in.Signal(syscall.SIGHUP)
	in.WaitLog(10*time.Second, `msg="configuration reloaded"`, "tls certificate", "re-read")
	if got := starttlsName(t, in.SMTP); got != "two.test" {
		t.Fatalf("after reload: certificate for %q, want two.test", got)
	}
	if err := os.WriteFile(certFile, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	in.Signal(syscall.SIGHUP)
	in.WaitLog(10*time.Second, "configuration reload refused", "tls certificate")
	if got := starttlsName(t, in.SMTP); got != "two.test" {
		t.Fatalf("after a refused reload: certificate for %q, want two.test", got)
	}
}

// starttlsName does EHLO and STARTTLS and returns the name in the
// server's certificate.
func starttlsName(t *testing.T, addr string) string {
	t.Helper()
	c, err := Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Cmd(250, "EHLO client.test"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Cmd(220, "STARTTLS"); err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(c.c, &tls.Config{InsecureSkipVerify: true})
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	leaf := tc.ConnectionState().PeerCertificates[0]
	if len(leaf.DNSNames) > 0 {
		return leaf.DNSNames[0]
	}
	return leaf.Subject.CommonName
}
