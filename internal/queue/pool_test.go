package queue

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/config"
	"github.com/posthorn/posthorn/internal/delivery"
	"github.com/posthorn/posthorn/internal/pool"
	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/testkit"
)

// insertLane stores one message in lane from sender to rcpt, due now,
// with a lifetime of an hour.
func (e *env) insertLane(lane store.Lane, sender, rcpt string) store.Delivery {
	e.t.Helper()
	return e.insertLaneFor(lane, sender, rcpt, time.Hour)
}

func (e *env) insertLaneFor(lane store.Lane, sender, rcpt string, lifetime time.Duration) store.Delivery {
	e.t.Helper()
	now := e.now()
	e.n++
	m := &store.Message{ID: fmt.Sprintf("m%d", e.n), TenantID: "t1", Sender: sender, Lane: lane,
		Source: "http", Body: []byte("Subject: test\r\n\r\nhello\r\n"), CreatedAt: now}
	m.Size = len(m.Body)
	d := &store.Delivery{Recipient: rcpt, Domain: rcpt[strings.IndexByte(rcpt, '@')+1:], Lane: lane, State: store.Queued,
		CreatedAt: now, NextAttemptAt: now, ExpiresAt: now.Add(lifetime)}
	if err := e.st.InsertMessages(context.Background(), []*store.NewMessage{{Message: m, Deliveries: []*store.Delivery{d}}}); err != nil {
		e.t.Fatal(err)
	}
	return *d
}

// poolSource adapts a pool.Set to Config.Source, as the server does.
func poolSource(ps *pool.Set) func(q SourceQuery) (delivery.Source, time.Time, bool) {
	return func(q SourceQuery) (delivery.Source, time.Time, bool) {
		dom := ""
		if i := strings.LastIndexByte(q.Sender, '@'); i >= 0 {
			dom = q.Sender[i+1:]
		}
		c, wait, ok := ps.Pick(pool.Mail{Lane: string(q.Lane), Tenant: q.TenantID, SenderDomain: dom}, q.Dest, q.N, q.Now)
		return delivery.Source{IP: c.Addr, EHLO: c.EHLO}, wait, ok
	}
}

// TestPoolsOnLoopback: marketing (low lane) mail leaves from one loopback
// address and transactional mail from another, each with its pool's EHLO
// name, and the attempts record the source address. A storm of 421s
// against the marketing address throttles that address only: the
// transactional address keeps its full rate and connections.
func TestPoolsOnLoopback(t *testing.T) {
	const mkt, trx = "127.0.0.11", "127.0.0.12"
	mx := testkit.StartMX(t, "127.0.0.2", 0, testkit.Script{Data: func(m *testkit.Message, _ int) testkit.Reply {
		if m.Remote == mkt && strings.Contains(string(m.Data), "storm") {
			return testkit.Reply{Code: 421, Text: "4.7.0 Too many messages from your IP, slow down"}
		}
		return testkit.Reply{Code: 250, Text: "2.0.0 OK"}
	}})
	e := newEnv(t, mx.Port(), nil)
	e.dns.SetMX("x.test", testkit.MX{Pref: 10, Host: "mx.x.test"})
	e.dns.SetA("mx.x.test", "127.0.0.2")
	ps, err := pool.New(pool.Config{Pools: []config.Pool{
		{Name: "marketing", Addresses: []string{mkt}, EHLO: "bulk.posthorn.test", Lanes: []string{"low"}},
		{Name: "default", Addresses: []string{trx}, EHLO: "tx.posthorn.test"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	s := e.sched(Config{Source: poolSource(ps), MaxConnsPerDest: 4, Cooldown: time.Hour})

	low := e.insertLane(store.LaneLow, "news@app.test", "a@x.test")
	high := e.insertLane(store.LaneHigh, "noreply@app.test", "b@x.test")
	s.Enqueue([]store.Delivery{low, high})
	e.waitState(low, store.Delivered)
	e.waitState(high, store.Delivered)
	got := map[string]string{}
	for _, m := range mx.Messages() {
		got[m.To[0]] = m.Remote + " " + m.Helo
	}
	if got["a@x.test"] != mkt+" bulk.posthorn.test" || got["b@x.test"] != trx+" tx.posthorn.test" {
		t.Fatalf("sources seen by the MX: %v", got)
	}
	as, err := e.st.Attempts(context.Background(), low.MessageID)
	if err != nil || len(as) != 1 || as[0].SourceIP != mkt {
		t.Fatalf("attempt of the low-lane message: %+v %v", as, err)
	}
	evs, err := e.st.Events(context.Background(), store.EventFilter{MessageID: low.MessageID, Type: store.EventDelivered})
	if err != nil || len(evs) != 1 || !strings.Contains(evs[0].Detail, "source_ip="+mkt) {
		t.Fatalf("delivered event of the low-lane message: %+v %v", evs, err)
	}

	// The storm: the MX refuses the marketing address with 421.
	e.n++
	storm := e.insertStorm(store.LaneLow, "storm@x.test")
	s.Enqueue([]store.Delivery{storm})
	e.waitState(storm, store.Deferred)
	after := e.insertLane(store.LaneNormal, "noreply@app.test", "c@x.test")
	s.Enqueue([]store.Delivery{after})
	e.waitState(after, store.Delivered)
	states := map[string]DestinationInfo{}
	for _, d := range s.Destinations() {
		states[d.Key] = d
	}
	m, tx := states["x.test|"+mkt], states["x.test|"+trx]
	if !m.Throttle.Throttled || !m.Paused {
		t.Errorf("marketing address not throttled after a 421: %+v", m)
	}
	if tx.Throttle.Throttled || tx.Paused || tx.Throttle.Conns != 4 {
		t.Errorf("transactional address slowed by the other's 421: %+v", tx)
	}
}

// insertStorm stores a low-lane message whose body makes the MX answer 421
// to the marketing address.
func (e *env) insertStorm(lane store.Lane, rcpt string) store.Delivery {
	e.t.Helper()
	now := e.now()
	m := &store.Message{ID: fmt.Sprintf("storm%d", e.n), TenantID: "t1", Sender: "news@app.test", Lane: lane,
		Source: "http", Body: []byte("Subject: storm\r\n\r\nstorm\r\n"), CreatedAt: now}
	m.Size = len(m.Body)
	d := &store.Delivery{Recipient: rcpt, Domain: "x.test", Lane: lane, State: store.Queued,
		CreatedAt: now, NextAttemptAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := e.st.InsertMessages(context.Background(), []*store.NewMessage{{Message: m, Deliveries: []*store.Delivery{d}}}); err != nil {
		e.t.Fatal(err)
	}
	return *d
}

// TestWarmupWaitsForNextDay: with one warming address (caps 2 then 3 per
// destination, a "day" of 600ms), mail beyond the day's cap waits in the
// timer heap, not attempted, until the next day; no attempt of a later
// day starts before that day; and after the schedule everything goes.
func TestWarmupWaitsForNextDay(t *testing.T) {
	mx := testkit.StartMX(t, "127.0.0.2", 0, testkit.Script{})
	e := newEnv(t, mx.Port(), nil)
	e.dns.SetMX("x.test", testkit.MX{Pref: 10, Host: "mx.x.test"})
	e.dns.SetA("mx.x.test", "127.0.0.2")
	day := 600 * time.Millisecond
	start := time.Now().UTC() // day 1 begins here
	ps, err := pool.New(pool.Config{DayLength: day, Pools: []config.Pool{{Name: "default", Addresses: []string{"127.0.0.13"},
		Warming: []string{"127.0.0.13"}, WarmupStart: start.Format(time.RFC3339Nano), Warmup: []int{2, 3}}}})
	if err != nil {
		t.Fatal(err)
	}
	var ds []store.Delivery
	for i := range 9 {
		ds = append(ds, e.insertLane(store.LaneNormal, "a@app.test", fmt.Sprintf("r%d@x.test", i)))
	}
	s := e.sched(Config{Source: poolSource(ps)})
	s.Enqueue(ds)
	if time.Since(start) > day/2 {
		t.Skip("the machine is too slow for 600ms days")
	}
	// Day 1: two go, seven wait in the timer heap for day 2.
	waitFor(t, "day 1's two deliveries and seven jobs waiting", func() bool {
		return len(mx.Messages()) == 2 && s.Stats().Waiting == 7
	})
	for _, d := range ds {
		e.waitState(d, store.Delivered)
	}
	// Each attempt's warm-up day: no day over its cap, and the schedule
	// completed (day 3 on, the address is warm and takes the rest).
	perDay := map[int]int{}
	for _, d := range ds {
		as, err := e.st.Attempts(context.Background(), d.MessageID)
		if err != nil || len(as) != 1 || as[0].SourceIP != "127.0.0.13" {
			t.Fatalf("%s: attempts %+v %v (waiting for capacity must not count as an attempt)", d.Recipient, as, err)
		}
		perDay[int(as[0].StartedAt.Sub(start)/day)+1]++
	}
	if perDay[1] != 2 || perDay[2] != 3 || perDay[1]+perDay[2]+perDay[3] != 9 {
		t.Errorf("deliveries per warm-up day %v, want 2, 3, then the remaining 4", perDay)
	}
}

// TestWarmupWaitEndsWithLifetime: mail waiting for warm-up capacity is
// given up when its queue lifetime ends (a dead letter saying why), not
// kept until the next warm-up day.
func TestWarmupWaitEndsWithLifetime(t *testing.T) {
	mx := testkit.StartMX(t, "127.0.0.2", 0, testkit.Script{})
	e := newEnv(t, mx.Port(), nil)
	e.dns.SetMX("x.test", testkit.MX{Pref: 10, Host: "mx.x.test"})
	e.dns.SetA("mx.x.test", "127.0.0.2")
	ps, err := pool.New(pool.Config{DayLength: time.Hour, Pools: []config.Pool{{Name: "default", Addresses: []string{"127.0.0.13"},
		Warming: []string{"127.0.0.13"}, WarmupStart: time.Now().UTC().Format(time.RFC3339Nano), Warmup: []int{1}}}})
	if err != nil {
		t.Fatal(err)
	}
	first := e.insertLaneFor(store.LaneNormal, "a@app.test", "r1@x.test", time.Hour)
	second := e.insertLaneFor(store.LaneNormal, "a@app.test", "r2@x.test", 300*time.Millisecond)
	s := e.sched(Config{Source: poolSource(ps)})
	s.Enqueue([]store.Delivery{first, second})
	e.waitState(first, store.Delivered)
	d := e.waitState(second, store.DeadLetter)
	if d.LastClass != "rate_limited" {
		t.Errorf("given up: %+v", d)
	}
	if n := len(mx.Messages()); n != 1 {
		t.Errorf("MX got %d messages, want 1 (the cap)", n)
	}
}
