package queue

import (
	"container/heap"
	"time"

	"github.com/posthorn/posthorn/internal/store"
)

// Job is the unit a connection sends: the recipients of one message at
// one domain that are due together, sent in one SMTP transaction.
type Job struct {
	MessageID string
	TenantID  string
	Sender    string // envelope sender as accepted (selects a source pool)
	Domain    string
	Lane      store.Lane
	Rcpts     []Rcpt
	Due       time.Time

	seq     uint64 // FIFO order within a lane
	where   place
	hidx    int // index in the timer heap while where == inHeap
	dest    *dest
	removed bool // lazily dropped from a ready list
	// While ready: when the job is given up for good if it is still
	// waiting (its lifetime ended and no attempt could be made), and its
	// place in the expiry heap plus one (0: not in it).
	expireAt time.Time
	eidx     int
	// dropped holds deliveries an operator changed in the store while j
	// was in flight; finish asks the store what became of them.
	dropped map[int64]bool
	// For the mail log's delays: when a worker took j, and how long the
	// connection it was sent on took to set up (0: reused).
	taken time.Time
	setup time.Duration
}

// Rcpt is one delivery inside a job.
type Rcpt struct {
	ID        int64
	Addr      string
	Attempts  int
	ExpiresAt time.Time
	LastClass string // of the latest attempt: what an expiry turns it into
}

type place uint8

const (
	nowhere place = iota
	inHeap
	inReady
	inFlight
)

func (j *Job) ids() []int64 {
	ids := make([]int64, len(j.Rcpts))
	for i, r := range j.Rcpts {
		ids[i] = r.ID
	}
	return ids
}

// jobHeap orders jobs not yet due by due time, then arrival.
type jobHeap []*Job

func (h jobHeap) Len() int { return len(h) }
func (h jobHeap) Less(i, j int) bool {
	if !h[i].Due.Equal(h[j].Due) {
		return h[i].Due.Before(h[j].Due)
	}
	return h[i].seq < h[j].seq
}
func (h jobHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].hidx, h[j].hidx = i, j
}
func (h *jobHeap) Push(x any) {
	j := x.(*Job)
	j.hidx = len(*h)
	*h = append(*h, j)
}
func (h *jobHeap) Pop() any {
	old := *h
	j := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	j.hidx = -1
	return j
}

var _ heap.Interface = (*jobHeap)(nil)

// expiryHeap orders ready jobs by expireAt.
type expiryHeap []*Job

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].expireAt.Before(h[j].expireAt) }
func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].eidx, h[j].eidx = i+1, j+1
}
func (h *expiryHeap) Push(x any) {
	j := x.(*Job)
	*h = append(*h, j)
	j.eidx = len(*h)
}
func (h *expiryHeap) Pop() any {
	old := *h
	j := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	j.eidx = 0
	return j
}

// fifo is a queue of jobs; removed jobs are skipped when popped.
type fifo struct {
	items []*Job
	head  int
}

func (f *fifo) push(j *Job) { f.items = append(f.items, j) }

func (f *fifo) pop() *Job {
	for f.head < len(f.items) {
		j := f.items[f.head]
		f.items[f.head] = nil
		f.head++
		if f.head > 1024 && f.head*2 > len(f.items) {
			f.items = append([]*Job(nil), f.items[f.head:]...)
			f.head = 0
		}
		if !j.removed {
			return j
		}
	}
	return nil
}

// laneQueue is one lane of a destination: a FIFO per tenant, served
// round-robin, so one tenant's backlog cannot delay another tenant's mail
// in the same lane.
type laneQueue struct {
	byTenant map[string]*fifo
	ring     []string // tenants that may have work, in service order
	next     int
}

func (q *laneQueue) push(j *Job) {
	if q.byTenant == nil {
		q.byTenant = map[string]*fifo{}
	}
	f := q.byTenant[j.TenantID]
	if f == nil {
		f = &fifo{}
		q.byTenant[j.TenantID] = f
		q.ring = append(q.ring, j.TenantID)
	}
	f.push(j)
}

// jobs returns the jobs waiting in q (removed ones left out).
func (q *laneQueue) jobs() []*Job {
	var out []*Job
	for _, t := range q.ring {
		f := q.byTenant[t]
		for _, j := range f.items[f.head:] {
			if !j.removed {
				out = append(out, j)
			}
		}
	}
	return out
}

// pop takes the next job of the next tenant in turn.
func (q *laneQueue) pop() *Job {
	for len(q.ring) > 0 {
		if q.next >= len(q.ring) {
			q.next = 0
		}
		t := q.ring[q.next]
		if j := q.byTenant[t].pop(); j != nil {
			q.next++
			return j
		}
		// This tenant has nothing left in this lane.
		delete(q.byTenant, t)
		q.ring = append(q.ring[:q.next], q.ring[q.next+1:]...)
	}
	return nil
}

func laneIndex(l store.Lane) int {
	switch l {
	case store.LaneHigh:
		return 0
	case store.LaneLow:
		return 2
	}
	return 1
}
