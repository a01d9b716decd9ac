package sqlite

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/smtpproto"
	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/store/storetest"
)

// TestObserver checks the metrics read side against rows written through
// the Store: the queue shape by state and lane with the oldest time, the
// pending ages by domain, and that the cursors of AttemptsAfter,
// EventsAfter and MessagesAfter see every row once.
func TestObserver(t *testing.T) {
	ctx := context.Background()
	s, err := Open(filepath.Join(t.TempDir(), "posthorn.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m1 := storetest.NewTestMessage("m1", "a@one.test", "b@two.test", "c@two.test")
	m1.Message.Lane = store.LaneHigh
	m2 := storetest.NewTestMessage("m2", "d@one.test")
	m2.Message.Source = "http"
	old := m2.Message.CreatedAt.Add(-90 * time.Minute)
	m2.Message.CreatedAt, m2.Deliveries[0].CreatedAt = old, old
	for _, d := range m1.Deliveries {
		d.Lane = store.LaneHigh
	}
	if err := s.InsertMessages(ctx, []*store.NewMessage{m1, m2}); err != nil {
		t.Fatal(err)
	}
	t0 := m1.Message.CreatedAt
	a, b := m1.Deliveries[0].ID, m1.Deliveries[1].ID
	if _, err := s.Lease(ctx, []int64{a, b}, t0, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	err = s.RecordOutcomes(ctx, []store.Outcome{
		{DeliveryID: a, State: store.Delivered, Class: "delivered", Reply: smtpproto.Reply{Code: 250}, StartedAt: t0.Add(3 * time.Second), Event: store.EventDelivered},
		{DeliveryID: b, State: store.DeadLetter, Class: "connection_error", Provider: "google", StartedAt: t0, Event: store.EventDeadLetter},
	})
	if err != nil {
		t.Fatal(err)
	}

	shape, err := s.QueueShape(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, r := range shape {
		got[string(r.State)+"/"+string(r.Lane)] = r.Count
		if r.State == store.Queued && r.Lane == store.LaneNormal && !r.Oldest.Equal(old) {
			t.Errorf("oldest queued normal: %v, want %v", r.Oldest, old)
		}
	}
	want := map[string]int{"queued/high": 1, "queued/normal": 1, "dead_letter/high": 1}
	if len(got) != len(want) {
		t.Fatalf("shape %v, want %v", got, want)
	}
	for k, n := range want {
		if got[k] != n {
			t.Fatalf("shape %v, want %v", got, want)
		}
	}
	// The shape is read from the covering index alone.
	var plan strings.Builder
	rows, err := s.r.Query(`EXPLAIN QUERY PLAN SELECT state, lane, count(*), min(created_at) FROM deliveries INDEXED BY deliveries_shape
		WHERE state IN (` + store.SQLList(shapeStates) + `) GROUP BY state, lane`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id, parent, unused int
		var detail string
		rows.Scan(&id, &parent, &unused, &detail)
		plan.WriteString(detail + "\n")
	}
	rows.Close()
	if !strings.Contains(plan.String(), "COVERING INDEX deliveries_shape") {
		t.Errorf("queue shape does not use the covering index:\n%s", plan.String())
	}

	ages, err := s.PendingAges(ctx, t0.Add(time.Minute), []time.Duration{5 * time.Minute, 80 * time.Minute}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(ages) != 2 || ages[0].Domain != "one.test" || ages[0].Buckets[0] != 0 || ages[0].Buckets[2] != 1 ||
		ages[1].Domain != "two.test" || ages[1].Buckets[0] != 1 {
		t.Fatalf("pending ages: %+v", ages)
	}

	at, err := s.AttemptsAfter(ctx, 0, 1)
	if err != nil || len(at) != 1 || at[0].Class != "delivered" || at[0].Domain != "one.test" {
		t.Fatalf("attempts after 0: %+v %v", at, err)
	}
	at, err = s.AttemptsAfter(ctx, at[0].ID, 10)
	if err != nil || len(at) != 1 || at[0].Class != "connection_error" || at[0].Provider != "google" {
		t.Fatalf("attempts after the first: %+v %v", at, err)
	}
	evs, next, err := s.EventsAfter(ctx, 0, []string{store.EventDelivered}, 100)
	if err != nil || len(evs) != 1 || evs[0].Lane != store.LaneHigh || evs[0].At.Sub(evs[0].CreatedAt) != 3*time.Second {
		t.Fatalf("delivered events: %+v %v", evs, err)
	}
	// 4 queued events + delivered + dead_letter: the cursor passes them all.
	if evs, next2, err := s.EventsAfter(ctx, next, []string{store.EventDelivered}, 100); err != nil || len(evs) != 0 || next2 != next || next != 6 {
		t.Fatalf("after the cursor %d: %+v %d %v", next, evs, next2, err)
	}
	if evs, _, err := s.EventsAfter(ctx, 0, []string{store.EventDeadLetter}, 2); err != nil || len(evs) != 0 {
		t.Fatalf("a window of 2 events holds no dead letter: %+v %v", evs, err)
	}
	ms, err := s.MessagesAfter(ctx, 0, 10)
	if err != nil || len(ms) != 2 || ms[0].Source != "smtp" || ms[1].Source != "http" {
		t.Fatalf("messages: %+v %v", ms, err)
	}
}
