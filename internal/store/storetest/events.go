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

// EventStore is a backend with the event log's extra side.
type EventStore interface {
	store.Store
	store.EventLog
}

// RunEventLog runs the activity log's conformance tests: filters and
// keyset pages, report rollups kept in the write transaction, retention
// pruning, and the after-commit sink.
func RunEventLog(t *testing.T, open func(t *testing.T) EventStore) {
	t.Run("FiltersAndPages", func(t *testing.T) { testEventFilters(t, open(t)) })
	t.Run("ByRecipient", func(t *testing.T) { testEventsByRecipient(t, open(t)) })
	t.Run("Rollups", func(t *testing.T) { testRollups(t, open(t)) })
	t.Run("RollupsUnderGroupCommit", func(t *testing.T) { testRollupsConcurrent(t, open(t)) })
	t.Run("Prune", func(t *testing.T) { testPrune(t, open(t)) })
	t.Run("Sink", func(t *testing.T) { testSink(t, open(t)) })
}

func insert(t *testing.T, s store.Store, nms ...*store.NewMessage) {
	t.Helper()
	if err := s.InsertMessages(context.Background(), nms); err != nil {
		t.Fatal(err)
	}
}

// attempt leases d and records one outcome for it.
func attempt(t *testing.T, s store.Store, d *store.Delivery, state store.State, ev, provider string, at time.Time) {
	t.Helper()
	ctx := context.Background()
	if _, err := s.Lease(ctx, []int64{d.ID}, at, at.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	code := 250
	if state != store.Delivered {
		code = 450
		if state == store.Bounced {
			code = 550
		}
	}
	if err := s.RecordOutcomes(ctx, []store.Outcome{{DeliveryID: d.ID, State: state, Event: ev, Class: ev, Provider: provider,
		Reply: smtpproto.Reply{Code: code, Text: "x"}, StartedAt: at, NextAt: at.Add(time.Minute)}}); err != nil {
		t.Fatal(err)
	}
}

func testEventFilters(t *testing.T, s EventStore) {
	ctx := context.Background()
	a := NewTestMessage("m1", "a@one.test", "b@two.test")
	a.Message.Tags = []string{"news", "50%_off"}
	b := NewTestMessage("m2", "c@one.test")
	b.Message.TenantID = "t2"
	insert(t, s, a, b)
	attempt(t, s, a.Deliveries[0], store.Delivered, store.EventDelivered, "google", t0.Add(time.Minute))
	attempt(t, s, a.Deliveries[1], store.Deferred, store.EventDeferred, "", t0.Add(2*time.Minute))
	check := func(name string, f store.EventFilter, want ...string) {
		t.Helper()
		evs, err := s.Events(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range evs {
			got = append(got, e.Type+":"+e.Recipient)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: got %v, want %v", name, got, want)
		}
	}
	check("tenant, newest first", store.EventFilter{TenantID: "t1", Desc: true},
		"deferred:b@two.test", "delivered:a@one.test", "queued:b@two.test", "queued:a@one.test")
	check("domain", store.EventFilter{Domain: "ONE.test"}, "queued:a@one.test", "queued:c@one.test", "delivered:a@one.test")
	check("domain, tenant", store.EventFilter{Domain: "one.test", TenantID: "t2"}, "queued:c@one.test")
	check("destination: provider", store.EventFilter{Destination: "google"}, "delivered:a@one.test")
	check("destination: the domain when no provider", store.EventFilter{Destination: "two.test"}, "deferred:b@two.test")
	check("tag", store.EventFilter{Tag: "news"}, "queued:a@one.test", "queued:b@two.test", "delivered:a@one.test", "deferred:b@two.test")
	check("tag with LIKE characters", store.EventFilter{Tag: "50%_off", Type: store.EventDelivered}, "delivered:a@one.test")
	check("tag, partial name", store.EventFilter{Tag: "new"})
	check("until", store.EventFilter{Until: t0.Add(time.Minute)}, "queued:a@one.test", "queued:b@two.test", "queued:c@one.test")
	check("since", store.EventFilter{Since: t0.Add(90 * time.Second)}, "deferred:b@two.test")
	// Keyset pages, newest first, cover everything once.
	var seen []int64
	f := store.EventFilter{Desc: true, Limit: 2}
	for {
		evs, err := s.Events(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			if len(seen) > 0 && e.ID >= seen[len(seen)-1] {
				t.Fatalf("page not newest first: %d after %d", e.ID, seen[len(seen)-1])
			}
			seen = append(seen, e.ID)
		}
		if len(evs) < f.Limit {
			break
		}
		f.BeforeID = evs[len(evs)-1].ID
	}
	if len(seen) != 5 {
		t.Fatalf("pages gave %d events, want 5", len(seen))
	}
	if n, err := s.CountEvents(ctx, store.EventFilter{TenantID: "t1"}, 100); err != nil || n != 4 {
		t.Fatalf("count: %d %v", n, err)
	}
	if n, err := s.CountEvents(ctx, store.EventFilter{}, 3); err != nil || n != 3 {
		t.Fatalf("capped count: %d %v", n, err)
	}
}

func report(t *testing.T, s EventStore, tenant, groupBy string) map[string]store.Counters {
	t.Helper()
	rows, err := s.Report(context.Background(), store.ReportQuery{TenantID: tenant, From: t0.Add(-24 * time.Hour), To: t0.Add(48 * time.Hour), GroupBy: groupBy})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]store.Counters{}
	for _, r := range rows {
		out[r.Key] = r.Counters
	}
	return out
}

func testRollups(t *testing.T, s EventStore) {
	ctx := context.Background()
	m := NewTestMessage("m1", "a@gmail.test", "b@gmail.test", "c@two.test", "d@two.test")
	m.Message.Tags = []string{"news", "eu"}
	m.Deliveries[3].State = store.Suppressed
	other := NewTestMessage("m2", "x@gmail.test")
	other.Message.TenantID = "t2"
	insert(t, s, m, other)
	d := m.Deliveries
	attempt(t, s, d[0], store.Deferred, store.EventDeferred, "google", t0)
	attempt(t, s, d[0], store.Delivered, store.EventDelivered, "google", t0.Add(time.Minute))
	attempt(t, s, d[1], store.Bounced, store.EventBounced, "google", t0)
	attempt(t, s, d[2], store.SoftBounced, store.EventSoftBounce, "", t0.Add(24*time.Hour)) // the next day
	if err := s.RecordEvent(ctx, store.Event{At: t0.Add(2 * time.Minute), Type: store.EventComplaint, TenantID: "t1", MessageID: "m1",
		DeliveryID: d[0].ID, Recipient: d[0].Recipient}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Transition(ctx, store.TransitionSpec{TenantID: "t2", MessageIDs: []string{"m2"}, Op: store.OpCancel, Now: t0}); err != nil {
		t.Fatal(err)
	}
	day1, day2 := t0.Format(time.DateOnly), t0.Add(24*time.Hour).Format(time.DateOnly)
	want := map[string]store.Counters{
		day1: {Accepted: 4, Delivered: 1, Deferred: 1, Bounced: 1, Complaints: 1, Suppressed: 1},
		day2: {SoftBounced: 1},
	}
	if got := report(t, s, "t1", store.GroupByDay); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("by day:\n got %+v\nwant %+v", got, want)
	}
	want = map[string]store.Counters{
		"gmail.test": {Accepted: 2, Delivered: 1, Deferred: 1, Bounced: 1, Complaints: 1},
		"two.test":   {Accepted: 2, SoftBounced: 1, Suppressed: 1},
	}
	if got := report(t, s, "t1", store.GroupByDomain); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("by domain:\n got %+v\nwant %+v", got, want)
	}
	// Acceptances have no destination yet: they count where the domain's attempts went.
	want = map[string]store.Counters{
		"google":   {Accepted: 2, Delivered: 1, Deferred: 1, Bounced: 1, Complaints: 1},
		"two.test": {Accepted: 2, SoftBounced: 1, Suppressed: 1},
	}
	if got := report(t, s, "t1", store.GroupByDestination); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("by destination:\n got %+v\nwant %+v", got, want)
	}
	all := store.Counters{Accepted: 4, Delivered: 1, Deferred: 1, Bounced: 1, SoftBounced: 1, Complaints: 1, Suppressed: 1}
	want = map[string]store.Counters{"eu": all, "news": all}
	if got := report(t, s, "t1", store.GroupByTag); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("by tag:\n got %+v\nwant %+v", got, want)
	}
	want = map[string]store.Counters{"gmail.test": {Accepted: 1}}
	if got := report(t, s, "t2", store.GroupByDomain); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("other tenant:\n got %+v\nwant %+v", got, want)
	}
}

// testRollupsConcurrent: many writers share group-commit transactions;
// the counters summed per transaction must still add up exactly.
func testRollupsConcurrent(t *testing.T, s EventStore) {
	const writers, each = 16, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				nm := NewTestMessage(fmt.Sprintf("m%d-%d", w, i), "a@one.test", "b@two.test")
				nm.Message.Tags = []string{"t"}
				if err := s.InsertMessages(context.Background(), []*store.NewMessage{nm}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got := report(t, s, "t1", store.GroupByDomain)
	if got["one.test"].Accepted != writers*each || got["two.test"].Accepted != writers*each {
		t.Fatalf("accepted %+v, want %d per domain", got, writers*each)
	}
	if tags := report(t, s, "", store.GroupByTag); tags["t"].Accepted != 2*writers*each {
		t.Fatalf("tag t: %+v", tags)
	}
}

func testPrune(t *testing.T, s EventStore) {
	ctx := context.Background()
	old, now := t0, t0.Add(30*24*time.Hour)
	done := NewTestMessage("done", "a@one.test") // finished long ago: body goes
	pending := NewTestMessage("pending", "b@one.test")
	dead := NewTestMessage("dead", "c@one.test")
	fresh := NewTestMessage("fresh", "d@one.test")
	fresh.Message.CreatedAt, fresh.Deliveries[0].CreatedAt = now, now
	insert(t, s, done, pending, dead)
	insert(t, s, fresh)
	attempt(t, s, done.Deliveries[0], store.Delivered, store.EventDelivered, "", old)
	attempt(t, s, dead.Deliveries[0], store.DeadLetter, store.EventDeadLetter, "", old)
	attempt(t, s, fresh.Deliveries[0], store.Delivered, store.EventDelivered, "", now)
	cutoff := now.Add(-7 * 24 * time.Hour)
	total := 0
	for {
		n, err := s.PruneEvents(ctx, cutoff, 2)
		if err != nil {
			t.Fatal(err)
		}
		total += n
		if n == 0 {
			break
		}
	}
	if total != 5 {
		t.Fatalf("pruned %d events, want the 5 old ones", total)
	}
	evs, _ := s.Events(ctx, store.EventFilter{})
	if len(evs) != 2 || evs[0].MessageID != "fresh" {
		t.Fatalf("left: %+v", evs)
	}
	var cursor int64
	pruned := 0
	for {
		n, next, fin, err := s.PruneBodies(ctx, cutoff, cursor, 1)
		if err != nil {
			t.Fatal(err)
		}
		pruned += n
		cursor = next
		if fin {
			break
		}
	}
	if pruned != 1 {
		t.Fatalf("pruned %d bodies, want 1", pruned)
	}
	for id, gone := range map[string]bool{"done": true, "pending": false, "dead": false, "fresh": false} {
		m, err := s.GetMessage(ctx, "", id, true)
		if err != nil {
			t.Fatal(err)
		}
		if gone != !m.BodyPrunedAt.IsZero() || gone != (len(m.Body) == 0) {
			t.Errorf("%s: pruned at %v, body %q (want pruned: %v)", id, m.BodyPrunedAt, m.Body, gone)
		}
	}
	// Reports outlive the events.
	if got := report(t, s, "t1", store.GroupByDay); got[old.Format(time.DateOnly)].Accepted != 3 {
		t.Fatalf("rollups pruned with the events: %+v", got)
	}
}

func testSink(t *testing.T, s EventStore) {
	var mu sync.Mutex
	var got []store.Event
	s.SetEventSink(func(evs []store.Event) {
		mu.Lock()
		got = append(got, evs...)
		mu.Unlock()
	})
	defer s.SetEventSink(nil)
	nm := NewTestMessage("m1", "a@one.test", "b@one.test")
	insert(t, s, nm)
	// A failed write (duplicate id) publishes nothing.
	if err := s.InsertMessages(context.Background(), []*store.NewMessage{NewTestMessage("m1", "c@one.test")}); err == nil {
		t.Fatal("duplicate accepted")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || got[0].ID == 0 || got[1].ID <= got[0].ID || got[0].Type != store.EventQueued || got[0].Domain != "one.test" {
		t.Fatalf("sink got %+v", got)
	}
}

// testEventsByRecipient: a search by recipient returns that exact address's
// events (not another spelling's), those of its deliveries and those
// recorded with no delivery alike, in ID order either way, in keyset
// pages, and with the other filters; deliveries by recipient likewise.
func testEventsByRecipient(t *testing.T, s EventStore) {
	ctx := context.Background()
	a := NewTestMessage("m1", "a@one.test", "A@one.test", "b@one.test")
	b := NewTestMessage("m2", "a@one.test")
	b.Message.TenantID = "t2"
	insert(t, s, a)
	attempt(t, s, a.Deliveries[0], store.Deferred, store.EventSoftBounce, "", t0.Add(time.Minute))
	if err := s.RecordEvent(ctx, store.Event{At: t0.Add(2 * time.Minute), Type: store.EventComplaint, TenantID: "t1",
		MessageID: "m1", Recipient: "a@one.test", Detail: "no delivery"}); err != nil {
		t.Fatal(err)
	}
	insert(t, s, b)
	attempt(t, s, a.Deliveries[1], store.Delivered, store.EventDelivered, "", t0.Add(3*time.Minute))
	attempt(t, s, a.Deliveries[0], store.Delivered, store.EventDelivered, "", t0.Add(4*time.Minute))
	check := func(name string, f store.EventFilter, want ...string) []store.Event {
		t.Helper()
		evs, err := s.Events(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for i, e := range evs {
			got = append(got, e.TenantID+":"+e.Type+":"+e.Recipient)
			if i > 0 && (e.ID > evs[i-1].ID) == f.Desc {
				t.Errorf("%s: not in ID order: %d after %d", name, e.ID, evs[i-1].ID)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: got %v, want %v", name, got, want)
		}
		return evs
	}
	all := check("recipient", store.EventFilter{Recipient: "a@one.test"}, "t1:queued:a@one.test",
		"t1:soft_bounced:a@one.test", "t1:complaint:a@one.test", "t2:queued:a@one.test", "t1:delivered:a@one.test")
	check("another spelling", store.EventFilter{Recipient: "A@one.test"}, "t1:queued:A@one.test", "t1:delivered:A@one.test")
	check("recipient, tenant, newest first", store.EventFilter{Recipient: "a@one.test", TenantID: "t1", Desc: true},
		"t1:delivered:a@one.test", "t1:complaint:a@one.test", "t1:soft_bounced:a@one.test", "t1:queued:a@one.test")
	check("recipient, type, since (the on-hold count)", store.EventFilter{Recipient: "a@one.test", TenantID: "t1",
		Type: store.EventSoftBounce, Since: t0.Add(30 * time.Second), Limit: 3}, "t1:soft_bounced:a@one.test")
	check("recipient, domain", store.EventFilter{Recipient: "a@one.test", Domain: "ONE.test", Type: store.EventComplaint},
		"t1:complaint:a@one.test")
	check("recipient of a message", store.EventFilter{Recipient: "a@one.test", MessageID: "m2"}, "t2:queued:a@one.test")
	check("recipient, pages", store.EventFilter{Recipient: "a@one.test", BeforeID: all[4].ID, AfterID: all[0].ID, Desc: true, Limit: 2},
		"t2:queued:a@one.test", "t1:complaint:a@one.test")
	check("no such recipient", store.EventFilter{Recipient: "c@one.test"})
	if n, err := s.CountEvents(ctx, store.EventFilter{Recipient: "a@one.test", TenantID: "t1"}, 100); err != nil || n != 4 {
		t.Fatalf("count by recipient: %d %v", n, err)
	}
	for rcpt, want := range map[string][]int64{"a@one.test": {a.Deliveries[0].ID, b.Deliveries[0].ID},
		"A@one.test": {a.Deliveries[1].ID}, "one.test": {a.Deliveries[0].ID, a.Deliveries[1].ID, a.Deliveries[2].ID, b.Deliveries[0].ID}} {
		ds, err := s.ListDeliveries(ctx, store.DeliveryFilter{Recipient: rcpt})
		if err != nil {
			t.Fatal(err)
		}
		var got []int64
		for _, d := range ds {
			got = append(got, d.ID)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("deliveries of %q: %v, want %v", rcpt, got, want)
		}
	}
}
