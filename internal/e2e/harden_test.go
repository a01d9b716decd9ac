package e2e

import (
	"fmt"
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
