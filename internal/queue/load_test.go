package queue

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/testkit"
)

// insertDue stores one message to rcpt due at due (scheduled when in the
// future, else queued).
func (e *env) insertDue(rcpt string, due time.Time) store.Delivery {
	e.t.Helper()
	now := e.now()
	e.n++
	m := &store.Message{ID: fmt.Sprintf("m%d", e.n), TenantID: "t1", Sender: "s@app.test", Lane: store.LaneNormal,
		Source: "http", Body: []byte("Subject: test\r\n\r\nhello\r\n"), CreatedAt: now}
	m.Size = len(m.Body)
	st := store.Queued
	if due.After(now) {
		st = store.Scheduled
	}
	d := &store.Delivery{Recipient: rcpt, Domain: "x.test", Lane: store.LaneNormal, State: st,
		CreatedAt: now, NextAttemptAt: due, ExpiresAt: due.Add(24 * time.Hour)}
	if err := e.st.InsertMessages(context.Background(), []*store.NewMessage{{Message: m, Deliveries: []*store.Delivery{d}}}); err != nil {
		e.t.Fatal(err)
	}
	return *d
}

// TestLaterMailStaysInStore (with the injected clock): mail scheduled
// beyond the memory window is not held in memory, neither at start nor
// when enqueued after acceptance; it is loaded and sent once it comes
// into the window.
func TestLaterMailStaysInStore(t *testing.T) {
	mx := testkit.StartMX(t, "127.0.0.2", 0, testkit.Script{})
	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	e := newEnv(t, mx.Port(), clk.Now)
	e.dns.SetMX("x.test", testkit.MX{Pref: 10, Host: "mx.x.test"})
	e.dns.SetA("mx.x.test", "127.0.0.2")
	t0 := clk.Now()
	early := e.insertDue("early@x.test", t0.Add(2*time.Hour))
	s := e.sched(Config{Window: time.Minute})
	late := e.insertDue("late@x.test", t0.Add(3*time.Hour))
	s.Enqueue([]store.Delivery{late})
	if st := s.Stats(); st.Known != 0 {
		t.Fatalf("%d deliveries held in memory, want none (both are due after the window)", st.Known)
	}
	clk.Set(t0.Add(2 * time.Hour)) // early is due
	s.Poke()
	e.waitState(early, store.Delivered)
	if got := e.get(late); got.State != store.Scheduled {
		t.Fatalf("late: %s before it is due", got.State)
	}
	clk.Set(t0.Add(3 * time.Hour))
	s.Poke()
	e.waitState(late, store.Delivered)
}

// TestLoadInDueOrder: the stored queue is loaded earliest due first, not
// in acceptance order: with memory for 2 deliveries and one connection,
// deliveries accepted in the reverse of their due order are sent in due
// order.
func TestLoadInDueOrder(t *testing.T) {
	mx := testkit.StartMX(t, "127.0.0.2", 0, testkit.Script{})
	e := newEnv(t, mx.Port(), nil)
	e.dns.SetMX("x.test", testkit.MX{Pref: 10, Host: "mx.x.test"})
	e.dns.SetA("mx.x.test", "127.0.0.2")
	now := time.Now()
	var want []string
	for i := range 6 {
		rcpt := fmt.Sprintf("r%d@x.test", i)
		e.insertDue(rcpt, now.Add(-time.Duration(i)*time.Minute)) // each due earlier than the one before
		want = append([]string{rcpt}, want...)
	}
	e.sched(Config{MaxLoaded: 2, MaxConnections: 1})
	msgs, err := mx.WaitMessages(context.Background(), 6)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range msgs {
		got = append(got, m.To...)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("sent in the order %v, want due order %v", got, want)
	}
}

// TestLoaderNotWokenPerMessage: mail accepted one message at a time into
// a short queue does not send the loader to the store for each message.
// (Each message became the first to expire and woke the timer loop and
// the loader alike: a fifth of the CPU at 10 SMTP sessions.)
func TestLoaderNotWokenPerMessage(t *testing.T) {
	mx := testkit.StartMX(t, "127.0.0.2", 0, testkit.Script{})
	e := newEnv(t, mx.Port(), nil)
	e.dns.SetMX("x.test", testkit.MX{Pref: 10, Host: "mx.x.test"})
	e.dns.SetA("mx.x.test", "127.0.0.2")
	s := e.sched(Config{})
	time.Sleep(100 * time.Millisecond) // the loader's first pass after Start
	before := e.st.pendingDue.Load()
	const n = 50
	for i := range n {
		d := e.insertDue(fmt.Sprintf("r%d@x.test", i), e.now())
		s.Enqueue([]store.Delivery{d})
		e.waitState(d, store.Delivered) // the queue is empty again
	}
	if got := e.st.pendingDue.Load() - before; got > 5 {
		t.Fatalf("the loader read the store %d times for %d messages accepted into memory", got, n)
	}
}

// TestLoaderLeavesSigningMessages: the loader does not take deliveries
// whose message the DKIM signers still have (Config.Signing); they are
// sent once enqueued by the signers.
func TestLoaderLeavesSigningMessages(t *testing.T) {
	mx := testkit.StartMX(t, "127.0.0.2", 0, testkit.Script{})
	e := newEnv(t, mx.Port(), nil)
	e.dns.SetMX("x.test", testkit.MX{Pref: 10, Host: "mx.x.test"})
	e.dns.SetA("mx.x.test", "127.0.0.2")
	signing := e.insertDue("signing@x.test", e.now())
	other := e.insertDue("other@x.test", e.now())
	var done atomic.Bool
	s := e.sched(Config{Signing: func(id string) bool { return id == signing.MessageID && !done.Load() }})
	e.waitState(other, store.Delivered)
	s.Poke() // another pass of the loader
	time.Sleep(200 * time.Millisecond)
	if got := e.get(signing); got.State != store.Queued {
		t.Fatalf("a delivery of a message being signed went %s", got.State)
	}
	done.Store(true)
	s.Enqueue([]store.Delivery{signing}) // as the signers do once the signature is stored
	e.waitState(signing, store.Delivered)
}
