package postgres

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/posthorn/posthorn/internal/store"
)

// TestEventsAfterWaitsForEarlierIDs: a transaction that took an event ID
// and has not committed yet (another node's writer) holds the cursor back:
// an event committed meanwhile with a larger ID is not handed out before
// it, so the reader, once the transaction commits, sees both and skips
// neither.
func TestEventsAfterWaitsForEarlierIDs(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	types := []string{"held", store.EventDelivered}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	var held int64
	if err := tx.QueryRow(ctx, `INSERT INTO events (at, type, tenant_id, message_id) VALUES ($1, 'held', 't1', 'm0') RETURNING id`,
		ms(time.Now())).Scan(&held); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordEvent(ctx, store.Event{At: time.Now(), Type: store.EventDelivered, TenantID: "t1", MessageID: "m1"}); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int64{}
	first, next, err := s.EventsAfter(ctx, 0, types, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range first {
		seen[e.Type] = e.ID
	}
	if next >= held {
		t.Fatalf("the cursor passed %d, an ID still held by a running transaction: %d (%+v)", held, next, first)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	rest, _, err := s.EventsAfter(ctx, next, types, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range rest {
		seen[e.Type] = e.ID
	}
	if seen["held"] != held || seen[store.EventDelivered] <= held {
		t.Fatalf("events seen: %v (held %d)", seen, held)
	}
}

// TestQueueShapeUsesItsIndex: the queue shape is read through the
// partial index deliveries_shape (its state list matches the index's),
// not by scanning every delivery.
func TestQueueShapeUsesItsIndex(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SET enable_seqscan = off"); err != nil {
		t.Fatal(err)
	}
	defer conn.Exec(ctx, "RESET enable_seqscan")
	rows, _ := conn.Query(ctx, "EXPLAIN "+queueShapeSQL)
	plan, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(plan, "\n"), "on deliveries_shape") {
		t.Fatalf("queue shape plan:\n%s", strings.Join(plan, "\n"))
	}
}
