package queue

import (
	"fmt"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/testkit"
)

// busySlot starts a scheduler with one connection slot, taken by a
// backlog of 30 messages to busy.test (100 ms each), and fresh.test
// resolvable.
func busySlot(t *testing.T) (*testkit.MXServer, *env, *Scheduler, []store.Delivery) {
	t.Helper()
	mx := testkit.StartMX(t, "127.0.0.2", 0, testkit.Script{Stall: testkit.Stalls{EndOfData: 100 * time.Millisecond}})
	e := newEnv(t, mx.Port(), nil)
	for _, d := range []string{"busy.test", "fresh.test"} {
		e.dns.SetMX(d, testkit.MX{Pref: 10, Host: "mx." + d})
		e.dns.SetA("mx."+d, "127.0.0.2")
	}
	var backlog []store.Delivery
	for i := range 30 {
		backlog = append(backlog, e.insertLane(store.LaneNormal, "news@app.test", fmt.Sprintf("r%d@busy.test", i)))
	}
	s := e.sched(Config{MaxConnections: 1})
	s.Enqueue(backlog)
	waitFor(t, "the backlog to start", func() bool { return mx.Accepted() >= 1 })
	return mx, e, s, backlog
}

// TestHighLaneGetsSlot: with every connection slot taken by a destination
// draining a backlog, high-lane mail to another destination gets the next
// slot (the busy connection gives it up before its next job) instead of
// waiting for the backlog to drain; the backlog then goes on.
func TestHighLaneGetsSlot(t *testing.T) {
	mx, e, s, backlog := busySlot(t)
	high := e.insertLane(store.LaneHigh, "app@app.test", "reset@fresh.test")
	s.Enqueue([]store.Delivery{high})
	e.waitState(high, store.Delivered)
	if n := mx.Accepted(); n > 10 {
		t.Errorf("the high-lane message waited for %d of the 30 backlog messages", n-1)
	}
	for _, d := range backlog {
		e.waitState(d, store.Delivered)
	}
}

// TestHighLaneArrivingAsWorkerLeaves: high-lane mail that reaches a
// destination while its last worker is on its way out (it found nothing
// to send, or gave its slot up) is not left behind that worker: when the
// worker leaves, the destination lines up for the next high-lane slot,
// instead of waiting for a chance kick and then for every destination in
// the normal line (bench/scale saw such messages wait 7-13 s while a
// million deliveries drained).
func TestHighLaneArrivingAsWorkerLeaves(t *testing.T) {
	mx, e, s, backlog := busySlot(t)

	// fresh.test has one worker, about to leave: the high-lane message
	// arrives before it has.
	s.mu.Lock()
	d := s.newDest(s.dl.Destination("fresh.test"))
	d.active++
	s.conns++
	s.mu.Unlock()
	high := e.insertLane(store.LaneHigh, "app@app.test", "reset@fresh.test")
	s.Enqueue([]store.Delivery{high})
	s.workerDone(d)

	e.waitState(high, store.Delivered)
	if n := mx.Accepted(); n > 10 {
		t.Errorf("the high-lane message waited for %d of the 30 backlog messages", n-1)
	}
	for _, d := range backlog {
		e.waitState(d, store.Delivered)
	}
}
