package webhook

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/store/storetest"
	"github.com/posthorn/posthorn/internal/testkit/pgtest"
	"github.com/posthorn/posthorn/internal/testkit/stores"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestSenderOrderAndRetries runs the sender on a real store against a
// receiver that fails every other request: every event arrives, each
// message's in order, and a 410 disables the endpoint with an event.
// Run with -race: the sender's bookkeeping is shared by its requests.
func TestSenderOrderAndRetries(t *testing.T) { stores.Each(t, testSenderOrderAndRetries) }

func testSenderOrderAndRetries(t *testing.T, st store.Store) {
	ctx := context.Background()
	var mu sync.Mutex
	got := map[string][]int64{} // message -> event ids, in arrival order
	seen := map[string]bool{}
	tries := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		// Each webhook fails its first try: a global "every other
		// request" could fail one webhook past its whole retry schedule
		// when requests interleave, and a given-up webhook is no loss.
		id := r.Header.Get("webhook-id")
		if tries[id]++; tries[id] == 1 {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		var p Payload
		json.Unmarshal(body, &p)
		if !seen[id] {
			seen[id] = true
			got[p.Data.MessageID] = append(got[p.Data.MessageID], p.Data.EventID)
		}
	}))
	defer srv.Close()
	gone := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusGone) }))
	defer gone.Close()
	for _, e := range []store.WebhookEndpoint{{ID: "ep1", TenantID: "t1", URL: srv.URL, Events: []string{"queued"}},
		{ID: "ep2", TenantID: "t1", URL: gone.URL, Events: []string{"queued"}}} {
		e.Secret, e.CreatedAt = "whsec_c2VjcmV0", time.Now()
		if err := st.CreateEndpoint(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	s := New(Config{Schedule: []time.Duration{time.Millisecond, time.Millisecond, time.Millisecond, time.Millisecond},
		DisableAfter: time.Hour, MaxInFlight: 3, Guard: &Guard{AllowPrivate: true}, Log: slog.New(slog.DiscardHandler)}, st)
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	var msgs []*store.NewMessage
	for _, id := range []string{"m1", "m2", "m3", "m4"} {
		msgs = append(msgs, storetest.NewTestMessage(id, "a@one.test", "b@one.test", "c@one.test"))
	}
	if err := st.InsertMessages(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		total := len(seen)
		mu.Unlock()
		if total == 12 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of 12 webhooks arrived", total)
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	for m, ids := range got {
		for i := 1; i < len(ids); i++ {
			if ids[i] < ids[i-1] {
				t.Errorf("%s: events out of order: %v", m, ids)
			}
		}
	}
	mu.Unlock()
	for {
		evs, err := st.Events(ctx, store.EventFilter{Type: store.EventWebhookDisabled})
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the endpoint answering 410 was not disabled")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSenderDisablesFailingEndpoint: an endpoint whose requests all fail
// for DisableAfter is disabled with a webhook_disabled event, and its
// webhook stays in the outbox.
func TestSenderDisablesFailingEndpoint(t *testing.T) {
	stores.Each(t, testSenderDisablesFailingEndpoint)
}

func testSenderDisablesFailingEndpoint(t *testing.T, st store.Store) {
	ctx := context.Background()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusInternalServerError) }))
	defer srv.Close()
	if err := st.CreateEndpoint(ctx, store.WebhookEndpoint{ID: "ep1", TenantID: "t1", URL: srv.URL, Events: []string{"queued"},
		Secret: "whsec_c2VjcmV0", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	sched := make([]time.Duration, 1000)
	for i := range sched {
		sched[i] = 20 * time.Millisecond
	}
	s := New(Config{Schedule: sched, DisableAfter: 300 * time.Millisecond, Guard: &Guard{AllowPrivate: true},
		Log: slog.New(slog.DiscardHandler)}, st)
	s.Start(ctx)
	defer s.Stop()
	if err := st.InsertMessages(ctx, []*store.NewMessage{storetest.NewTestMessage("m1", "a@one.test")}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		evs, err := st.Events(ctx, store.EventFilter{Type: store.EventWebhookDisabled})
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 1 {
			if evs[0].TenantID != "t1" || !strings.Contains(evs[0].Detail, "every request failed since") {
				t.Fatalf("event: %+v", evs[0])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("not disabled")
		}
		time.Sleep(10 * time.Millisecond)
	}
	e, err := st.GetEndpoint(ctx, "t1", "ep1")
	if err != nil || e.DisabledAt.IsZero() || e.Pending != 1 {
		t.Fatalf("endpoint: %+v %v", e, err)
	}
	as, err := st.WebhookAttempts(ctx, "t1", "ep1", 0)
	if err != nil || len(as) < 2 || as[0].Status != 500 || as[len(as)-1].At.Add(300*time.Millisecond).After(as[0].At.Add(time.Millisecond)) {
		t.Fatalf("attempts: %d, first %v last %v (%v)", len(as), as[len(as)-1].At, as[0].At, err)
	}
}
