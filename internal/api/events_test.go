package api

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/events"
	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/store/sqlite"
)

// TestStreamCatchesUpAfterLagging: a follower that stops reading is cut
// loose from the broadcaster (the writer never waits for it) and, once
// it reads again, gets every event exactly once and in order, the missed
// ones from the store.
func TestStreamCatchesUpAfterLagging(t *testing.T) {
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	b := events.NewBroadcaster()
	st.SetEventSink(b.Publish)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		StreamEvents(w, r, st, b, store.EventFilter{TenantID: "t1"}, time.Hour)
	}))
	defer srv.Close()
	defer b.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rd := bufio.NewReaderSize(resp.Body, 1<<20)
	if line, err := rd.ReadString('\n'); err != nil || !strings.HasPrefix(line, ": posthorn") {
		t.Fatalf("first line %q %v", line, err)
	}
	// While the client reads nothing, write far more than the socket
	// buffers hold, one commit per event, so that more commits than the
	// subscription's buffer holds wait behind the blocked stream.
	const n = 700
	detail := strings.Repeat("x", 64<<10)
	for i := 0; i < n; i++ {
		tenant := "t1"
		if i%10 == 0 {
			tenant = "t2" // not this stream's
		}
		if err := st.RecordEvent(ctx, store.Event{At: time.Now(), Type: store.EventThrottle, TenantID: tenant, Detail: detail}); err != nil {
			t.Fatal(err)
		}
	}
	want := n - n/10
	var last int64
	for got := 0; got < want; {
		line, err := rd.ReadString('\n')
		if err != nil {
			t.Fatalf("after %d events: %v", got, err)
		}
		v, ok := strings.CutPrefix(strings.TrimSpace(line), "id: ")
		if !ok {
			continue
		}
		id, _ := strconv.ParseInt(v, 10, 64)
		if id <= last {
			t.Fatalf("event %d after %d: repeated or out of order", id, last)
		}
		last = id
		got++
	}
}
