package queue

import (
	"testing"

	"github.com/posthorn/posthorn/internal/store"
)

// TestAheadOf counts what a destination serves before a ready job: every
// delivery of higher lanes, and in its own lane its tenant's earlier jobs
// plus, per turn of its tenant, one job of each other tenant (the
// round-robin order popReady follows). The count is checked against
// popping the lists for real.
func TestAheadOf(t *testing.T) {
	d := &dest{}
	job := func(tenant string, lane store.Lane, rcpts int) *Job {
		j := &Job{TenantID: tenant, Lane: lane, Rcpts: make([]Rcpt, rcpts), dest: d}
		d.ready[laneIndex(lane)].push(j)
		d.nready++
		return j
	}
	job("t1", store.LaneHigh, 2)
	job("t2", store.LaneNormal, 3)
	a1 := job("t1", store.LaneLow, 1)
	b1 := job("t2", store.LaneLow, 4)
	a2 := job("t1", store.LaneLow, 1)
	removed := job("t2", store.LaneLow, 5)
	removed.removed = true
	job("t2", store.LaneLow, 1)
	target := job("t1", store.LaneLow, 1)
	job("t3", store.LaneLow, 1)

	higher, inLane := aheadOf(d, target)
	// Higher lanes: 2 + 3. Own lane: t1's a1 and a2 (2), and the jobs of
	// t2 and t3 served in t1's two turns before the target (b1, the last
	// t2 job, t3's job: 4+1+1).
	if higher != 5 || inLane != 8 {
		t.Fatalf("aheadOf = %d, %d; want 5, 8", higher, inLane)
	}
	// The count equals what popping the lane serves before the job, for
	// targets of several tenants and ring positions.
	check := func(target *Job) {
		t.Helper()
		_, want := aheadOf(d, target)
		q := &d.ready[laneIndex(store.LaneLow)]
		saved := *q
		saved.ring = append([]string(nil), q.ring...)
		saved.byTenant = map[string]*fifo{}
		for k, f := range q.byTenant {
			cp := *f
			cp.items = append([]*Job(nil), f.items...)
			saved.byTenant[k] = &cp
		}
		served := 0
		for j := q.pop(); j != nil && j != target; j = q.pop() {
			served += len(j.Rcpts)
		}
		*q = saved
		if served != want {
			t.Fatalf("round-robin served %d deliveries before the target, aheadOf said %d", served, want)
		}
	}
	check(target)
	check(b1)
	d.ready[laneIndex(store.LaneLow)].next = 1 // t2 is served next
	check(target)
	check(a2)
	_ = a1
}
