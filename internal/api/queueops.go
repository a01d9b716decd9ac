package api

import (
	"context"
	"errors"
	"time"

	"github.com/posthorn/posthorn/internal/store"
)

// Scheduler is what queue operations need of the scheduler.
type Scheduler interface {
	Enqueue(ds []store.Delivery)
	Remove(ids []int64) []int64
	Reschedule(ds []store.Delivery)
}

// QueueOps are the operator's queue commands (postqueue/postsuper), shared
// by the admin socket and the HTTP API. Each changes the store first (with
// one event per delivery) and then tells the scheduler.
type QueueOps struct {
	Store    store.Store
	Sched    Scheduler
	Lifetime time.Duration
	Now      func() time.Time
}

// Selection picks deliveries for an operation.
type Selection struct {
	TenantID    string   `json:"tenant,omitempty"`
	IDs         []string `json:"ids,omitempty"` // message IDs
	DeliveryIDs []int64  `json:"delivery_ids,omitempty"`
	Domain      string   `json:"domain,omitempty"`
	All         bool     `json:"all,omitempty"`
}

// OpResult reports what an operation changed.
type OpResult struct {
	Changed    int              `json:"changed"`
	Deliveries []store.Delivery `json:"deliveries"`
}

var errNoSelection = errors.New("say which deliveries: message IDs, --domain, or --all")

func (q *QueueOps) spec(sel Selection, from []store.State, to store.State, event string) (store.TransitionSpec, error) {
	if len(sel.IDs) == 0 && len(sel.DeliveryIDs) == 0 && sel.Domain == "" && !sel.All {
		return store.TransitionSpec{}, errNoSelection
	}
	return store.TransitionSpec{TenantID: sel.TenantID, MessageIDs: sel.IDs, DeliveryIDs: sel.DeliveryIDs, Domain: sel.Domain,
		All: sel.All, From: from, To: to, Event: event, Now: q.Now().UTC()}, nil
}

func (q *QueueOps) run(ctx context.Context, spec store.TransitionSpec) (*OpResult, error) {
	ds, err := q.Store.Transition(ctx, spec)
	if err != nil {
		return nil, err
	}
	return &OpResult{Changed: len(ds), Deliveries: ds}, nil
}

// Flush makes deferred (and waiting queued) deliveries due now.
func (q *QueueOps) Flush(ctx context.Context, sel Selection) (*OpResult, error) {
	if len(sel.IDs) == 0 && len(sel.DeliveryIDs) == 0 && sel.Domain == "" {
		sel.All = true // postqueue -f flushes everything
	}
	spec, err := q.spec(sel, []store.State{store.Deferred, store.Queued}, store.Queued, store.EventFlushed)
	if err != nil {
		return nil, err
	}
	spec.NextAt = spec.Now
	res, err := q.run(ctx, spec)
	if err != nil {
		return nil, err
	}
	q.Sched.Reschedule(res.Deliveries)
	return res, nil
}

// Delete cancels deliveries that are not being sent right now and not
// already final (dead letters included: deleting them purges them).
func (q *QueueOps) Delete(ctx context.Context, sel Selection) (*OpResult, error) {
	spec, err := q.spec(sel, []store.State{store.Scheduled, store.Queued, store.Deferred, store.Held, store.DeadLetter}, store.Cancelled, store.EventCancelled)
	if err != nil {
		return nil, err
	}
	res, err := q.run(ctx, spec)
	if err != nil {
		return nil, err
	}
	q.Sched.Remove(ids(res.Deliveries))
	return res, nil
}

// Purge removes dead letters from the dead-letter queue (they become
// cancelled; their history stays in the activity log).
func (q *QueueOps) Purge(ctx context.Context, sel Selection) (*OpResult, error) {
	if len(sel.IDs) == 0 && len(sel.DeliveryIDs) == 0 && sel.Domain == "" {
		sel.All = true
	}
	spec, err := q.spec(sel, []store.State{store.DeadLetter}, store.Cancelled, store.EventPurged)
	if err != nil {
		return nil, err
	}
	return q.run(ctx, spec)
}

// Hold stops deliveries until released.
func (q *QueueOps) Hold(ctx context.Context, sel Selection) (*OpResult, error) {
	spec, err := q.spec(sel, []store.State{store.Scheduled, store.Queued, store.Deferred}, store.Held, store.EventHeld)
	if err != nil {
		return nil, err
	}
	res, err := q.run(ctx, spec)
	if err != nil {
		return nil, err
	}
	q.Sched.Remove(ids(res.Deliveries))
	return res, nil
}

// Release puts held deliveries back in the queue, due now.
func (q *QueueOps) Release(ctx context.Context, sel Selection) (*OpResult, error) {
	spec, err := q.spec(sel, []store.State{store.Held}, store.Queued, store.EventReleased)
	if err != nil {
		return nil, err
	}
	spec.NextAt = spec.Now
	res, err := q.run(ctx, spec)
	if err != nil {
		return nil, err
	}
	q.Sched.Enqueue(res.Deliveries)
	return res, nil
}

// Requeue retries dead letters (and deferred deliveries) now, with a fresh
// queue lifetime.
func (q *QueueOps) Requeue(ctx context.Context, sel Selection, deadOnly bool) (*OpResult, error) {
	from := []store.State{store.DeadLetter, store.Deferred, store.Queued}
	if deadOnly {
		from = []store.State{store.DeadLetter}
		if len(sel.IDs) == 0 && len(sel.DeliveryIDs) == 0 && sel.Domain == "" {
			sel.All = true
		}
	}
	spec, err := q.spec(sel, from, store.Queued, store.EventRequeued)
	if err != nil {
		return nil, err
	}
	spec.NextAt = spec.Now
	spec.ExpiresAt = spec.Now.Add(q.Lifetime)
	res, err := q.run(ctx, spec)
	if err != nil {
		return nil, err
	}
	q.Sched.Reschedule(res.Deliveries)
	return res, nil
}

func ids(ds []store.Delivery) []int64 {
	out := make([]int64, len(ds))
	for i, d := range ds {
		out[i] = d.ID
	}
	return out
}
