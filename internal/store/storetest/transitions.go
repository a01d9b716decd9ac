package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/store"
)

// machine drives deliveries of one store through the transition table.
type machine struct {
	t   *testing.T
	s   store.Store
	ctx context.Context
	n   int
}

// step is one transition on the way to a state.
type step struct {
	op store.Op
	to store.State
}

// pathTo finds the shortest way, through the table only, from a new
// delivery to state want.
func pathTo(want store.State) ([]step, bool) {
	type node struct {
		state store.State
		path  []step
	}
	var queue []node
	seen := map[store.State]bool{}
	for _, s := range store.Targets(store.OpAccept) {
		queue = append(queue, node{s, []step{{store.OpAccept, s}}})
		seen[s] = true
	}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		if n.state == want {
			return n.path, true
		}
		for _, r := range store.Rules() {
			if slices.Contains(r.From, n.state) && !seen[r.To] && r.Op != store.OpRecover {
				seen[r.To] = true
				queue = append(queue, node{r.To, append(slices.Clone(n.path), step{r.Op, r.To})})
			}
		}
	}
	return nil, false
}

// make returns a new delivery (in its own message) in state want,
// reached only through allowed transitions.
func (m *machine) make(want store.State) int64 {
	m.t.Helper()
	path, ok := pathTo(want)
	if !ok {
		m.t.Fatalf("state %s cannot be reached through the transition table", want)
	}
	m.n++
	nm := NewTestMessage(fmt.Sprintf("sm%04d", m.n), "a@one.test")
	nm.Deliveries[0].State = path[0].to
	if err := m.s.InsertMessages(m.ctx, []*store.NewMessage{nm}); err != nil {
		m.t.Fatalf("insert in %s: %v", path[0].to, err)
	}
	id := nm.Deliveries[0].ID
	for _, st := range path[1:] {
		var err error
		switch st.op {
		case store.OpLease:
			var leased []int64
			leased, err = m.s.Lease(m.ctx, []int64{id}, t0, t0.Add(time.Minute))
			if err == nil && len(leased) != 1 {
				err = errors.New("not leased")
			}
		case store.OpOutcome:
			err = m.s.RecordOutcomes(m.ctx, []store.Outcome{{DeliveryID: id, State: st.to, StartedAt: t0, Event: "test"}})
		default:
			var ds []store.Delivery
			ds, err = m.s.Transition(m.ctx, store.TransitionSpec{Op: st.op, DeliveryIDs: []int64{id}, Now: t0})
			if err == nil && len(ds) != 1 {
				err = errors.New("not moved")
			}
		}
		if err != nil {
			m.t.Fatalf("make %s: %s to %s: %v", want, st.op, st.to, err)
		}
	}
	if got := m.state(id); got != want {
		m.t.Fatalf("make %s: delivery is %s", want, got)
	}
	return id
}

func (m *machine) get(id int64) store.Delivery {
	m.t.Helper()
	ds, err := m.s.ListDeliveries(m.ctx, store.DeliveryFilter{AfterID: id - 1, Limit: 1})
	if err != nil || len(ds) != 1 || ds[0].ID != id {
		m.t.Fatalf("read delivery %d: %+v %v", id, ds, err)
	}
	return ds[0]
}

func (m *machine) state(id int64) store.State { return m.get(id).State }

func (m *machine) lastEvent(id int64) string {
	m.t.Helper()
	evs, err := m.s.Events(m.ctx, store.EventFilter{MessageID: m.get(id).MessageID})
	if err != nil || len(evs) == 0 {
		m.t.Fatalf("events of delivery %d: %v", id, err)
	}
	return evs[len(evs)-1].Type
}

// testEveryTransition tries every op on every pair of states and checks
// that exactly the transitions in the table happen; everything else is
// refused (or, where the request was valid but the delivery's state does
// not fit, changes nothing).
func testEveryTransition(t *testing.T, s store.Store) {
	m := &machine{t: t, s: s, ctx: context.Background()}
	// One witness per state for the requests that must change nothing.
	witness := map[store.State]int64{}
	for _, st := range store.AllStates {
		witness[st] = m.make(st)
	}
	unchanged := func(from store.State, what string) {
		t.Helper()
		if got := m.state(witness[from]); got != from {
			t.Fatalf("%s: delivery in %s became %s", what, from, got)
		}
	}

	// accept: only the table's first states.
	for _, to := range store.AllStates {
		m.n++
		nm := NewTestMessage(fmt.Sprintf("acc%04d", m.n), "a@one.test")
		nm.Deliveries[0].State = to
		err := s.InsertMessages(m.ctx, []*store.NewMessage{nm})
		allowed := slices.Contains(store.Targets(store.OpAccept), to)
		if allowed != (err == nil) {
			t.Fatalf("insert in %s: err %v, allowed by table: %v", to, err, allowed)
		}
		if !allowed {
			if !errors.Is(err, store.ErrRefused) {
				t.Fatalf("insert in %s: %v, want ErrRefused", to, err)
			}
			if _, err := s.GetMessage(m.ctx, "", nm.Message.ID, false); err != store.ErrNotFound {
				t.Fatalf("refused insert in %s left its message: %v", to, err)
			}
		}
	}

	// lease: target fixed (sending).
	for _, from := range store.AllStates {
		if store.Allowed(store.OpLease, from, store.Sending) {
			id := m.make(from)
			if leased, err := s.Lease(m.ctx, []int64{id}, t0, t0.Add(time.Minute)); err != nil || len(leased) != 1 || m.state(id) != store.Sending {
				t.Fatalf("lease from %s: %v %v, now %s", from, leased, err, m.state(id))
			}
			continue
		}
		if leased, err := s.Lease(m.ctx, []int64{witness[from]}, t0, t0.Add(time.Minute)); err != nil || len(leased) != 0 {
			t.Fatalf("lease from %s: leased %v, err %v", from, leased, err)
		}
		unchanged(from, "lease")
	}

	// outcome: every pair. A state no attempt leads to is refused; a valid
	// outcome for a delivery not sending is ignored and reported.
	for _, from := range store.AllStates {
		for _, to := range store.AllStates {
			out := store.Outcome{State: to, Class: "test", StartedAt: t0, Event: "test-" + string(to)}
			if store.Allowed(store.OpOutcome, from, to) {
				out.DeliveryID = m.make(from)
				if err := s.RecordOutcomes(m.ctx, []store.Outcome{out}); err != nil || m.state(out.DeliveryID) != to {
					t.Fatalf("outcome %s -> %s: %v, now %s", from, to, err, m.state(out.DeliveryID))
				}
				if ev := m.lastEvent(out.DeliveryID); ev != out.Event {
					t.Fatalf("outcome %s -> %s logged %q, want %q", from, to, ev, out.Event)
				}
				continue
			}
			out.DeliveryID = witness[from]
			err := s.RecordOutcomes(m.ctx, []store.Outcome{out})
			switch {
			case !slices.Contains(store.Targets(store.OpOutcome), to):
				if !errors.Is(err, store.ErrRefused) {
					t.Fatalf("outcome %s -> %s: %v, want ErrRefused", from, to, err)
				}
			case err != nil:
				t.Fatalf("outcome %s -> %s for a delivery not sending: %v, want it ignored", from, to, err)
			case m.lastEvent(out.DeliveryID) != store.EventOutcomeIgnored:
				t.Fatalf("outcome %s -> %s ignored without an %s event", from, to, store.EventOutcomeIgnored)
			}
			unchanged(from, fmt.Sprintf("outcome %s -> %s", from, to))
		}
	}
	// A refused outcome refuses the whole call: the valid one beside it is
	// not written either.
	a, b := m.make(store.Sending), m.make(store.Sending)
	err := s.RecordOutcomes(m.ctx, []store.Outcome{{DeliveryID: a, State: store.Delivered, StartedAt: t0, Event: "x"},
		{DeliveryID: b, State: store.Held, StartedAt: t0, Event: "x"}})
	if !errors.Is(err, store.ErrRefused) || m.state(a) != store.Sending || m.state(b) != store.Sending {
		t.Fatalf("outcomes with one refused: %v, states %s %s", err, m.state(a), m.state(b))
	}

	// Transition ops: every op on every pair, with From given.
	for _, op := range store.Ops() {
		switch op {
		case store.OpAccept, store.OpLease, store.OpOutcome, store.OpRecover:
			// Their own methods: a Transition with them is refused.
			if _, err := s.Transition(m.ctx, store.TransitionSpec{Op: op, All: true, Now: t0}); !errors.Is(err, store.ErrRefused) {
				t.Fatalf("Transition with op %s: %v, want ErrRefused", op, err)
			}
			continue
		}
		for _, from := range store.AllStates {
			for _, to := range store.AllStates {
				spec := store.TransitionSpec{Op: op, From: []store.State{from}, To: to, Now: t0}
				if store.Allowed(op, from, to) {
					spec.DeliveryIDs = []int64{m.make(from)}
					ds, err := s.Transition(m.ctx, spec)
					if err != nil || len(ds) != 1 || ds[0].State != to || m.state(ds[0].ID) != to {
						t.Fatalf("%s %s -> %s: %+v %v", op, from, to, ds, err)
					}
					want := store.Rules()[slices.IndexFunc(store.Rules(), func(r store.Rule) bool { return r.Op == op })].Event
					if ev := m.lastEvent(ds[0].ID); ev != want {
						t.Fatalf("%s %s -> %s logged %q, want %q", op, from, to, ev, want)
					}
					continue
				}
				spec.DeliveryIDs = []int64{witness[from]}
				if ds, err := s.Transition(m.ctx, spec); !errors.Is(err, store.ErrRefused) || len(ds) != 0 {
					t.Fatalf("%s %s -> %s: %+v %v, want ErrRefused", op, from, to, ds, err)
				}
				unchanged(from, fmt.Sprintf("%s %s -> %s", op, from, to))
			}
			// Without From, the op moves what the table lets it and
			// leaves the rest alone.
			if len(store.Targets(op)) == 1 && !slices.Contains(store.OpFrom(op), from) {
				ds, err := s.Transition(m.ctx, store.TransitionSpec{Op: op, DeliveryIDs: []int64{witness[from]}, Now: t0})
				if err != nil || len(ds) != 0 {
					t.Fatalf("%s on a delivery in %s: %+v %v, want nothing changed", op, from, ds, err)
				}
				unchanged(from, fmt.Sprintf("%s on %s", op, from))
			}
		}
	}

	// recover: only sending deliveries, all of them, go back to queued.
	before := map[store.State]store.State{}
	for _, from := range store.AllStates {
		before[from] = m.state(witness[from])
	}
	if _, err := s.RecoverLeases(m.ctx, t0); err != nil {
		t.Fatal(err)
	}
	for _, from := range store.AllStates {
		want := before[from]
		if store.Allowed(store.OpRecover, want, store.Queued) {
			want = store.Queued
		}
		if got := m.state(witness[from]); got != want {
			t.Fatalf("recover: delivery in %s became %s, want %s", before[from], got, want)
		}
	}
}
