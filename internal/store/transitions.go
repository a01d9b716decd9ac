package store

import (
	"errors"
	"fmt"
	"strings"
)

// Op is an operation that changes the state of deliveries. Every state
// change a backend makes belongs to one op, and only the changes listed in
// the transition table (Rules) exist.
type Op string

const (
	OpAccept      Op = "accept"       // InsertMessages: the first state of a delivery
	OpLease       Op = "lease"        // Lease: a worker takes the delivery
	OpOutcome     Op = "outcome"      // RecordOutcomes: the result of an attempt
	OpRecover     Op = "recover"      // RecoverLeases: a lease left by a stopped run
	OpHold        Op = "hold"         // operator: stop until released
	OpRelease     Op = "release"      // operator: back in the queue, due now
	OpFlush       Op = "flush"        // operator: due now
	OpRequeue     Op = "requeue"      // operator: retry now with a fresh lifetime
	OpCancel      Op = "cancel"       // API: what is not sent yet
	OpDelete      Op = "delete"       // operator (postsuper -d): cancel, dead letters included
	OpPurge       Op = "purge"        // operator: empty the dead-letter queue
	OpAsyncBounce Op = "async_bounce" // inbound: a DSN reports a permanent failure after the fact
	OpExpire      Op = "expire"       // scheduler: the queue lifetime ended while the delivery waited
	OpExpireSoft  Op = "expire_soft"  // the same, when the recipient's side failed last (mailbox full)
)

// Rule allows Op to move a delivery in one of From to To, writing an event
// of type Event (an outcome carries its own event; a lease writes none,
// its outcome follows). Accept rules have no From: they give a new
// delivery its first state.
type Rule struct {
	Op    Op
	From  []State
	To    State
	Event string
}

// rules is the transition table: the only state changes there are. It is
// never modified; Rules hands out copies.
var rules = []Rule{
	{OpAccept, nil, Queued, EventQueued},
	{OpAccept, nil, Scheduled, EventScheduled},
	{OpAccept, nil, Suppressed, EventSuppressed},
	// Accepted on hold: abuse protection (a flagged sender, a scan policy
	// of "hold") keeps new mail until an operator releases it.
	{OpAccept, nil, Held, EventHeld},

	// A scheduled delivery is leased directly when its send_at comes.
	{OpLease, []State{Scheduled, Queued, Deferred}, Sending, ""},

	{OpOutcome, []State{Sending}, Deferred, EventDeferred},
	{OpOutcome, []State{Sending}, Delivered, EventDelivered},
	{OpOutcome, []State{Sending}, Bounced, EventBounced},
	{OpOutcome, []State{Sending}, SoftBounced, EventSoftBounce},
	{OpOutcome, []State{Sending}, DeadLetter, EventDeadLetter},
	// Suppressed while it waited: dropped just before sending.
	{OpOutcome, []State{Sending}, Suppressed, EventSuppressed},

	{OpRecover, []State{Sending}, Queued, EventRecovered},

	// The queue lifetime ended while the delivery waited for a paused or
	// saturated destination: it fails without another attempt, its last
	// reply kept.
	{OpExpire, []State{Scheduled, Queued, Deferred}, DeadLetter, EventDeadLetter},
	{OpExpireSoft, []State{Scheduled, Queued, Deferred}, SoftBounced, EventSoftBounce},

	{OpHold, []State{Scheduled, Queued, Deferred}, Held, EventHeld},
	{OpRelease, []State{Held}, Queued, EventReleased},
	{OpFlush, []State{Queued, Deferred}, Queued, EventFlushed},
	// The one way out of dead_letter back into the queue.
	{OpRequeue, []State{Queued, Deferred, DeadLetter}, Queued, EventRequeued},
	{OpCancel, []State{Scheduled, Queued, Deferred, Held}, Cancelled, EventCancelled},
	{OpDelete, []State{Scheduled, Queued, Deferred, Held, DeadLetter}, Cancelled, EventCancelled},
	// Purged dead letters stay as cancelled rows: their attempts and
	// events remain readable.
	{OpPurge, []State{DeadLetter}, Cancelled, EventPurged},

	// A DSN arrives after the remote side accepted the message (250 after
	// DATA): delivered becomes bounced. It may also find the delivery
	// still waiting or failed otherwise, when our side never saw that 250
	// (a timeout after the final dot, a crash before the commit); the
	// permanent failure is then the better truth. Never from scheduled
	// (never attempted) nor sending (its outcome decides).
	{OpAsyncBounce, []State{Queued, Deferred, Held, Delivered, SoftBounced, DeadLetter}, Bounced, EventBounced},
}

// Rules returns a copy of the transition table.
func Rules() []Rule {
	out := make([]Rule, len(rules))
	for i, r := range rules {
		r.From = append([]State(nil), r.From...)
		out[i] = r
	}
	return out
}

// Ops lists every op in the table, in table order.
func Ops() []Op {
	var out []Op
	for _, r := range rules {
		if len(out) == 0 || out[len(out)-1] != r.Op {
			out = append(out, r.Op)
		}
	}
	return out
}

// Allowed reports whether op may move a delivery from from to to.
func Allowed(op Op, from, to State) bool {
	for _, r := range rules {
		if r.Op == op && r.To == to {
			for _, f := range r.From {
				if f == from {
					return true
				}
			}
		}
	}
	return false
}

// FromStates returns the states op may move to to, in AllStates order
// (nil when op never makes to).
func FromStates(op Op, to State) []State {
	return collect(func(r Rule) bool { return r.Op == op && r.To == to }, func(r Rule) []State { return r.From })
}

// Targets returns the states op can make, in AllStates order.
func Targets(op Op) []State {
	return collect(func(r Rule) bool { return r.Op == op }, func(r Rule) []State { return []State{r.To} })
}

// OpFrom returns every state op moves from, whatever its target, in
// AllStates order.
func OpFrom(op Op) []State {
	return collect(func(r Rule) bool { return r.Op == op }, func(r Rule) []State { return r.From })
}

// AcceptEvent is the event that records a new delivery in state s.
func AcceptEvent(s State) string {
	for _, r := range rules {
		if r.Op == OpAccept && r.To == s {
			return r.Event
		}
	}
	return ""
}

// SchedulerStates are the states the scheduler works on: those a lease or
// an outcome starts from (held waits for an operator, final states for
// nothing).
func SchedulerStates() []State {
	return collect(func(r Rule) bool { return r.Op == OpLease || r.Op == OpOutcome }, func(r Rule) []State { return r.From })
}

// collect gathers the states get returns for the rules keep selects,
// each once, in AllStates order.
func collect(keep func(Rule) bool, get func(Rule) []State) []State {
	seen := map[State]bool{}
	for _, r := range rules {
		if keep(r) {
			for _, s := range get(r) {
				seen[s] = true
			}
		}
	}
	var out []State
	for _, s := range AllStates {
		if seen[s] {
			out = append(out, s)
		}
	}
	return out
}

// opTarget returns the one state op makes and its event.
func opTarget(op Op) (State, string, bool) {
	var found *Rule
	for i, r := range rules {
		if r.Op == op {
			if found != nil {
				return "", "", false // several targets (accept, outcome)
			}
			found = &rules[i]
		}
	}
	if found == nil {
		return "", "", false
	}
	return found.To, found.Event, true
}

// SQLList renders states as the inside of a SQL IN list of literals:
// 'queued','deferred'. States are known constants, so no quoting issue
// arises; an unknown state panics (a programming error).
func SQLList(states []State) string {
	q := make([]string, len(states))
	for i, s := range states {
		if !s.Valid() {
			panic("store: SQLList of unknown state " + string(s))
		}
		q[i] = "'" + string(s) + "'"
	}
	return strings.Join(q, ",")
}

// ErrRefused is returned (wrapped) for a state change the transition
// table does not allow. Nothing is written when it is returned.
var ErrRefused = errors.New("state change not allowed")

// PrepareTransition checks spec against the table and fills in what the
// op implies: To and Event when empty, From (every state the op may move
// to To) when empty. A To the op never makes, or a From state the table
// does not allow for this op and To, is refused with ErrRefused. Backends
// call it first, so every backend refuses the same changes.
func PrepareTransition(spec *TransitionSpec) error {
	if spec.Op == "" {
		return fmt.Errorf("transition to %s: no op: %w", spec.To, ErrRefused)
	}
	to, event, ok := opTarget(spec.Op)
	if !ok || spec.Op == OpAccept || spec.Op == OpOutcome || spec.Op == OpLease || spec.Op == OpRecover {
		// Those have their own Store methods.
		return fmt.Errorf("transition: op %q is not an operator or inbound op: %w", spec.Op, ErrRefused)
	}
	if spec.To == "" {
		spec.To = to
	}
	if spec.To != to {
		return fmt.Errorf("transition: %s makes %s, not %s: %w", spec.Op, to, spec.To, ErrRefused)
	}
	if spec.Event == "" {
		spec.Event = event
	}
	if len(spec.From) == 0 {
		spec.From = FromStates(spec.Op, to)
		return nil
	}
	for _, f := range spec.From {
		if !Allowed(spec.Op, f, to) {
			return fmt.Errorf("transition: %s may not move %s to %s: %w", spec.Op, f, to, ErrRefused)
		}
	}
	return nil
}

// CheckOutcomes refuses outcomes whose state no attempt can lead to.
func CheckOutcomes(outs []Outcome) error {
	for _, o := range outs {
		if !Allowed(OpOutcome, Sending, o.State) {
			return fmt.Errorf("outcome of delivery %d: sending may not become %q: %w", o.DeliveryID, o.State, ErrRefused)
		}
	}
	return nil
}

// CheckAccept refuses a new delivery whose first state is not one a
// delivery can start in.
func CheckAccept(d *Delivery) error {
	for _, s := range Targets(OpAccept) {
		if d.State == s {
			return nil
		}
	}
	return fmt.Errorf("new delivery for %s: may not start in state %q: %w", d.Recipient, d.State, ErrRefused)
}
