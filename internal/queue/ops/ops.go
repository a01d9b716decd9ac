// Package ops holds the operator's queue operations (flush, hold, release,
// delete, requeue, why, summary, destinations) next to the scheduler they
// drive. The admin socket, the /v1 API and the web UI call them; it imports
// neither of those, only the store and the scheduler's read-only view.
package ops

import (
	"context"
	"errors"
	"fmt"
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
	Inspect  Inspector // read-only view for why and summary (nil: the store's view alone)
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

// ErrNoSelection refuses an operation that names no deliveries.
var ErrNoSelection = errors.New("say which deliveries: message IDs, delivery IDs (--delivery), --domain, or --all")

// checkIDs refuses ids that name nothing (in the selection's tenant, when
// one is given), so a mistyped id is an error rather than "0 deliveries
// changed".
func (q *QueueOps) checkIDs(ctx context.Context, sel Selection) error {
	for _, id := range sel.IDs {
		if _, err := q.Store.GetMessage(ctx, sel.TenantID, id, false); errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("no message %q (message ids are in the first column of posthorn queue list): %w", id, store.ErrNotFound)
		} else if err != nil {
			return fmt.Errorf("look up message %s: %w", id, err)
		}
	}
	for _, id := range sel.DeliveryIDs {
		ds, err := q.Store.ListDeliveries(ctx, store.DeliveryFilter{TenantID: sel.TenantID, AfterID: id - 1, Limit: 1})
		if err != nil {
			return fmt.Errorf("look up delivery %d: %w", id, err)
		}
		if len(ds) == 0 || ds[0].ID != id {
			return fmt.Errorf("no delivery %d (delivery ids are in the DELIVERY column of posthorn queue list): %w", id, store.ErrNotFound)
		}
	}
	return nil
}

func (q *QueueOps) spec(sel Selection, op store.Op) (store.TransitionSpec, error) {
	if len(sel.IDs) == 0 && len(sel.DeliveryIDs) == 0 && sel.Domain == "" && !sel.All {
		return store.TransitionSpec{}, ErrNoSelection
	}
	return store.TransitionSpec{TenantID: sel.TenantID, MessageIDs: sel.IDs, DeliveryIDs: sel.DeliveryIDs, Domain: sel.Domain,
		All: sel.All, Op: op, Now: q.Now().UTC()}, nil
}

// change applies op to the selected deliveries, moving those in a state
// op moves (the store's transition table says which) with one event each
// (tweak may set due and expiry times), then tells the scheduler through
// after.
func (q *QueueOps) change(ctx context.Context, sel Selection, op store.Op,
	tweak func(*store.TransitionSpec), after func([]store.Delivery)) (*OpResult, error) {
	spec, err := q.spec(sel, op)
	if err != nil {
		return nil, err
	}
	if err := q.checkIDs(ctx, sel); err != nil {
		return nil, err
	}
	if tweak != nil {
		tweak(&spec)
	}
	ds, err := q.Store.Transition(ctx, spec)
	if err != nil {
		return nil, err
	}
	if after != nil {
		after(ds)
	}
	return &OpResult{Changed: len(ds), Deliveries: ds}, nil
}

func dueNow(spec *store.TransitionSpec) { spec.NextAt = spec.Now }

func (q *QueueOps) remove(ds []store.Delivery) { q.Sched.Remove(ids(ds)) }

// Flush makes deferred (and waiting queued) deliveries due now. Like
// every operation it needs a selection: IDs, a domain, or All (no
// selection is an error, never "everything").
func (q *QueueOps) Flush(ctx context.Context, sel Selection) (*OpResult, error) {
	return q.change(ctx, sel, store.OpFlush, dueNow, q.Sched.Reschedule)
}

// Delete cancels deliveries that are not being sent right now and not
// already final (dead letters included: deleting them purges them).
func (q *QueueOps) Delete(ctx context.Context, sel Selection) (*OpResult, error) {
	return q.change(ctx, sel, store.OpDelete, nil, q.remove)
}

// Cancel is the API's cancel: what is not delivered yet and not being
// sent (dead letters stay for the dead-letter queue).
func (q *QueueOps) Cancel(ctx context.Context, sel Selection) (*OpResult, error) {
	return q.change(ctx, sel, store.OpCancel, nil, q.remove)
}

// Purge removes dead letters from the dead-letter queue (they become
// cancelled; their history stays in the activity log).
func (q *QueueOps) Purge(ctx context.Context, sel Selection) (*OpResult, error) {
	return q.change(ctx, sel, store.OpPurge, nil, nil)
}

// Hold stops deliveries until released.
func (q *QueueOps) Hold(ctx context.Context, sel Selection) (*OpResult, error) {
	return q.change(ctx, sel, store.OpHold, nil, q.remove)
}

// Release puts held deliveries back in the queue, due now.
func (q *QueueOps) Release(ctx context.Context, sel Selection) (*OpResult, error) {
	return q.change(ctx, sel, store.OpRelease, dueNow, q.Sched.Enqueue)
}

// Requeue retries dead letters (and deferred deliveries) now, with a fresh
// queue lifetime.
func (q *QueueOps) Requeue(ctx context.Context, sel Selection, deadOnly bool) (*OpResult, error) {
	fresh := func(spec *store.TransitionSpec) {
		if deadOnly {
			spec.From = []store.State{store.DeadLetter} // the dead-letter queue's requeue
		}
		spec.NextAt = spec.Now
		spec.ExpiresAt = spec.Now.Add(q.Lifetime)
	}
	return q.change(ctx, sel, store.OpRequeue, fresh, q.Sched.Reschedule)
}

func ids(ds []store.Delivery) []int64 {
	out := make([]int64, len(ds))
	for i, d := range ds {
		out[i] = d.ID
	}
	return out
}
