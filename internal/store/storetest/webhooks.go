package storetest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/smtpproto"
	"github.com/posthorn/posthorn/internal/store"
)

// testWebhookOutbox proves the outbox: rows written with the events their
// tenant's endpoints subscribe to (and only those), one due row per
// (endpoint, message) at a time, retries, give-up, disabling, deletion,
// and nothing written for a write that failed.
func testWebhookOutbox(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustEP := func(id, tenant string, events ...string) {
		t.Helper()
		if err := s.CreateEndpoint(ctx, store.WebhookEndpoint{ID: id, TenantID: tenant, URL: "https://hooks.test/" + id, Events: events,
			Secret: "whsec_c2VjcmV0", CreatedAt: t0}); err != nil {
			t.Fatal(err)
		}
	}
	mustEP("ep1", "t1", "delivered")
	mustEP("ep2", "t1", "queued", "delivered")
	mustEP("ep3", "t2", "queued")
	select { // drain a poke from an earlier write
	case <-s.WebhookSignal():
	default:
	}
	// One message of t1 with two recipients: two queued events, for ep2.
	m1 := NewTestMessage("m1", "a@one.test", "b@one.test")
	m1.Message.Tags, m1.Message.Metadata = []string{"welcome"}, map[string]string{"user": "42"}
	if err := s.InsertMessages(ctx, []*store.NewMessage{m1}); err != nil {
		t.Fatal(err)
	}
	// The signal may cross a connection (PostgreSQL's NOTIFY): wait for it.
	select {
	case <-s.WebhookSignal():
	case <-time.After(10 * time.Second):
		t.Fatal("no signal after outbox rows were committed")
	}
	due := func(now time.Time) map[string][]store.OutboxItem {
		t.Helper()
		items, err := s.DueWebhooks(ctx, now, 100)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string][]store.OutboxItem{}
		for _, it := range items {
			out[it.EndpointID] = append(out[it.EndpointID], it)
		}
		return out
	}
	d := due(t0)
	if len(d) != 1 || len(d["ep2"]) != 1 || d["ep2"][0].Event.Type != "queued" || d["ep2"][0].Event.Recipient != "a@one.test" ||
		d["ep2"][0].Key != "m1" || d["ep2"][0].URL != "https://hooks.test/ep2" || d["ep2"][0].Secret == "" ||
		!slices.Equal(d["ep2"][0].Tags, []string{"welcome"}) || d["ep2"][0].Metadata["user"] != "42" {
		t.Fatalf("due after insert (one row per endpoint and message at a time): %+v", d)
	}
	first := d["ep2"][0]
	// A failed attempt reschedules it; nothing of m1 is due before then.
	retry := t0.Add(time.Minute)
	if err := s.RecordWebhookAttempt(ctx, store.WebhookResult{OutboxID: first.ID, EndpointID: "ep2", EventID: first.Event.ID,
		EventType: "queued", N: 1, At: t0, Status: 500, Error: "answered 500", NextAt: retry}); err != nil {
		t.Fatal(err)
	}
	if d := due(t0.Add(time.Second)); len(d) != 0 {
		t.Fatalf("due while the message's first webhook waits for its retry: %+v", d)
	}
	if next, err := s.NextWebhookDue(ctx, t0); err != nil || !next.Equal(retry) {
		t.Fatalf("next due %v %v, want %v", next, err, retry)
	}
	if d := due(retry); len(d["ep2"]) != 1 || d["ep2"][0].ID != first.ID || d["ep2"][0].Attempts != 1 || d["ep2"][0].FailingSince.IsZero() {
		t.Fatalf("due at the retry: %+v", d)
	}
	// Delivered: the next of m1 becomes due.
	if err := s.RecordWebhookAttempt(ctx, store.WebhookResult{OutboxID: first.ID, EndpointID: "ep2", EventID: first.Event.ID,
		EventType: "queued", N: 2, At: retry, Status: 204, OK: true}); err != nil {
		t.Fatal(err)
	}
	d = due(retry)
	if len(d["ep2"]) != 1 || d["ep2"][0].Event.Recipient != "b@one.test" || !d["ep2"][0].FailingSince.IsZero() {
		t.Fatalf("due after the first was delivered: %+v", d)
	}
	second := d["ep2"][0]
	// A delivered event of t1 goes to ep1 and ep2; of t2 to nobody.
	if err := s.RecordEvent(ctx, store.Event{At: t0, Type: "delivered", TenantID: "t1", MessageID: "m9", Recipient: "c@one.test"}); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordEvent(ctx, store.Event{At: t0, Type: "delivered", TenantID: "t2", MessageID: "m8"}); err != nil {
		t.Fatal(err)
	}
	d = due(retry)
	if len(d["ep1"]) != 1 || len(d["ep2"]) != 2 || len(d["ep3"]) != 0 || d["ep1"][0].Event.MessageID != "m9" {
		t.Fatalf("due after delivered events: %+v", d)
	}
	// The limit is per endpoint: ep2's backlog does not hide ep1's row.
	if items, err := s.DueWebhooks(ctx, retry, 1); err != nil || len(items) != 2 || items[0].EndpointID == items[1].EndpointID {
		t.Fatalf("due with limit 1: %+v %v", items, err)
	}
	// Given up: the row stays as failed, the message's next may go.
	if err := s.RecordWebhookAttempt(ctx, store.WebhookResult{OutboxID: second.ID, EndpointID: "ep2", N: 9, At: retry, GiveUp: true,
		Error: "refused"}); err != nil {
		t.Fatal(err)
	}
	// Disabling ep1 writes webhook_disabled; later events skip it.
	if err := s.RecordWebhookAttempt(ctx, store.WebhookResult{OutboxID: d["ep1"][0].ID, EndpointID: "ep1", N: 1, At: retry, Status: 410,
		NextAt: retry, Disable: true, Detail: "gone"}); err != nil {
		t.Fatal(err)
	}
	evs, err := s.Events(ctx, store.EventFilter{TenantID: "t1", Type: store.EventWebhookDisabled})
	if err != nil || len(evs) != 1 || evs[0].Detail != "gone" {
		t.Fatalf("webhook_disabled events: %+v %v", evs, err)
	}
	if err := s.RecordEvent(ctx, store.Event{At: t0, Type: "delivered", TenantID: "t1", MessageID: "m7"}); err != nil {
		t.Fatal(err)
	}
	eps, err := s.ListEndpoints(ctx, "t1")
	if err != nil || len(eps) != 2 {
		t.Fatalf("endpoints: %+v %v", eps, err)
	}
	for _, e := range eps {
		switch e.ID {
		case "ep1":
			if e.DisabledAt.IsZero() || e.Pending != 1 {
				t.Errorf("ep1: %+v (want disabled, its one row kept)", e)
			}
		case "ep2":
			if e.Pending != 2 || !slices.Equal(e.Events, []string{"queued", "delivered"}) {
				t.Errorf("ep2: %+v (want the m9 and m7 rows)", e)
			}
		}
	}
	if d := due(retry); len(d["ep1"]) != 0 {
		t.Fatalf("a disabled endpoint's rows are due: %+v", d)
	}
	// Tenant scoping: t2 cannot see, test, enable or delete t1's endpoint.
	if _, err := s.GetEndpoint(ctx, "t2", "ep2"); err == nil {
		t.Fatal("t2 sees ep2")
	}
	if err := s.DeleteEndpoint(ctx, "t2", "ep2"); err == nil {
		t.Fatal("t2 deleted ep2")
	}
	if err := s.QueueTestWebhook(ctx, "t2", "ep2", t0); err == nil {
		t.Fatal("t2 tested ep2")
	}
	as, err := s.WebhookAttempts(ctx, "t1", "ep2", 10)
	if err != nil || len(as) != 3 || as[0].N != 9 || as[2].Status != 500 || as[1].WebhookID != store.WebhookID(first.ID) {
		t.Fatalf("attempts (newest first): %+v %v", as, err)
	}
	// A write that fails leaves no outbox row: the event and its rows
	// share the transaction.
	bad := NewTestMessage("m2", "x@one.test")
	bad.Deliveries = append(bad.Deliveries, &store.Delivery{Recipient: "y@one.test", Domain: "one.test", Lane: store.LaneNormal,
		State: store.Delivered, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)})
	if err := s.InsertMessages(ctx, []*store.NewMessage{bad}); err == nil {
		t.Fatal("a message with a delivered delivery was accepted")
	}
	if eps, _ := s.ListEndpoints(ctx, "t1"); eps[1].Pending != 2 {
		t.Fatalf("a failed write left outbox rows: %+v", eps[1])
	}
	// Enabling ep1 again: it gets events again. Deleting ep2 drops its rows.
	if err := s.EnableEndpoint(ctx, "t1", "ep1"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteEndpoint(ctx, "t1", "ep2"); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordEvent(ctx, store.Event{At: t0, Type: "delivered", TenantID: "t1", MessageID: "m6"}); err != nil {
		t.Fatal(err)
	}
	if d := due(retry.Add(time.Hour)); len(d["ep1"]) != 2 || len(d["ep2"]) != 0 {
		t.Fatalf("after enable and delete: %+v", d)
	}
	if n, err := s.WebhookOutboxDepth(ctx); err != nil || n != 2 {
		t.Fatalf("outbox depth %d %v, want ep1's 2 pending rows", n, err)
	}
	// A test webhook goes to its endpoint only, as a webhook_test event
	// of the endpoint's tenant with no message (order key "").
	mustEP("ep4", "t1", "webhook_test")
	if err := s.QueueTestWebhook(ctx, "", "ep1", retry); err != nil {
		t.Fatal(err)
	}
	if err := s.QueueTestWebhook(ctx, "t1", "nope", retry); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("test webhook of a missing endpoint: %v", err)
	}
	d = due(retry.Add(time.Hour))
	var test *store.OutboxItem
	for i, it := range d["ep1"] {
		if it.Event.Type == store.EventWebhookTest {
			test = &d["ep1"][i]
		}
	}
	if len(d["ep4"]) != 0 || len(d["ep1"]) != 3 || test == nil || test.Key != "" || test.Event.TenantID != "t1" || test.Missing {
		t.Fatalf("due after a test webhook: %+v", d)
	}
	if n, err := s.WebhookOutboxDepth(ctx); err != nil || n != 3 {
		t.Fatalf("outbox depth %d %v after a test webhook", n, err)
	}
	// An attempt's event carries the attempt's class and reply.
	mustEP("ep5", "t1", "deferred")
	m5 := NewTestMessage("m5", "e@one.test")
	if err := s.InsertMessages(ctx, []*store.NewMessage{m5}); err != nil {
		t.Fatal(err)
	}
	id := m5.Deliveries[0].ID
	if _, err := s.Lease(ctx, []int64{id}, t0, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordOutcomes(ctx, []store.Outcome{{DeliveryID: id, State: store.Deferred, NextAt: t0.Add(time.Hour), Class: "greylisted",
		Reply: smtpproto.Reply{Code: 451, Enhanced: "4.7.1", Text: "later"}, MX: "mx.one.test", StartedAt: t0, Event: store.EventDeferred}}); err != nil {
		t.Fatal(err)
	}
	d = due(retry.Add(time.Hour))
	if len(d["ep5"]) != 1 || d["ep5"][0].Class != "greylisted" || d["ep5"][0].Event.Attempt != 1 || d["ep5"][0].Event.Reply.Code != 451 ||
		d["ep5"][0].Event.MX != "mx.one.test" || d["ep5"][0].Event.DeliveryID != id || d["ep5"][0].Key != "m5" {
		t.Fatalf("due deferred webhook: %+v", d["ep5"])
	}
}
