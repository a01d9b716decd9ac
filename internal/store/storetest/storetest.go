// Package storetest is the conformance suite every store.Store backend
// runs: the same behaviour, tested the same way, whatever the database.
// EveryTransition (transitions.go) tries every op on every pair of states
// and proves the backend makes exactly the changes in store's transition
// table and refuses, or leaves alone, everything else.
package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/smtpproto"
	"github.com/posthorn/posthorn/internal/store"
)

// Run runs the suite; open returns a fresh, empty store for each subtest.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("InsertAndRead", func(t *testing.T) { testInsertAndRead(t, open(t)) })
	t.Run("LeaseAndOutcome", func(t *testing.T) { testLeaseAndOutcome(t, open(t)) })
	t.Run("LeaseAndOutcomeBatches", func(t *testing.T) { testLeaseAndOutcomeBatches(t, open(t)) })
	t.Run("RecoverLeases", func(t *testing.T) { testRecover(t, open(t)) })
	t.Run("Transition", func(t *testing.T) { testTransition(t, open(t)) })
	t.Run("EveryTransition", func(t *testing.T) { testEveryTransition(t, open(t)) })
	t.Run("ConcurrentInserts", func(t *testing.T) { testConcurrent(t, open(t)) })
	t.Run("Tenants", func(t *testing.T) { testTenants(t, open(t)) })
	t.Run("Idempotency", func(t *testing.T) { testIdempotency(t, open(t)) })
	t.Run("WebhookOutbox", func(t *testing.T) { testWebhookOutbox(t, open(t)) })
	t.Run("NewestFirst", func(t *testing.T) { testNewestFirst(t, open(t)) })
	t.Run("PendingDue", func(t *testing.T) { testPendingDue(t, open(t)) })
	t.Run("DKIMSignatures", func(t *testing.T) { testDKIMSignatures(t, open(t)) })
}

// testNewestFirst: DeliveryFilter.Newest lists newest first, BeforeID
// pages back from a cursor, and filters still apply.
func testNewestFirst(t *testing.T, s store.Store) {
	ctx := context.Background()
	for i := range 5 {
		if err := s.InsertMessages(ctx, []*store.NewMessage{NewTestMessage(fmt.Sprintf("n%d", i), "a@one.test", "b@two.test")}); err != nil {
			t.Fatal(err)
		}
	}
	ds, err := s.ListDeliveries(ctx, store.DeliveryFilter{Newest: true, Limit: 3})
	if err != nil || len(ds) != 3 || ds[0].MessageID != "n4" || ds[0].ID <= ds[1].ID || ds[1].ID <= ds[2].ID {
		t.Fatalf("newest three: %v %+v", err, ds)
	}
	older, err := s.ListDeliveries(ctx, store.DeliveryFilter{Newest: true, BeforeID: ds[2].ID, Domain: "one.test"})
	if err != nil || len(older) != 4 { // ids 7, 5, 3, 1
		t.Fatalf("older at one.test: %v %+v", err, older)
	}
	for i, d := range older {
		if d.ID >= ds[2].ID || d.Domain != "one.test" || (i > 0 && d.ID >= older[i-1].ID) {
			t.Fatalf("older page wrong at %d: %+v", i, older)
		}
	}
}

func testIdempotency(t *testing.T, s store.Store) {
	ctx := context.Background()
	withKey := func(id string, at time.Time) *store.NewMessage {
		nm := NewTestMessage(id, "a@one.test")
		nm.Message.CreatedAt = at
		nm.Idempotency = &store.IdempotencyRecord{Key: "k1", RequestHash: "h-" + id, MessageID: id, Response: []byte("resp-" + id),
			CreatedAt: at, ExpiresAt: at.Add(time.Hour)}
		return nm
	}
	first := withKey("m1", t0)
	if err := s.InsertMessages(ctx, []*store.NewMessage{first}); err != nil || first.Existing != nil {
		t.Fatalf("first: %v %+v", err, first.Existing)
	}
	// The same key, within the window, twice in one batch: nothing inserted.
	a, b := withKey("m2", t0.Add(time.Minute)), withKey("m3", t0.Add(time.Minute))
	if err := s.InsertMessages(ctx, []*store.NewMessage{a, b}); err != nil {
		t.Fatal(err)
	}
	for _, nm := range []*store.NewMessage{a, b} {
		if nm.Existing == nil || nm.Existing.MessageID != "m1" || string(nm.Existing.Response) != "resp-m1" || nm.Existing.RequestHash != "h-m1" {
			t.Fatalf("repeat not recognised: %+v", nm.Existing)
		}
	}
	if _, err := s.GetMessage(ctx, "", "m2", false); err != store.ErrNotFound {
		t.Fatalf("repeat inserted a message: %v", err)
	}
	// Another tenant's key space is separate.
	other := withKey("m4", t0.Add(time.Minute))
	other.Message.TenantID = "t2"
	if err := s.InsertMessages(ctx, []*store.NewMessage{other}); err != nil || other.Existing != nil {
		t.Fatalf("other tenant: %v %+v", err, other.Existing)
	}
	// After expiry the key is free again.
	late := withKey("m5", t0.Add(2*time.Hour))
	if err := s.InsertMessages(ctx, []*store.NewMessage{late}); err != nil || late.Existing != nil {
		t.Fatalf("after expiry: %v %+v", err, late.Existing)
	}
	if n, err := s.PurgeIdempotency(ctx, t0.Add(10*time.Hour)); err != nil || n != 2 {
		t.Fatalf("purge: %d %v", n, err)
	}
}

var t0 = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

// NewTestMessage builds a message for tenant "t1" with one queued delivery
// per recipient.
func NewTestMessage(id string, rcpts ...string) *store.NewMessage {
	m := &store.Message{ID: id, TenantID: "t1", Sender: "from@sender.test", Lane: store.LaneNormal, Source: "smtp",
		Size: 5, CreatedAt: t0, Body: []byte("hi\r\n")}
	nm := &store.NewMessage{Message: m}
	for _, r := range rcpts {
		a, err := smtpproto.ParseAddress(r, true)
		if err != nil {
			panic(err)
		}
		nm.Deliveries = append(nm.Deliveries, &store.Delivery{Recipient: r, Domain: a.Domain, Lane: m.Lane,
			State: store.Queued, CreatedAt: t0, NextAttemptAt: t0, ExpiresAt: t0.Add(time.Hour)})
	}
	return nm
}

func testInsertAndRead(t *testing.T, s store.Store) {
	ctx := context.Background()
	nm := NewTestMessage("m1", "a@one.test", "b@two.test")
	if err := s.InsertMessages(ctx, []*store.NewMessage{nm}); err != nil {
		t.Fatal(err)
	}
	if nm.Deliveries[0].ID == 0 || nm.Deliveries[1].ID == nm.Deliveries[0].ID {
		t.Fatalf("delivery ids not filled: %d %d", nm.Deliveries[0].ID, nm.Deliveries[1].ID)
	}
	m, err := s.GetMessage(ctx, "t1", "m1", true)
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Body) != "hi\r\n" || m.Sender != "from@sender.test" || !m.CreatedAt.Equal(t0) {
		t.Fatalf("message read back wrong: %+v", m)
	}
	if _, err := s.GetMessage(ctx, "other-tenant", "m1", false); err != store.ErrNotFound {
		t.Fatalf("other tenant sees message: %v", err)
	}
	ds, err := s.ListDeliveries(ctx, store.DeliveryFilter{Domain: "two.test"})
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 1 || ds[0].Recipient != "b@two.test" || ds[0].State != store.Queued || ds[0].Sender != "from@sender.test" {
		t.Fatalf("ListDeliveries by domain: %+v", ds)
	}
	var pending int
	if err := s.LoadPending(ctx, func(*store.Delivery) error { pending++; return nil }); err != nil || pending != 2 {
		t.Fatalf("LoadPending: %d, %v", pending, err)
	}
	evs, err := s.Events(ctx, store.EventFilter{MessageID: "m1"})
	if err != nil || len(evs) != 2 || evs[0].Type != store.EventQueued {
		t.Fatalf("events: %+v %v", evs, err)
	}
	// A duplicate message id fails and changes nothing.
	if err := s.InsertMessages(ctx, []*store.NewMessage{NewTestMessage("m1", "c@three.test")}); err == nil {
		t.Fatal("duplicate message id accepted")
	}
	if ds, _ := s.ListDeliveries(ctx, store.DeliveryFilter{}); len(ds) != 2 {
		t.Fatalf("failed insert left %d deliveries", len(ds))
	}
}

func testLeaseAndOutcome(t *testing.T, s store.Store) {
	ctx := context.Background()
	nm := NewTestMessage("m1", "a@one.test", "b@one.test")
	if err := s.InsertMessages(ctx, []*store.NewMessage{nm}); err != nil {
		t.Fatal(err)
	}
	a, b := nm.Deliveries[0].ID, nm.Deliveries[1].ID
	leased, err := s.Lease(ctx, []int64{a, b}, t0, t0.Add(5*time.Minute))
	if err != nil || len(leased) != 2 {
		t.Fatalf("lease: %v %v", leased, err)
	}
	// Leasing again finds nothing to lease: already sending.
	if again, _ := s.Lease(ctx, []int64{a}, t0, t0.Add(time.Minute)); len(again) != 0 {
		t.Fatalf("leased twice: %v", again)
	}
	rep := smtpproto.Reply{Code: 550, Enhanced: "5.1.1", Text: "no such user"}
	err = s.RecordOutcomes(ctx, []store.Outcome{
		{DeliveryID: a, State: store.Delivered, Class: "delivered", Reply: smtpproto.Reply{Code: 250, Text: "ok"}, MX: "mx.one.test", IP: "127.0.0.2", StartedAt: t0, Duration: time.Millisecond, Event: store.EventDelivered,
			TLS: true, TLSDetail: store.TLSDetail{Version: "TLS 1.3", Cipher: "TLS_AES_128_GCM_SHA256", Policy: "mta-sts enforce", Result: "pkix ok"}},
		{DeliveryID: b, State: store.Bounced, Class: "hard_bounce", Phase: "rcpt", Reply: rep, StartedAt: t0, Event: store.EventBounced},
	})
	if err != nil {
		t.Fatal(err)
	}
	ds, _ := s.MessageDeliveries(ctx, "m1")
	if ds[0].State != store.Delivered || ds[0].Attempts != 1 || ds[0].LastMX != "mx.one.test" {
		t.Fatalf("delivered row: %+v", ds[0])
	}
	if ds[1].State != store.Bounced || ds[1].LastReply != rep || ds[1].LastClass != "hard_bounce" {
		t.Fatalf("bounced row: %+v", ds[1])
	}
	atts, _ := s.Attempts(ctx, "m1")
	if len(atts) != 2 || atts[1].Reply != rep || atts[1].N != 1 {
		t.Fatalf("attempts: %+v", atts)
	}
	if d := atts[0].TLSDetail; !atts[0].TLS || d.Version != "TLS 1.3" || d.Cipher != "TLS_AES_128_GCM_SHA256" || d.Policy != "mta-sts enforce" || d.Result != "pkix ok" {
		t.Fatalf("TLS detail of the attempt not kept: %+v", atts[0])
	}
	// An outcome for a delivery no longer sending is ignored.
	if err := s.RecordOutcomes(ctx, []store.Outcome{{DeliveryID: a, State: store.Deferred, Event: store.EventDeferred, StartedAt: t0}}); err != nil {
		t.Fatal(err)
	}
	if ds, _ := s.MessageDeliveries(ctx, "m1"); ds[0].State != store.Delivered {
		t.Fatalf("final state overwritten: %s", ds[0].State)
	}
}

// testLeaseAndOutcomeBatches leases and records many deliveries in one
// call (backends may write them several a statement), with a delivery
// moved meanwhile, ids given twice and an unknown id among them.
func testLeaseAndOutcomeBatches(t *testing.T, s store.Store) {
	ctx := context.Background()
	var to []string
	for i := 0; i < 23; i++ {
		to = append(to, fmt.Sprintf("r%02d@one.test", i))
	}
	nm := NewTestMessage("m1", to...)
	if err := s.InsertMessages(ctx, []*store.NewMessage{nm}); err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, d := range nm.Deliveries {
		ids = append(ids, d.ID)
	}
	held := ids[5]
	if _, err := s.Transition(ctx, store.TransitionSpec{Op: store.OpHold, DeliveryIDs: []int64{held}, Now: t0}); err != nil {
		t.Fatal(err)
	}
	ask := append(append([]int64{}, ids...), ids[0], 1<<40) // ids[0] twice, and one that does not exist
	leased, err := s.Lease(ctx, ask, t0, t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	var want []int64
	for _, id := range ids {
		if id != held {
			want = append(want, id)
		}
	}
	if fmt.Sprint(leased) != fmt.Sprint(want) {
		t.Fatalf("leased %v, want %v (in the order asked, each once)", leased, want)
	}
	// Outcomes for all, the held one included (ignored).
	var outs []store.Outcome
	for i, id := range ids {
		o := store.Outcome{DeliveryID: id, State: store.Delivered, Class: "delivered", StartedAt: t0, Duration: time.Second,
			Reply: smtpproto.Reply{Code: 250, Text: fmt.Sprintf("ok %d", i)}, MX: "mx.one.test", Event: store.EventDelivered}
		switch i % 3 {
		case 1:
			o.State, o.Class, o.Event, o.NextAt = store.Deferred, "greylisted", store.EventDeferred, t0.Add(time.Hour)
			o.Reply = smtpproto.Reply{Code: 451, Enhanced: "4.7.1", Text: fmt.Sprintf("later %d", i)}
			o.Provider = "prov"
		case 2:
			o.State, o.Class, o.Event, o.Reply, o.Error = store.Deferred, "connect", store.EventDeferred, smtpproto.Reply{}, fmt.Sprintf("refused %d", i)
			o.NextAt = t0.Add(time.Hour)
		}
		outs = append(outs, o)
	}
	if err := s.RecordOutcomes(ctx, outs); err != nil {
		t.Fatal(err)
	}
	ds, err := s.MessageDeliveries(ctx, "m1")
	if err != nil || len(ds) != len(ids) {
		t.Fatalf("deliveries: %d %v", len(ds), err)
	}
	for i, d := range ds {
		o := outs[i]
		if d.ID == held {
			if d.State != store.Held || d.Attempts != 0 {
				t.Fatalf("held delivery changed by an outcome: %+v", d)
			}
			continue
		}
		if d.State != o.State || d.Attempts != 1 || d.LastClass != o.Class || d.LastMX != "mx.one.test" ||
			!d.NextAttemptAt.Equal(o.NextAt) || d.Provider != o.Provider {
			t.Fatalf("delivery %d after outcome %+v: %+v", i, o, d)
		}
		if o.Reply.Code != 0 && d.LastReply != o.Reply || o.Reply.Code == 0 && d.LastError != o.Error {
			t.Fatalf("delivery %d keeps the wrong reply or error: %+v", i, d)
		}
	}
	atts, err := s.Attempts(ctx, "m1")
	if err != nil || len(atts) != len(ids)-1 {
		t.Fatalf("attempts: %d %v", len(atts), err)
	}
	evs, err := s.Events(ctx, store.EventFilter{MessageID: "m1", Since: t0.Add(time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range evs {
		if e.Type != store.EventHeld {
			got = append(got, fmt.Sprintf("%d:%s:%d", e.DeliveryID, e.Type, e.Attempt))
		}
	}
	var wantEvs []string
	for _, o := range outs {
		typ, n := o.Event, 1
		if o.DeliveryID == held {
			typ, n = store.EventOutcomeIgnored, 0
		}
		wantEvs = append(wantEvs, fmt.Sprintf("%d:%s:%d", o.DeliveryID, typ, n))
	}
	if fmt.Sprint(got) != fmt.Sprint(wantEvs) {
		t.Fatalf("outcome events\n got %v\nwant %v", got, wantEvs)
	}
	// The same delivery twice in one call: the first outcome is recorded,
	// the second ignored, as if recorded one after the other.
	a, b := ids[1], ids[4] // deferred above
	if leased, err := s.Lease(ctx, []int64{a, b}, t0, t0.Add(time.Minute)); err != nil || len(leased) != 2 {
		t.Fatalf("lease again: %v %v", leased, err)
	}
	twice := []store.Outcome{
		{DeliveryID: a, State: store.Delivered, Class: "delivered", StartedAt: t0, Event: store.EventDelivered},
		{DeliveryID: b, State: store.Bounced, Class: "hard_bounce", StartedAt: t0, Event: store.EventBounced},
		{DeliveryID: a, State: store.Bounced, Class: "hard_bounce", StartedAt: t0, Event: store.EventBounced},
	}
	if err := s.RecordOutcomes(ctx, twice); err != nil {
		t.Fatal(err)
	}
	m := &machine{t: t, s: s, ctx: ctx}
	if da, db := m.get(a), m.get(b); da.State != store.Delivered || da.Attempts != 2 || db.State != store.Bounced || db.Attempts != 2 {
		t.Fatalf("after outcomes with a delivery twice: %+v / %+v", da, db)
	}
	if ev := m.lastEvent(a); ev != store.EventOutcomeIgnored {
		t.Fatalf("second outcome of one delivery: last event %s, want %s", ev, store.EventOutcomeIgnored)
	}
}

func testRecover(t *testing.T, s store.Store) {
	ctx := context.Background()
	nm := NewTestMessage("m1", "a@one.test")
	if err := s.InsertMessages(ctx, []*store.NewMessage{nm}); err != nil {
		t.Fatal(err)
	}
	retry := t0.Add(5 * time.Minute)
	if _, err := s.Lease(ctx, []int64{nm.Deliveries[0].ID}, t0, retry); err != nil {
		t.Fatal(err)
	}
	n, err := s.RecoverLeases(ctx, t0.Add(time.Second))
	if err != nil || n != 1 {
		t.Fatalf("recover: %d %v", n, err)
	}
	ds, _ := s.MessageDeliveries(ctx, "m1")
	if ds[0].State != store.Queued || !ds[0].NextAttemptAt.Equal(retry) {
		t.Fatalf("recovered row: %+v", ds[0])
	}
}

func testTransition(t *testing.T, s store.Store) {
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if err := s.InsertMessages(ctx, []*store.NewMessage{NewTestMessage(fmt.Sprintf("m%d", i), "a@one.test", "b@two.test")}); err != nil {
			t.Fatal(err)
		}
	}
	held, err := s.Transition(ctx, store.TransitionSpec{Domain: "one.test", Op: store.OpHold, Now: t0})
	if err != nil || len(held) != 3 {
		t.Fatalf("hold by domain: %d %v", len(held), err)
	}
	if _, err := s.Transition(ctx, store.TransitionSpec{Op: store.OpHold, Now: t0}); err == nil {
		t.Fatal("transition without selection allowed")
	}
	del, err := s.Transition(ctx, store.TransitionSpec{MessageIDs: []string{"m1"}, Op: store.OpCancel, Now: t0})
	if err != nil || len(del) != 2 || del[0].Sender == "" {
		t.Fatalf("delete m1: %+v %v", del, err)
	}
	counts, _ := s.CountDeliveries(ctx, "")
	if counts[store.Held] != 2 || counts[store.Cancelled] != 2 || counts[store.Queued] != 2 {
		t.Fatalf("counts: %v", counts)
	}
	evs, _ := s.Events(ctx, store.EventFilter{Type: store.EventCancelled})
	if len(evs) != 2 {
		t.Fatalf("cancel events: %d", len(evs))
	}
}

func testConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 220)
	for i := 0; i < 220; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			// The last 20 reuse IDs: each must fail alone, without taking
			// down the requests that shared its commit.
			errs <- s.InsertMessages(ctx, []*store.NewMessage{NewTestMessage(fmt.Sprintf("c%03d", i%200), "a@one.test")})
		}(i)
	}
	wg.Wait()
	close(errs)
	failed := 0
	for err := range errs {
		if err != nil {
			failed++
		}
	}
	if failed != 20 {
		t.Fatalf("%d inserts failed, want exactly the 20 duplicates", failed)
	}
	if ds, _ := s.ListDeliveries(ctx, store.DeliveryFilter{}); len(ds) != 200 {
		t.Fatalf("got %d deliveries, want 200", len(ds))
	}
}

func testTenants(t *testing.T, s store.Store) {
	ctx := context.Background()
	if err := s.CreateTenant(ctx, store.Tenant{ID: "t1", Name: "default", CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateTenant(ctx, store.Tenant{ID: "t2", Name: "default", CreatedAt: t0}); err == nil {
		t.Fatal("duplicate tenant name accepted")
	}
	if tn, err := s.GetTenant(ctx, "default"); err != nil || tn.ID != "t1" {
		t.Fatalf("get tenant by name: %+v %v", tn, err)
	}
	if err := s.CreateSMTPUser(ctx, store.SMTPUser{Username: "u", TenantID: "t1", PasswordHash: "h", DefaultLane: store.LaneHigh, CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	u, err := s.GetSMTPUser(ctx, "u")
	if err != nil || u.PasswordHash != "h" || u.DefaultLane != store.LaneHigh {
		t.Fatalf("smtp user: %+v %v", u, err)
	}
	if _, err := s.GetSMTPUser(ctx, "nobody"); err != store.ErrNotFound {
		t.Fatalf("missing user: %v", err)
	}
	if err := s.CreateAPIKey(ctx, store.APIKey{ID: "k1", TenantID: "t1", Name: "admin", Hash: "x", Scopes: []string{"send", "admin"}, CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	k, err := s.GetAPIKey(ctx, "k1")
	if err != nil || len(k.Scopes) != 2 || k.Hash != "x" {
		t.Fatalf("api key: %+v %v", k, err)
	}
}

// testPendingDue: PendingDue pages through pending deliveries earliest due
// first (ties by id) across states, up to a due time, leaving out held and
// final ones.
func testPendingDue(t *testing.T, s store.Store) {
	ctx := context.Background()
	// Deliveries due at t0+5s, +1s, +3s, +1s (a tie), +9s; the second
	// message is scheduled, not queued.
	a := NewTestMessage("due-a", "a@one.test", "b@one.test", "c@one.test")
	for i, sec := range []int{5, 1, 3} {
		a.Deliveries[i].NextAttemptAt = t0.Add(time.Duration(sec) * time.Second)
	}
	b := NewTestMessage("due-b", "d@two.test", "e@two.test")
	for i, sec := range []int{1, 9} {
		b.Deliveries[i].State = store.Scheduled
		b.Deliveries[i].NextAttemptAt = t0.Add(time.Duration(sec) * time.Second)
	}
	held := NewTestMessage("due-held", "f@three.test")
	if err := s.InsertMessages(ctx, []*store.NewMessage{a, b, held}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Transition(ctx, store.TransitionSpec{Op: store.OpHold, DeliveryIDs: []int64{held.Deliveries[0].ID}, Now: t0}); err != nil {
		t.Fatal(err)
	}
	want := []string{"b@one.test", "d@two.test", "c@one.test", "a@one.test"} // due by t0+5s
	var got []string
	var cur store.DueCursor
	for {
		page, err := s.PendingDue(ctx, cur, t0.Add(5*time.Second), 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		if len(page) > 3 {
			t.Fatalf("page of %d over a limit of 3", len(page))
		}
		for _, d := range page {
			got = append(got, d.Recipient)
		}
		last := page[len(page)-1]
		cur = store.DueCursor{Due: last.NextAttemptAt, ID: last.ID}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("PendingDue order: %v, want %v", got, want)
	}
	// Later pages go on from the cursor.
	rest, err := s.PendingDue(ctx, cur, t0.Add(time.Hour), 10)
	if err != nil || len(rest) != 1 || rest[0].Recipient != "e@two.test" || rest[0].State != store.Scheduled {
		t.Fatalf("PendingDue after the cursor: %+v %v", rest, err)
	}
}
