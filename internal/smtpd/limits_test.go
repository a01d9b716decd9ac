package smtpd

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"
)

// TestConnectionsPerIP: one address may hold MaxConnectionsPerIP sessions;
// the next gets 421 4.7.0 while another address is still served, and a
// slot frees when a session ends.
func TestConnectionsPerIP(t *testing.T) {
	addr, _ := start(t, Config{MaxConnections: 100, MaxConnectionsPerIP: 3})
	greet := func(local string) (net.Conn, string) {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(5 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			t.Fatalf("greeting from %s: %v", local, err)
		}
		return c, line
	}
	var held []net.Conn
	for i := 0; i < 3; i++ {
		c, line := greet("127.0.0.1")
		if !strings.HasPrefix(line, "220 ") {
			t.Fatalf("session %d: %q", i+1, line)
		}
		held = append(held, c)
	}
	if _, line := greet("127.0.0.1"); !strings.HasPrefix(line, "421 4.7.0 ") || !strings.Contains(line, "your address") {
		t.Fatalf("4th session from one address: %q, want 421 4.7.0", line)
	}
	if _, line := greet("127.0.0.2"); !strings.HasPrefix(line, "220 ") {
		t.Fatalf("other address refused: %q", line)
	}
	// Ending one session frees its slot (the server notices asynchronously).
	held[0].Write([]byte("QUIT\r\n"))
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, line := greet("127.0.0.1")
		if strings.HasPrefix(line, "220 ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot not freed after QUIT: %q", line)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDataTotalTime: a client that trickles its body one byte at a time,
// each well within any idle timeout, is cut off when the DATA phase as a
// whole exceeds DataTimeout, with a 421 reply, and nothing is accepted.
func TestDataTotalTime(t *testing.T) {
	addr, rec := start(t, Config{ReadTimeout: 5 * time.Second, DataTimeout: 700 * time.Millisecond})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	c.Write([]byte("EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<ok@y.example>\r\nDATA\r\n"))
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(line, "354") {
			break
		}
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
				if _, err := c.Write([]byte("x")); err != nil {
					return
				}
			}
		}
	}()
	start := time.Now()
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("no reply when DATA ran out of time: %v", err)
	}
	if !strings.HasPrefix(line, "421 4.4.2 ") {
		t.Fatalf("reply %q, want 421 4.4.2", line)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("cut off after %s", d)
	}
	if _, err := r.ReadString('\n'); err == nil {
		t.Fatal("connection still open after the 421")
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.bodies) != 0 {
		t.Fatalf("a timed-out body was accepted: %q", rec.bodies)
	}
}
