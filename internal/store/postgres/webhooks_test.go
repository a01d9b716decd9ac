package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/store/storetest"
	"github.com/posthorn/posthorn/internal/testkit/pgtest"
)

// TestWebhooksAcrossNodes: two nodes on one database. An endpoint created
// through one is used at once by the other's event writer (subscriptions
// are not cached per node), disabling it on one stops the other queueing
// for it, and a commit of outbox rows on one node pokes the other's
// WebhookSignal (NOTIFY).
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
	items, err := a.DueWebhooks(ctx, time.Now(), 10)
	if err != nil || len(items) != 1 || items[0].Event.MessageID != "m1" {
		t.Fatalf("due on node a after node b's write: %+v %v", items, err)
	}
	// Disabled through node a: node b queues nothing more for it.
	if err := a.RecordWebhookAttempt(ctx, store.WebhookResult{OutboxID: items[0].ID, EndpointID: "ep1", N: 1, At: time.Now(), Status: 410,
		NextAt: time.Now(), Disable: true, Detail: "gone"}); err != nil {
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
