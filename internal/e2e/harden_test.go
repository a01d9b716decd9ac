package e2e

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// authFrom connects from local, says EHLO and tries AUTH PLAIN; it returns
// the reply line.
func authFrom(t *testing.T, in *Instance, local, user, pass string) string {
	t.Helper()
	c, err := DialFrom(in.SMTP, local)
	if err != nil {
		t.Fatalf("dial from %s: %v", local, err)
	}
	defer c.Close()
	if _, err := c.Cmd(250, "EHLO client.test"); err != nil {
		t.Fatal(err)
	}
	text, err := c.Cmd(0, "AUTH PLAIN "+plain(user, pass))
	if err != nil {
		t.Fatal(err)
	}
	return text
}

// TestAuthLockoutUnderLoad: the AUTH lockout holds when the attempts come
// all at once (each is counted before its password is checked) and per
// username across client addresses; successful logins do not count.
func TestAuthLockoutUnderLoad(t *testing.T) {
	in := Start(t, Options{Config: "[smtp]\nmax_auth_failures = 10\nmax_connections_per_ip = 200\n"})

	t.Run("successes do not count", func(t *testing.T) {
		for i := 0; i < 12; i++ {
			if r := authFrom(t, in, "127.0.0.20", in.Creds.SMTPUsername, in.Creds.SMTPPassword); !strings.HasPrefix(r, "235 ") {
				t.Fatalf("login %d: %q", i+1, r)
			}
		}
	})

	t.Run("parallel wrong passwords from one address", func(t *testing.T) {
		const n = 100
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			replies = map[string]int{}
		)
		start := make(chan struct{})
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				c, err := DialFrom(in.SMTP, "127.0.0.1")
				for try := 0; err != nil && try < 3; try++ { // a loaded machine may time out a dial
					c, err = DialFrom(in.SMTP, "127.0.0.1")
				}
				if err == nil {
					defer c.Close()
					_, err = c.Cmd(250, "EHLO client.test")
				}
				code := "error"
				if err == nil {
					<-start
					var text string
					text, err = c.Cmd(0, "AUTH PLAIN "+plain(fmt.Sprintf("guess%d@app.test", i), "wrong"))
					if len(text) >= 9 {
						code = text[:9] // "535 5.7.8"
					}
				} else {
					<-start
				}
				mu.Lock()
				replies[code]++
				mu.Unlock()
			}(i)
		}
		close(start)
		wg.Wait()
		t.Logf("replies: %v", replies)
		if replies["535 5.7.8"] > 10 || replies["535 5.7.8"] == 0 {
			t.Fatalf("%d of %d parallel wrong passwords got 535, want 1..10 (max_auth_failures): %v", replies["535 5.7.8"], n, replies)
		}
		if replies["535 5.7.8"]+replies["421 4.7.0"] != n {
			t.Fatalf("want every other attempt refused with 421 4.7.0: %v", replies)
		}
		// Locked out: even the right password is refused from this address.
		if r := authFrom(t, in, "127.0.0.1", in.Creds.SMTPUsername, in.Creds.SMTPPassword); !strings.HasPrefix(r, "421 4.7.0") {
			t.Fatalf("right password from a locked-out address: %q", r)
		}
	})

	t.Run("per username across addresses", func(t *testing.T) {
		for i := 0; i < 10; i++ {
			if r := authFrom(t, in, fmt.Sprintf("127.0.1.%d", i+1), in.Creds.SMTPUsername, "wrong"); !strings.HasPrefix(r, "535 ") {
				t.Fatalf("guess %d: %q", i+1, r)
			}
		}
		// A fresh address, the right password: the user is locked for now.
		if r := authFrom(t, in, "127.0.2.1", in.Creds.SMTPUsername, in.Creds.SMTPPassword); !strings.HasPrefix(r, "454 4.7.0") {
			t.Fatalf("locked-out user from a fresh address: %q, want 454 4.7.0", r)
		}
		// Other users from that address are not affected.
		if r := authFrom(t, in, "127.0.2.1", "someone-else@app.test", "wrong"); !strings.HasPrefix(r, "535 ") {
			t.Fatalf("another user: %q", r)
		}
	})
}

// TestConnectionLimitPerIP: one client address cannot take every session
// slot; others are still served.
func TestConnectionLimitPerIP(t *testing.T) {
	in := Start(t, Options{Config: "[smtp]\nmax_connections_per_ip = 3\n"})
	var held []*Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for i := 0; i < 3; i++ {
		c, err := DialFrom(in.SMTP, "127.0.0.3")
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		if _, err := c.Cmd(250, "EHLO client.test"); err != nil {
			t.Fatalf("session %d: %v", i+1, err)
		}
	}
	nc, err := DialFrom(in.SMTP, "127.0.0.3")
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
	if !strings.HasPrefix(nc.Greeting, "421 4.7.0") {
		t.Fatalf("4th session from one address: %q, want 421 4.7.0", nc.Greeting)
	}
	c, err := DialFrom(in.SMTP, "127.0.0.4")
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if !strings.HasPrefix(c.Greeting, "220 ") {
		t.Fatalf("another address: %q", c.Greeting)
	}
}

// TestDataTotalTimeout: a client trickling its message, a byte at a time,
// is cut off when the whole DATA phase exceeds smtp.data_timeout, gets a
// 421, and nothing is queued.
func TestDataTotalTimeout(t *testing.T) {
	in := Start(t, Options{Config: "[smtp]\ndata_timeout = \"1s\"\n"})
	c, err := Dial(in.SMTP)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	expect(t, c, "EHLO client.test", 250, "")
	expect(t, c, "AUTH PLAIN "+plain(in.Creds.SMTPUsername, in.Creds.SMTPPassword), 235, "")
	expect(t, c, "MAIL FROM:<slow@app.test>", 250, "")
	expect(t, c, "RCPT TO:<r@example.com>", 250, "")
	expect(t, c, "DATA", 354, "")
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		c.Write("Subject: slow\r\n\r\n")
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
				if c.Write("x") != nil {
					return
				}
			}
		}
	}()
	begin := time.Now()
	code, text, err := c.Read()
	if err != nil {
		t.Fatalf("no reply when DATA ran out of time: %v", err)
	}
	if code != 421 || !strings.Contains(text, "4.4.2") {
		t.Fatalf("reply %q, want 421 4.4.2", text)
	}
	if d := time.Since(begin); d > 10*time.Second {
		t.Fatalf("cut off only after %s", d)
	}
	var list struct {
		Count int `json:"count"`
	}
	in.CLI(&list, "queue", "list", "--state", "all")
	if list.Count != 0 {
		t.Fatalf("a timed-out DATA queued %d deliveries", list.Count)
	}
}

// TestDataDirRefusals: posthorn refuses to start on a data directory
// others may write, on an empty database file, with a hostname that is
// not a domain name and with trusted_networks 0.0.0.0/0, each with an
// error that names the problem.
func TestDataDirRefusals(t *testing.T) {
	t.Run("group/world-writable directory", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "data")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		os.Chmod(dir, 0o777)
		out := ServeFails(t, dir)
		if !strings.Contains(out, "chmod 700 "+dir) {
			t.Fatalf("error does not name the fix:\n%s", out)
		}
		if _, err := os.Stat(filepath.Join(dir, "posthorn.db")); err == nil {
			t.Fatal("a database was created in the loose directory")
		}
	})
	t.Run("empty database file", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "data")
		if err := exec.Command(binary, "init", "--data-dir", dir).Run(); err != nil {
			t.Fatal(err)
		}
		db := filepath.Join(dir, "posthorn.db")
		for _, p := range []string{db + "-wal", db + "-shm"} {
			os.Remove(p)
		}
		if err := os.Truncate(db, 0); err != nil {
			t.Fatal(err)
		}
		out := ServeFails(t, dir)
		if !strings.Contains(out, "empty (0-byte)") || !strings.Contains(out, db) {
			t.Fatalf("error does not say the database is empty:\n%s", out)
		}
	})
	t.Run("hostname with CRLF", func(t *testing.T) {
		out := ServeFails(t, filepath.Join(t.TempDir(), "data"), "--hostname", "mail.test\r\n250 injected")
		if !strings.Contains(out, "not a valid domain name") {
			t.Fatalf("error:\n%s", out)
		}
	})
	t.Run("trusted 0.0.0.0/0", func(t *testing.T) {
		out := ServeFails(t, filepath.Join(t.TempDir(), "data"), "--trusted-networks", "127.0.0.0/8,0.0.0.0/0")
		if !strings.Contains(out, "open relay") {
			t.Fatalf("error:\n%s", out)
		}
	})
}

// TestDataDirFilesPrivate: what posthorn creates in its data directory is
// for its own user only, and the CLI refuses an admin socket that someone
// else could have made.
func TestDataDirFilesPrivate(t *testing.T) {
	in := Start(t, Options{})
	in.Send("a@app.test", []string{"r@example.com"}, "Subject: x\r\n\r\nx\r\n") // WAL and shm in use
	fi, err := os.Stat(in.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("data dir mode %04o, want 0700", fi.Mode().Perm())
	}
	seen := 0
	filepath.WalkDir(in.Dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Error(err)
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		want := os.FileMode(0o600)
		switch {
		case d.IsDir():
			want = 0o700
		case d.Name() == "sendmail.sock":
			// Only queues mail, for local programs of other users
			// ([sendmail] socket_mode); behind the 0700 directory
			// unless [sendmail] socket moves it out.
			want = 0o666
		case fi.Mode()&os.ModeSocket != 0:
		case !fi.Mode().IsRegular():
			return nil
		}
		seen++
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %04o, want %04o", strings.TrimPrefix(p, in.Dir), fi.Mode().Perm(), want)
		}
		return nil
	})
	if seen < 6 { // dir, lock, db, -wal, -shm, tls, its key and cert, admin.sock
		t.Errorf("only %d entries checked", seen)
	}

	sock := filepath.Join(in.Dir, "admin.sock")
	if err := os.Chmod(sock, 0o666); err != nil {
		t.Fatal(err)
	}
	err = in.TryCLI(nil, "queue", "list")
	if err == nil || !strings.Contains(err.Error(), "refusing to use the admin socket") {
		t.Fatalf("CLI used a 0666 admin socket: %v", err)
	}
	if os.Getuid() == 0 {
		os.Chmod(sock, 0o600)
		os.Lchown(sock, 65534, 65534)
		err = in.TryCLI(nil, "queue", "list")
		if err == nil || !strings.Contains(err.Error(), "owned by uid 65534") {
			t.Fatalf("CLI used an admin socket of another user: %v", err)
		}
		os.Lchown(sock, 0, 0)
	}
	os.Chmod(sock, 0o600)
	in.CLI(nil, "queue", "list")
}
