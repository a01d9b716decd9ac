package queue

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/posthorn/posthorn/internal/delivery"
	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/store/sqlite"
	"github.com/posthorn/posthorn/internal/testkit"
)

// Scheduler tests run the real thing: the sqlite store in a temp dir,
// delivery through the test kit's DNS server to its fake MX hosts.

// clock is an injectable clock a test moves by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// hookStore is the sqlite store with hooks around two writes, to make an
// operator's change land at an exact point of an attempt.
type hookStore struct {
	*sqlite.Store
	mu            sync.Mutex
	beforeLease   func(ids []int64)
	afterOutcomes func(outs []store.Outcome)
	pendingDue    atomic.Int64 // PendingDue calls (the loader's pages)
}

func (h *hookStore) PendingDue(ctx context.Context, after store.DueCursor, until time.Time, limit int) ([]store.Delivery, error) {
	h.pendingDue.Add(1)
	return h.Store.PendingDue(ctx, after, until, limit)
}

func (h *hookStore) Lease(ctx context.Context, ids []int64, now, retryAt time.Time) ([]int64, error) {
	h.mu.Lock()
	f := h.beforeLease
	h.beforeLease = nil
	h.mu.Unlock()
	if f != nil {
		f(ids)
	}
	return h.Store.Lease(ctx, ids, now, retryAt)
}

func (h *hookStore) RecordOutcomes(ctx context.Context, outs []store.Outcome) error {
	err := h.Store.RecordOutcomes(ctx, outs)
	h.mu.Lock()
	f := h.afterOutcomes
	h.afterOutcomes = nil
	h.mu.Unlock()
	if err == nil && f != nil {
		f(outs)
	}
	return err
}

type env struct {
	t   *testing.T
	st  *hookStore
	dns *testkit.DNS
	dl  *delivery.Deliverer
	now func() time.Time
	n   int // messages inserted
}

// newEnv opens a store and a DNS server and makes a Deliverer for the
// fake MX hosts on port (one port for all, as in the test kit).
func newEnv(t *testing.T, port int, now func() time.Time) *env {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "posthorn.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	d := testkit.StartDNS(t)
	d.SetTTL(0)
	res, err := delivery.NewResolver(d.Addr())
	if err != nil {
		t.Fatal(err)
	}
	dl := delivery.New(delivery.Config{Hostname: "posthorn.test", Port: port, ConnectTimeout: 2 * time.Second,
		CommandTimeout: time.Minute, DataTimeout: 10 * time.Minute,
		Providers: []delivery.Provider{{Name: "acme", MXSuffixes: []string{".acme-mail.test"}}}}, res)
	if now == nil {
		now = time.Now
	}
	return &env{t: t, st: &hookStore{Store: st}, dns: d, dl: dl, now: now}
}

// sched returns a started scheduler (stopped at the end of the test).
func (e *env) sched(cfg Config) *Scheduler {
	e.t.Helper()
	cfg.Now = e.now
	if cfg.RetryMin == 0 {
		cfg.RetryMin, cfg.RetryMax = time.Hour, time.Hour
	}
	if cfg.MaxConnections == 0 {
		cfg.MaxConnections = 10
	}
	if cfg.MaxConnsPerDest == 0 {
		cfg.MaxConnsPerDest = 1
	}
	cfg.MaxMsgsPerConn, cfg.IdleTimeout = 100, 200*time.Millisecond
	s := New(cfg, e.st, e.dl, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := s.Start(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Stop(ctx)
	})
	return s
}

// insert stores one message to rcpts, due now, with the given lifetime,
// and returns its deliveries.
func (e *env) insert(lifetime time.Duration, rcpts ...string) []store.Delivery {
	e.t.Helper()
	now := e.now()
	e.n++
	m := &store.Message{ID: fmt.Sprintf("m%d", e.n), TenantID: "t1", Sender: "s@app.test", Lane: store.LaneNormal,
		Source: "http", Body: []byte("Subject: test\r\n\r\nhello\r\n"), CreatedAt: now}
	m.Size = len(m.Body)
	nm := &store.NewMessage{Message: m}
	for _, r := range rcpts {
		nm.Deliveries = append(nm.Deliveries, &store.Delivery{Recipient: r, Domain: r[strings.IndexByte(r, '@')+1:],
			Lane: store.LaneNormal, State: store.Queued, CreatedAt: now, NextAttemptAt: now, ExpiresAt: now.Add(lifetime)})
	}
	if err := e.st.InsertMessages(context.Background(), []*store.NewMessage{nm}); err != nil {
		e.t.Fatal(err)
	}
	out := make([]store.Delivery, len(nm.Deliveries))
	for i, d := range nm.Deliveries {
		out[i] = *d
	}
	return out
}

// get reads one delivery back.
func (e *env) get(d store.Delivery) store.Delivery {
	e.t.Helper()
	ds, err := e.st.MessageDeliveries(context.Background(), d.MessageID)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, x := range ds {
		if x.ID == d.ID {
			return x
		}
	}
	e.t.Fatalf("delivery %d not found", d.ID)
	return store.Delivery{}
}

// waitFor polls cond (a state of the store or scheduler) until it holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitState waits until d reaches state and returns it.
func (e *env) waitState(d store.Delivery, state store.State) store.Delivery {
	e.t.Helper()
	var got store.Delivery
	waitFor(e.t, fmt.Sprintf("delivery %s to reach %s", d.Recipient, state), func() bool {
		got = e.get(d)
		return got.State == state
	})
	return got
}

// TestFailureScoping: in one provider destination, a domain's DNS failure
// stays with that domain, and a host's connection failure is shared only
// with the domains that would use that host.
func TestFailureScoping(t *testing.T) {
	mx := testkit.StartMX(t, "127.0.0.2", 0, testkit.Script{})
	e := newEnv(t, mx.Port(), nil)
	e.dns.SetA("in1.acme-mail.test", "127.0.0.2")
	e.dns.SetA("in2.acme-mail.test", "127.0.0.3") // nothing listens there
	for _, d := range []string{"good.test", "bad.test"} {
		e.dns.SetMX(d, testkit.MX{Pref: 10, Host: "in1.acme-mail.test"})
	}
	for _, d := range []string{"down.test", "down2.test"} {
		e.dns.SetMX(d, testkit.MX{Pref: 10, Host: "in2.acme-mail.test"})
	}
	// Learn every domain as acme's, as earlier deliveries would have.
	for _, d := range []string{"good.test", "bad.test", "down.test", "down2.test"} {
		if c, _ := e.dl.Dial(context.Background(), d); c != nil {
			c.Close()
		}
		if got := e.dl.Destination(d); got != "provider:acme" {
			t.Fatalf("%s: destination %q", d, got)
		}
	}
	e.dns.Remove("bad.test")
	e.dns.ResetQueries()
	// One connection for the destination: the jobs are taken in this order.
	bad := e.insert(time.Hour, "x@bad.test")[0]
	down := e.insert(time.Hour, "x@down.test")[0]
	good := e.insert(time.Hour, "x@good.test")[0]
	down2 := e.insert(time.Hour, "x@down2.test")[0]
	good2 := e.insert(time.Hour, "y@good.test")[0]
	e.sched(Config{})

	if d := e.waitState(bad, store.Bounced); d.LastClass != "dns_error" {
		t.Errorf("bad.test: %+v", d)
	}
	for _, g := range []store.Delivery{good, good2} {
		e.waitState(g, store.Delivered)
	}
	for _, dd := range []store.Delivery{down, down2} {
		if d := e.waitState(dd, store.Deferred); d.LastClass != "connection_error" || d.Attempts != 1 {
			t.Errorf("%s: %+v", dd.Recipient, d)
		}
	}
	// down2.test got down.test's failure without a lookup of its own.
	if n := e.dns.Queries("down2.test", dns.TypeMX); n != 0 {
		t.Errorf("down2.test looked up %d times; want it to share the failure of in2", n)
	}
	if n := len(mx.Messages()); n != 2 {
		t.Errorf("MX got %d messages, want good.test's 2", n)
	}
}

// TestRemoveWhileInFlight: an operator's change that lands while a job is
// in flight is not undone by the attempt's outcome. A delete before the
// lease means no attempt; a delete after the outcome was recorded is not
// rescheduled; a flush after it is retried at once, not lost.
func TestRemoveWhileInFlight(t *testing.T) {
	mx := testkit.StartMX(t, "127.0.0.2", 0, testkit.Script{})
	e := newEnv(t, mx.Port(), nil)
	e.dns.SetMX("x.test", testkit.MX{Pref: 10, Host: "mx.x.test"})
	e.dns.SetA("mx.x.test", "127.0.0.2")
	var s *Scheduler
	op := func(ids []int64, o store.Op, after func([]store.Delivery)) {
		now := time.Now()
		ds, err := e.st.Transition(context.Background(), store.TransitionSpec{DeliveryIDs: ids, Op: o, Now: now, NextAt: now})
		if err != nil || len(ds) != len(ids) {
			t.Errorf("%s: %d changed, %v", o, len(ds), err)
		}
		after(ds)
	}
	cancel := func(ids []int64) {
		op(ids, store.OpCancel, func(ds []store.Delivery) { s.Remove(ids) })
	}
	flush := func(ids []int64) {
		op(ids, store.OpFlush, func(ds []store.Delivery) { s.Reschedule(ds) })
	}
	s = e.sched(Config{})
	idle := func() bool { return s.Stats().Known == 0 }

	// Deleted between take and lease: never sent.
	e.st.mu.Lock()
	e.st.beforeLease = cancel
	e.st.mu.Unlock()
	d := e.insert(time.Hour, "a@x.test")[0]
	s.Enqueue([]store.Delivery{d})
	e.waitState(d, store.Cancelled)
	waitFor(t, "the scheduler to forget the deleted delivery", idle)
	if n := len(mx.Attempts()); n != 0 {
		t.Fatalf("%d attempts for a delivery deleted before its lease", n)
	}

	// Deferred (451), deleted right after the outcome was recorded.
	mx.SetScript(testkit.Script{DataReplies: []testkit.Reply{{Code: 451, Text: "4.3.0 try later"}}})
	e.st.mu.Lock()
	e.st.afterOutcomes = func(outs []store.Outcome) { cancel([]int64{outs[0].DeliveryID}) }
	e.st.mu.Unlock()
	d = e.insert(time.Hour, "b@x.test")[0]
	s.Enqueue([]store.Delivery{d})
	e.waitState(d, store.Cancelled)
	waitFor(t, "the scheduler to forget the deleted delivery", idle)

	// Deferred, flushed right after: retried now (not in RetryMin, an hour).
	mx.SetScript(testkit.Script{DataReplies: []testkit.Reply{{Code: 451, Text: "4.3.0 try later"}}})
	e.st.mu.Lock()
	e.st.afterOutcomes = func(outs []store.Outcome) { flush([]int64{outs[0].DeliveryID}) }
	e.st.mu.Unlock()
	d = e.insert(time.Hour, "c@x.test")[0]
	s.Enqueue([]store.Delivery{d})
	e.waitState(d, store.Delivered)
	waitFor(t, "the scheduler to forget the delivered delivery", idle)
}

// TestLaneShares: lanes are served by strict priority, except that every
// 10th pick takes normal first and every 20th low first.
func TestLaneShares(t *testing.T) {
	s := &Scheduler{known: map[int64]*Job{}}
	d := &dest{}
	for _, l := range []store.Lane{store.LaneHigh, store.LaneNormal, store.LaneLow} {
		for i := 0; i < 50; i++ {
			d.ready[laneIndex(l)].push(&Job{TenantID: "t", Lane: l, MessageID: fmt.Sprint(l, i)})
			d.nready++
		}
	}
	var got []string
	for i := 1; i <= 40; i++ {
		got = append(got, string(s.popReady(d).Lane[0]))
	}
	want := strings.Repeat("h", 9) + "n" + strings.Repeat("h", 9) + "l" + strings.Repeat("h", 9) + "n" + strings.Repeat("h", 9) + "l"
	if g := strings.Join(got, ""); g != want {
		t.Fatalf("picks\n%s, want\n%s", g, want)
	}
	// With the high lane empty, normal goes first and low keeps its share.
	d = &dest{}
	for _, l := range []store.Lane{store.LaneNormal, store.LaneLow} {
		for i := 0; i < 50; i++ {
			d.ready[laneIndex(l)].push(&Job{TenantID: "t", Lane: l})
			d.nready++
		}
	}
	got = got[:0]
	for i := 1; i <= 20; i++ {
		got = append(got, string(s.popReady(d).Lane[0]))
	}
	if g, want := strings.Join(got, ""), strings.Repeat("n", 19)+"l"; g != want {
		t.Fatalf("picks %s, want %s", g, want)
	}
}

// TestStopDuringData: Stop while the MX stalls after the message data
// returns promptly (not after the data timeout); the delivery is recorded
// as deferred and due at once, and the next start delivers it.
func TestStopDuringData(t *testing.T) {
	mx := testkit.StartMX(t, "127.0.0.2", 0, testkit.Script{Stall: testkit.Stalls{EndOfData: time.Minute}})
	e := newEnv(t, mx.Port(), nil)
	e.dns.SetMX("x.test", testkit.MX{Pref: 10, Host: "mx.x.test"})
	e.dns.SetA("mx.x.test", "127.0.0.2")
	d := e.insert(time.Hour, "a@x.test")[0]
	s := e.sched(Config{})
	waitFor(t, "the message data to reach the MX", func() bool {
		for _, c := range mx.Commands() {
			if c.Line == "DATA" {
				return true
			}
		}
		return false
	})
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v after %v", err, time.Since(start))
	}
	if el := time.Since(start); el > 5*time.Second { // the MX stalls a minute, the data timeout is 10
		t.Errorf("Stop took %v", el)
	}
	got := e.get(d)
	if got.State != store.Deferred || got.NextAttemptAt.After(time.Now()) || got.LastClass != "connection_error" {
		t.Fatalf("after Stop: %+v", got)
	}
	mx.SetScript(testkit.Script{})
	e.sched(Config{})
	e.waitState(d, store.Delivered)
}

// TestLifetimeWhilePaused (with the injected clock): a destination paused
// by a rate limit for longer than the deliveries' lifetime does not keep
// them: RetryMin after their expiry they are dead letters, the 421 kept.
func TestLifetimeWhilePaused(t *testing.T) {
	mx := testkit.StartMX(t, "127.0.0.2", 0, testkit.Script{Greeting: testkit.Reply{Code: 421, Text: "4.7.28 slow down", Close: true}})
	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	e := newEnv(t, mx.Port(), clk.Now)
	e.dns.SetMX("x.test", testkit.MX{Pref: 10, Host: "mx.x.test"})
	e.dns.SetA("mx.x.test", "127.0.0.2")
	var ds []store.Delivery
	for i := 0; i < 3; i++ {
		ds = append(ds, e.insert(time.Hour, fmt.Sprintf("u%d@x.test", i))[0])
	}
	t0 := clk.Now()
	s := e.sched(Config{RetryMin: time.Minute, RetryMax: time.Hour, Cooldown: 3 * time.Hour})
	// The first attempt is rate limited: the destination pauses for 3h,
	// past the lifetime; the retries wait for the expiry.
	waitFor(t, "the rate-limited attempt", func() bool {
		return e.get(ds[0]).State == store.Deferred && s.Stats().Waiting > 0 && s.Stats().Connections == 0
	})
	// One more arrives while the destination is paused: never attempted,
	// it waits in the ready list.
	late := e.insert(time.Hour, "late@x.test")[0]
	s.Enqueue([]store.Delivery{late})
	clk.Set(t0.Add(time.Hour)) // the lifetime ends; the destination is still paused
	s.Poke()
	waitFor(t, "the jobs to wait in the ready list", func() bool { return s.Stats().Waiting == 0 })
	clk.Set(t0.Add(time.Hour + time.Minute))
	s.Poke()
	for _, d := range ds {
		got := e.waitState(d, store.DeadLetter)
		if got.LastReply.Code != 421 || got.LastReply.Enhanced != "4.7.28" || got.LastClass != "rate_limited" {
			t.Errorf("%s: %+v", d.Recipient, got)
		}
	}
	// The late one says why it was never attempted.
	got := e.waitState(late, store.DeadLetter)
	if got.LastReply.Code != 421 || got.LastClass != "rate_limited" {
		t.Errorf("never attempted: %+v", got)
	}
	waitFor(t, "the scheduler to forget them", func() bool { return s.Stats().Known == 0 })
	if n := mx.Connections(); n != 1 {
		t.Errorf("%d connections, want the first attempt's only", n)
	}
}

// TestRescueStuckLease: a delivery left in sending after its lease ended
// (its outcome could not be recorded) is returned to the queue while
// posthorn runs, not only at the next start, and is then delivered.
func TestRescueStuckLease(t *testing.T) {
	mx := testkit.StartMX(t, "127.0.0.2", 0, testkit.Script{})
	e := newEnv(t, mx.Port(), nil)
	e.dns.SetMX("x.test", testkit.MX{Pref: 10, Host: "mx.x.test"})
	e.dns.SetA("mx.x.test", "127.0.0.2")
	e.sched(Config{RetryMin: time.Second, RetryMax: time.Second})
	// As if a worker leased it and the store then refused its outcome.
	d := e.insert(time.Hour, "a@x.test")[0]
	now := time.Now()
	if ids, err := e.st.Lease(context.Background(), []int64{d.ID}, now, now.Add(200*time.Millisecond)); err != nil || len(ids) != 1 {
		t.Fatalf("lease: %v %v", ids, err)
	}
	e.waitState(d, store.Delivered)
	evs, err := e.st.Events(context.Background(), store.EventFilter{MessageID: d.MessageID, Type: store.EventRecovered})
	if err != nil || len(evs) != 1 {
		t.Fatalf("recovered events: %+v %v", evs, err)
	}
}

// TestRescueSparesLongAttempt: an attempt that outlasts its lease is not
// taken for stuck: its outcome is recorded and it is sent once.
func TestRescueSparesLongAttempt(t *testing.T) {
	mx := testkit.StartMX(t, "127.0.0.2", 0, testkit.Script{Stall: testkit.Stalls{EndOfData: 2500 * time.Millisecond}})
	e := newEnv(t, mx.Port(), nil)
	e.dns.SetMX("x.test", testkit.MX{Pref: 10, Host: "mx.x.test"})
	e.dns.SetA("mx.x.test", "127.0.0.2")
	d := e.insert(time.Hour, "a@x.test")[0]
	e.sched(Config{RetryMin: time.Second, RetryMax: time.Second}) // lease 1s, rescuer every 1s
	e.waitState(d, store.Delivered)
	evs, err := e.st.Events(context.Background(), store.EventFilter{MessageID: d.MessageID, Type: store.EventRecovered})
	if err != nil || len(evs) != 0 {
		t.Fatalf("recovered events: %+v %v", evs, err)
	}
	if n := len(mx.Attempts()); n != 1 {
		t.Fatalf("%d attempts, want 1", n)
	}
}
