package smtpclient

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// Test helpers: a scripted raw SMTP server and an accept-everything sink.

// testOpts are client options with short timeouts for tests.
func testOpts() Options {
	return Options{LocalName: "client.test", CommandTimeout: 3 * time.Second, DataTimeout: 3 * time.Second, GreetingTimeout: 3 * time.Second}
}

// fakeConn is the server side of one scripted connection.
type fakeConn struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

// send writes lines, each followed by CRLF, in one write.
func (f *fakeConn) send(lines ...string) {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l)
		b.WriteString("\r\n")
	}
	f.sendRaw(b.String())
}

func (f *fakeConn) sendRaw(s string) {
	if _, err := io.WriteString(f.c, s); err != nil {
		f.t.Errorf("fake server: write: %v", err)
	}
}

// line reads one command line without its CRLF.
func (f *fakeConn) line() string {
	l, err := f.r.ReadString('\n')
	if err != nil {
		f.t.Errorf("fake server: read: %v (partial %q)", err, l)
		return ""
	}
	if !strings.HasSuffix(l, "\r\n") {
		f.t.Errorf("fake server: command without CRLF: %q", l)
	}
	return strings.TrimSuffix(l, "\r\n")
}

// expect reads a command line and checks that it starts with prefix
// (case-insensitively).
func (f *fakeConn) expect(prefix string) string {
	l := f.line()
	if !strings.HasPrefix(strings.ToUpper(l), strings.ToUpper(prefix)) {
		f.t.Errorf("fake server: got %q, want prefix %q", l, prefix)
	}
	return l
}

// data reads DATA content up to and including the ".\r\n" line and
// returns it raw (dot-stuffed, without the terminating line).
func (f *fakeConn) data() string {
	var b strings.Builder
	for {
		l, err := f.r.ReadString('\n')
		if err != nil {
			f.t.Errorf("fake server: reading data: %v", err)
			return b.String()
		}
		if l == ".\r\n" {
			return b.String()
		}
		b.WriteString(l)
	}
}

// ehlo answers an EHLO with the given extensions.
func (f *fakeConn) ehlo(exts ...string) {
	f.expect("EHLO ")
	lines := []string{"250-fake.test hello"}
	for _, e := range exts {
		lines = append(lines, "250-"+e)
	}
	lines[len(lines)-1] = "250 " + lines[len(lines)-1][4:]
	f.send(lines...)
}

// quiet reports whether the client sends nothing within d.
func (f *fakeConn) quiet(d time.Duration) bool {
	if f.r.Buffered() > 0 {
		return false
	}
	_ = f.c.SetReadDeadline(time.Now().Add(d))
	_, err := f.r.Peek(1)
	_ = f.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// startFake listens on loopback and runs script on the first connection.
// The returned function waits for the script to finish.
func startFake(t *testing.T, script func(f *fakeConn)) (addr string, wait func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		ln.Close()
		if err != nil {
			t.Errorf("accept: %v", err)
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		script(&fakeConn{t: t, c: c, r: bufio.NewReader(c)})
	}()
	var once sync.Once
	wait = func() {
		once.Do(func() {
			select {
			case <-done:
			case <-time.After(15 * time.Second):
				t.Error("fake server script did not finish")
			}
		})
	}
	t.Cleanup(func() { ln.Close(); wait() })
	return ln.Addr().String(), wait
}

// dialClient connects to addr and runs New.
func dialClient(t *testing.T, addr string, opts Options) (*Client, error) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return New(conn, opts)
}

// mustClient dials addr, runs New and Hello, and closes the client at the
// end of the test.
func mustClient(t *testing.T, addr string) *Client {
	t.Helper()
	c, err := dialClient(t, addr, testOpts())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Hello(); err != nil {
		t.Fatalf("Hello: %v", err)
	}
	return c
}

// startSink runs an accept-everything SMTP server with PIPELINING that
// flushes replies only when it has no more input, like real pipelining
// servers. delivered waits for all connections so far to end and returns
// the number of messages accepted.
func startSink(tb testing.TB) (addr string, delivered func() int) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	n := 0
	acceptDone := make(chan struct{})
	go func() {
		defer close(acceptDone)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				k := serveSink(c)
				mu.Lock()
				n += k
				mu.Unlock()
			}()
		}
	}()
	tb.Cleanup(func() { ln.Close(); <-acceptDone; wg.Wait() })
	return ln.Addr().String(), func() int { wg.Wait(); mu.Lock(); defer mu.Unlock(); return n }
}

func serveSink(c net.Conn) (delivered int) {
	br := bufio.NewReaderSize(c, 64<<10)
	bw := bufio.NewWriterSize(c, 8<<10)
	bw.WriteString("220 sink.test ESMTP\r\n")
	if bw.Flush() != nil {
		return
	}
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return
		}
		verb := line
		if i := bytes.IndexAny(verb, " \r"); i >= 0 {
			verb = verb[:i]
		}
		switch string(bytes.ToUpper(verb)) {
		case "EHLO":
			bw.WriteString("250-sink.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250 SIZE 10000000\r\n")
		case "MAIL", "RCPT", "RSET", "NOOP":
			bw.WriteString("250 2.0.0 OK\r\n")
		case "DATA":
			bw.WriteString("354 go ahead\r\n")
			if bw.Flush() != nil {
				return
			}
			begin := true
			for {
				l, err := br.ReadSlice('\n')
				if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
					return
				}
				if begin && len(l) == 3 && l[0] == '.' && l[1] == '\r' && l[2] == '\n' {
					break
				}
				begin = err == nil
			}
			delivered++
			bw.WriteString("250 2.0.0 queued\r\n")
		case "QUIT":
			bw.WriteString("221 2.0.0 bye\r\n")
			bw.Flush()
			return
		default:
			bw.WriteString("500 5.5.2 unknown command\r\n")
		}
		if br.Buffered() == 0 && bw.Flush() != nil {
			return
		}
	}
}
