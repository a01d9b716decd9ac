package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/store"
)

// Alerts checks the alert store: PutAlert keeps the state and logs its
// event in one write, UpdateAlert replaces the state alone, ListAlerts
// returns firing alerts and those resolved since a time, and
// OldestQueued is when the oldest waiting delivery became due (its
// message's send_at when later than its acceptance). Backends run it
// beside Run.
func Alerts(t *testing.T, s store.Store) {
	ctx := context.Background()
	if id, err := s.LastEventID(ctx); err != nil || id != 0 {
		t.Fatalf("last event id of an empty store: %d %v", id, err)
	}
	if at, err := s.OldestQueued(ctx); err != nil || !at.IsZero() {
		t.Fatalf("oldest queued of an empty store: %v %v", at, err)
	}
	fired := store.Alert{Key: "queue_age", Rule: "queue_age", Kind: "queue_age", Firing: true, Value: 900, Threshold: 600, FiredAt: t0,
		Action: "pause", ActionState: "applied", Detail: "oldest 15m"}
	if err := s.PutAlert(ctx, fired, store.Event{At: t0, Type: store.EventAlertFired, Detail: "queue_age"}); err != nil {
		t.Fatal(err)
	}
	evs, err := s.Events(ctx, store.EventFilter{Type: store.EventAlertFired})
	if err != nil || len(evs) != 1 || evs[0].Detail != "queue_age" {
		t.Fatalf("alert_fired events: %+v %v", evs, err)
	}
	if id, err := s.LastEventID(ctx); err != nil || id != evs[0].ID {
		t.Fatalf("last event id %d %v, want %d", id, err, evs[0].ID)
	}
	other := store.Alert{Key: "bounce_rate/gmail", Rule: "bounce_rate", Kind: "rate", Destination: "gmail", Firing: true, Value: 0.2,
		Threshold: 0.1, FiredAt: t0.Add(time.Minute)}
	if err := s.PutAlert(ctx, other, store.Event{At: t0, Type: store.EventAlertFired, Detail: "bounce_rate"}); err != nil {
		t.Fatal(err)
	}
	released := fired
	released.ActionState = "released"
	if err := s.UpdateAlert(ctx, released); err != nil {
		t.Fatal(err)
	}
	as, err := s.ListAlerts(ctx, t0)
	if err != nil || len(as) != 2 || as[0].Key != "bounce_rate/gmail" || as[0].Destination != "gmail" || as[0].Value != 0.2 ||
		as[1].ActionState != "released" || !as[1].FiredAt.Equal(t0) {
		t.Fatalf("alerts (newest first): %+v %v", as, err)
	}
	resolved := released
	resolved.Firing, resolved.ResolvedAt, resolved.ActionState = false, t0.Add(time.Hour), "ended"
	if err := s.PutAlert(ctx, resolved, store.Event{At: t0.Add(time.Hour), Type: store.EventAlertResolved, Detail: "queue_age"}); err != nil {
		t.Fatal(err)
	}
	if as, err := s.ListAlerts(ctx, t0.Add(time.Hour)); err != nil || len(as) != 2 || as[1].Firing || !as[1].ResolvedAt.Equal(t0.Add(time.Hour)) {
		t.Fatalf("alerts with the one resolved at since: %+v %v", as, err)
	}
	if as, err := s.ListAlerts(ctx, t0.Add(2*time.Hour)); err != nil || len(as) != 1 || as[0].Key != "bounce_rate/gmail" {
		t.Fatalf("alerts resolved before since are not listed: %+v %v", as, err)
	}

	// OldestQueued: a later send_at counts, not the acceptance.
	early := NewTestMessage("m1", "a@one.test")
	later := NewTestMessage("m2", "b@one.test")
	early.Message.CreatedAt, early.Deliveries[0].CreatedAt = t0.Add(-time.Hour), t0.Add(-time.Hour)
	early.Message.SendAt = t0.Add(time.Hour)
	later.Message.CreatedAt, later.Deliveries[0].CreatedAt = t0.Add(-time.Minute), t0.Add(-time.Minute)
	if err := s.InsertMessages(ctx, []*store.NewMessage{early, later}); err != nil {
		t.Fatal(err)
	}
	if at, err := s.OldestQueued(ctx); err != nil || !at.Equal(t0.Add(-time.Minute)) {
		t.Fatalf("oldest queued %v %v, want %v", at, err, t0.Add(-time.Minute))
	}
}
