package scan

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/accept"
	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/testkit/rspamd"
)

func startRspamd(t *testing.T) *rspamd.Server {
	t.Helper()
	s, err := rspamd.Start(2 * time.Minute)
	if errors.Is(err, rspamd.ErrMissing) {
		if os.Getenv("POSTHORN_REQUIRE_TOOLS") == "1" {
			t.Fatal("rspamd is not installed (POSTHORN_REQUIRE_TOOLS=1)")
		}
		t.Skip("rspamd is not installed")
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

const cleanMsg = "From: a@app.test\r\nTo: b@example.org\r\nSubject: hello\r\nMessage-ID: <1@app.test>\r\nDate: Thu, 3 Dec 2026 10:00:00 +0000\r\n\r\nHello there.\r\n"

// TestRspamdVerdicts talks to a real rspamd: GTUBE is rejected with its
// symbol, a plain message is not.
func TestRspamdVerdicts(t *testing.T) {
	s := startRspamd(t)
	r := &Rspamd{URL: s.URL}
	res, err := r.Scan(context.Background(), &Request{Body: []byte(strings.Replace(cleanMsg, "Hello there.", rspamd.GTUBE, 1)),
		From: "a@app.test", Rcpts: []string{"b@example.org"}, IP: "127.0.0.1", User: "alice", Helo: "client.test", QueueID: "Q1", Tenant: "t1"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Action != "reject" || !strings.Contains(strings.Join(res.Symbols, " "), "GTUBE") {
		t.Fatalf("GTUBE: %+v", res)
	}
	res, err = r.Scan(context.Background(), &Request{Body: []byte(strings.Replace(cleanMsg, "Hello there.", rspamd.GTUBEAddHeader, 1))})
	if err != nil || res.Action != "add header" {
		t.Fatalf("add-header pattern: %+v %v", res, err)
	}
	res, err = r.Scan(context.Background(), &Request{Body: []byte(cleanMsg), From: "a@app.test", Rcpts: []string{"b@example.org"}, IP: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Action != "no action" {
		t.Fatalf("cleanMsg message: %+v", res)
	}
}

type events struct {
	mu sync.Mutex
	es []store.Event
}

func (e *events) RecordEvent(_ context.Context, ev store.Event) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.es = append(e.es, ev)
	return nil
}

// TestFailOpenClosed: a scanner that accepts the connection and never
// answers (slow) and one that is down: open accepts with a scan_failed
// event, closed refuses with 451 / 503 and counts.
func TestFailOpenClosed(t *testing.T) {
	slow, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	go func() {
		for {
			c, err := slow.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open without an answer
		}
	}()
	down, _ := net.Listen("tcp", "127.0.0.1:0")
	downURL := "http://" + down.Addr().String()
	down.Close()
	for _, url := range []string{"http://" + slow.Addr().String(), downURL} {
		ev := &events{}
		c := &Check{Scanner: &Rspamd{URL: url}, Timeout: 300 * time.Millisecond, Events: ev,
			Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: time.Now}
		in := &accept.CheckInput{ID: "Q", Sub: &accept.Submission{TenantID: "t1", SMTPUser: "alice", Recipients: []string{"b@example.org"}}, Body: []byte(cleanMsg)}
		start := time.Now()
		v, err := c.Check(context.Background(), in)
		if err != nil || v == nil || len(v.Events) != 1 || v.Events[0].Type != EventFailed || v.Hold {
			t.Fatalf("%s fail open: %+v %v", url, v, err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("the scan took %s, over its timeout", d)
		}
		c.Default.FailClosed = true
		_, err = c.Check(context.Background(), in)
		rej, ok := accept.IsRejection(err)
		if !ok || rej.Code != 451 || rej.Enhanced != "4.7.1" || rej.HTTPStatus != 503 || rej.APICode != "scan_unavailable" {
			t.Fatalf("%s fail closed: %v", url, err)
		}
		if st := c.Stats(); st.FailedOpen != 1 || st.FailedClosed != 1 || len(ev.es) != 1 || ev.es[0].Type != EventFailed {
			t.Fatalf("%s: stats %+v, events %+v", url, st, ev.es)
		}
	}
}
