package postgres

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/store/storetest"
	"github.com/posthorn/posthorn/internal/testkit/pgtest"
)

// TestWebhooksAcrossNodes: two nodes on one database. An endpoint created
// through one is used at once by the other's event writer (subscriptions
// are not cached per node), a commit of outbox rows on one node pokes the
// other's WebhookSignal (NOTIFY), a row one node's sender read is not
// handed to the other's until recorded or its claim expired, and
// disabling the endpoint on one stops the other queueing for it.
func TestWebhooksAcrossNodes(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	a, err := Open(ctx, url, WithNode("a"))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(ctx, url, WithNode("b"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	signal := a.WebhookSignal()
	if err := a.CreateEndpoint(ctx, store.WebhookEndpoint{ID: "ep1", TenantID: "t1", URL: "https://hooks.test/ep1", Events: []string{"queued"},
		Secret: "whsec_c2VjcmV0", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	select { // nothing was queued yet; drop a stray poke
	case <-signal:
	default:
	}
	if err := b.InsertMessages(ctx, []*store.NewMessage{storetest.NewTestMessage("m1", "x@one.test")}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-signal:
	case <-time.After(10 * time.Second):
		t.Fatal("node a was not told of node b's outbox rows")
	}
	now := time.Now()
	items, err := a.DueWebhooks(ctx, now, 10)
	if err != nil || len(items) != 1 || items[0].Event.MessageID != "m1" {
		t.Fatalf("due on node a after node b's write: %+v %v", items, err)
	}
	// Node a claimed it: node b's sender leaves it alone (until the claim
	// expires), node a's reads it again.
	if items, err := b.DueWebhooks(ctx, now, 10); err != nil || len(items) != 0 {
		t.Fatalf("due on node b while node a has it: %+v %v", items, err)
	}
	if again, err := a.DueWebhooks(ctx, now, 10); err != nil || len(again) != 1 || again[0].ID != items[0].ID {
		t.Fatalf("due on node a again: %+v %v", again, err)
	}
	if next, err := b.NextWebhookDue(ctx, now); err != nil || !next.Equal(fromMS(ms(now.Add(claimTTL)))) {
		t.Fatalf("next due on node b: %v %v, want the claim's end", next, err)
	}
	if late, err := b.DueWebhooks(ctx, now.Add(claimTTL), 10); err != nil || len(late) != 1 {
		t.Fatalf("due on node b once node a's claim expired: %+v %v", late, err)
	}
	// A recorded failure ends the claim: the retry may go from any node.
	retry := now.Add(time.Second)
	if err := b.RecordWebhookAttempt(ctx, store.WebhookResult{OutboxID: items[0].ID, EndpointID: "ep1", N: 1, At: now, Status: 500,
		NextAt: retry}); err != nil {
		t.Fatal(err)
	}
	items, err = a.DueWebhooks(ctx, retry, 10)
	if err != nil || len(items) != 1 || items[0].Attempts != 1 {
		t.Fatalf("due on node a at the retry: %+v %v", items, err)
	}
	// Disabled through node a: node b queues nothing more for it.
	if err := a.RecordWebhookAttempt(ctx, store.WebhookResult{OutboxID: items[0].ID, EndpointID: "ep1", N: 2, At: retry, Status: 410,
		NextAt: retry, Disable: true, Detail: "gone"}); err != nil {
		t.Fatal(err)
	}
	if err := b.InsertMessages(ctx, []*store.NewMessage{storetest.NewTestMessage("m2", "y@one.test")}); err != nil {
		t.Fatal(err)
	}
	if e, err := b.GetEndpoint(ctx, "t1", "ep1"); err != nil || e.DisabledAt.IsZero() || e.Pending != 1 {
		t.Fatalf("endpoint seen from node b: %+v %v (want disabled, only m1's row)", e, err)
	}
}

// TestWebhookSignalAfterReconnect: when the listening connection is cut,
// the listener connects again, pokes once (notifications sent meanwhile
// were lost) and goes on listening.
func TestWebhookSignalAfterReconnect(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	signal := s.WebhookSignal()
	if _, err := s.pool.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE 'LISTEN%'`); err != nil {
		t.Fatal(err)
	}
	select {
	case <-signal:
	case <-time.After(10 * time.Second):
		t.Fatal("no poke after the listener reconnected")
	}
	// Listening again: a notification reaches the signal.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := s.pool.Exec(ctx, "SELECT pg_notify($1, '')", webhookChannel); err != nil {
			t.Fatal(err)
		}
		select {
		case <-signal:
			return
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("the listener does not listen again")
		}
	}
}

// TestDueWebhooksClaimRace: nodes reading the outbox at the same moment
// never both get one row.
func TestDueWebhooksClaimRace(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	nodes := make([]*Store, 3)
	for i := range nodes {
		s, err := Open(ctx, url, WithNode(fmt.Sprintf("n%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		nodes[i] = s
	}
	if err := nodes[0].CreateEndpoint(ctx, store.WebhookEndpoint{ID: "ep1", TenantID: "t1", URL: "https://hooks.test/ep1",
		Events: []string{"queued"}, Secret: "whsec_c2VjcmV0", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	var msgs []*store.NewMessage
	for i := range 40 {
		msgs = append(msgs, storetest.NewTestMessage(fmt.Sprintf("m%d", i), "x@one.test"))
	}
	if err := nodes[0].InsertMessages(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	var mu sync.Mutex
	owner := map[int64]string{}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for _, s := range nodes {
		for range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				items, err := s.DueWebhooks(ctx, now, 100)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				defer mu.Unlock()
				for _, it := range items {
					if o, ok := owner[it.ID]; ok && o != s.node {
						t.Errorf("row %d handed to %s and %s", it.ID, o, s.node)
					}
					owner[it.ID] = s.node
				}
			}()
		}
	}
	close(start)
	wg.Wait()
	if len(owner) != 40 {
		t.Fatalf("%d of 40 rows handed out", len(owner))
	}
}
