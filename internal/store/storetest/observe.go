package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/smtpproto"
	"github.com/posthorn/posthorn/internal/store"
)

// ObserverStore is a store with the metrics read side.
type ObserverStore interface {
	store.Store
	store.Observer
}

// Observer checks the metrics read side against rows written through the
// Store: the queue shape by state and lane with the oldest time, the
// pending ages by domain, that the cursors of AttemptsAfter, EventsAfter
// and MessagesAfter see every row once, and the per-domain queue with
// each domain's latest failure. Backends run it beside Run.
func Observer(t *testing.T, s ObserverStore) {
	ctx := context.Background()
	m1 := NewTestMessage("m1", "a@one.test", "b@two.test", "c@two.test")
	m1.Message.Lane = store.LaneHigh
	m2 := NewTestMessage("m2", "d@one.test")
	m2.Message.Source = "http"
	old := m2.Message.CreatedAt.Add(-90 * time.Minute)
	m2.Message.CreatedAt, m2.Deliveries[0].CreatedAt = old, old
	for _, d := range m1.Deliveries {
		d.Lane = store.LaneHigh
	}
	if err := s.InsertMessages(ctx, []*store.NewMessage{m1, m2}); err != nil {
		t.Fatal(err)
	}
	a, b := m1.Deliveries[0].ID, m1.Deliveries[1].ID
	if _, err := s.Lease(ctx, []int64{a, b}, t0, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	err := s.RecordOutcomes(ctx, []store.Outcome{
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

	ages, err := s.PendingAges(ctx, t0.Add(time.Minute), []time.Duration{5 * time.Minute, 80 * time.Minute}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(ages) != 2 || ages[0].Domain != "one.test" || ages[0].Buckets[0] != 0 || ages[0].Buckets[2] != 1 ||
		ages[1].Domain != "two.test" || ages[1].Buckets[0] != 1 {
		t.Fatalf("pending ages: %+v", ages)
	}
	if ages, err := s.PendingAges(ctx, t0.Add(time.Minute), nil, []store.State{store.Deferred}); err != nil || len(ages) != 0 {
		t.Fatalf("pending ages of deferred deliveries (none): %+v %v", ages, err)
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
	last, err := s.LastEventID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if evs, next2, err := s.EventsAfter(ctx, next, []string{store.EventDelivered}, 100); err != nil || len(evs) != 0 || next2 != next || next != last {
		t.Fatalf("after the cursor %d (last event %d): %+v %d %v", next, last, evs, next2, err)
	}
	if evs, _, err := s.EventsAfter(ctx, 0, []string{store.EventDeadLetter}, 2); err != nil || len(evs) != 0 {
		t.Fatalf("a window of 2 events holds no dead letter: %+v %v", evs, err)
	}
	ms, err := s.MessagesAfter(ctx, 0, 10)
	if err != nil || len(ms) != 2 || ms[0].Source != "smtp" || ms[1].Source != "http" {
		t.Fatalf("messages: %+v %v", ms, err)
	}
	if more, err := s.MessagesAfter(ctx, ms[0].Cursor, 10); err != nil || len(more) != 1 || more[0].Cursor != ms[1].Cursor {
		t.Fatalf("messages after the first: %+v %v", more, err)
	}

	// The per-domain queue: never attempted, then the latest failure of
	// the domain's pending deliveries (a reply, or a local error).
	pend, err := s.PendingByDomain(ctx, "")
	if err != nil || len(pend) != 2 || pend[0].Domain != "one.test" || pend[0].Pending != 1 || !pend[0].LastAttemptAt.IsZero() ||
		pend[0].LastFailure != "" || pend[1].Domain != "two.test" || pend[1].Pending != 1 {
		t.Fatalf("pending by domain: %+v %v", pend, err)
	}
	m3 := NewTestMessage("m3", "x@three.test", "y@three.test", "z@three.test")
	m3.Message.TenantID = "t2"
	if err := s.InsertMessages(ctx, []*store.NewMessage{m3}); err != nil {
		t.Fatal(err)
	}
	x, y := m3.Deliveries[0].ID, m3.Deliveries[1].ID
	if _, err := s.Lease(ctx, []int64{x, y}, t0, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	err = s.RecordOutcomes(ctx, []store.Outcome{
		{DeliveryID: y, State: store.Deferred, NextAt: t0.Add(time.Hour), Class: "connection_error", Error: "connection refused",
			StartedAt: t0.Add(2 * time.Second), Event: store.EventDeferred},
		{DeliveryID: x, State: store.Deferred, NextAt: t0.Add(time.Hour), Class: "greylisted",
			Reply: smtpproto.Reply{Code: 451, Enhanced: "4.7.1", Text: "try later"}, StartedAt: t0.Add(time.Second), Event: store.EventDeferred},
	})
	if err != nil {
		t.Fatal(err)
	}
	pend, err = s.PendingByDomain(ctx, "t2")
	if err != nil || len(pend) != 1 || pend[0].Domain != "three.test" || pend[0].Pending != 3 || pend[0].LastFailure != "connection refused" ||
		pend[0].LastClass != "connection_error" || !pend[0].LastAttemptAt.Equal(t0.Add(2*time.Second)) {
		t.Fatalf("pending by domain of t2: %+v %v", pend, err)
	}
	if _, err := s.Lease(ctx, []int64{y}, t0.Add(2*time.Hour), t0.Add(3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordOutcomes(ctx, []store.Outcome{{DeliveryID: y, State: store.Delivered, Class: "delivered", Reply: smtpproto.Reply{Code: 250},
		StartedAt: t0.Add(2 * time.Hour), Event: store.EventDelivered}}); err != nil {
		t.Fatal(err)
	}
	pend, err = s.PendingByDomain(ctx, "t2")
	if err != nil || len(pend) != 1 || pend[0].Pending != 2 || pend[0].LastFailure != "451 4.7.1 try later" || pend[0].LastClass != "greylisted" {
		t.Fatalf("pending by domain after the latest failure was delivered: %+v %v", pend, err)
	}
	if pend, err := s.PendingByDomain(ctx, "t1"); err != nil || len(pend) != 2 {
		t.Fatalf("pending by domain of t1: %+v %v", pend, err)
	}
}
