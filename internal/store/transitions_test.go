package store

import (
	"errors"
	"slices"
	"testing"
)

// The package doc's promise: a final state changes only through these.
func TestFinalStatesChangeOnlyAsDocumented(t *testing.T) {
	type exit struct {
		op       Op
		from, to State
	}
	want := []exit{
		{OpRequeue, DeadLetter, Queued},
		{OpDelete, DeadLetter, Cancelled},
		{OpPurge, DeadLetter, Cancelled},
		{OpAsyncBounce, Delivered, Bounced},
		{OpAsyncBounce, SoftBounced, Bounced},
		{OpAsyncBounce, DeadLetter, Bounced},
	}
	var got []exit
	for _, r := range Rules() {
		for _, f := range r.From {
			if f.Final() {
				got = append(got, exit{r.Op, f, r.To})
			}
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("transitions out of final states:\n got %v\nwant %v", got, want)
	}
}

func TestTableCoversEveryState(t *testing.T) {
	for _, s := range AllStates {
		reached := false
		for _, r := range Rules() {
			reached = reached || r.To == s
			if !r.To.Valid() || slices.ContainsFunc(r.From, func(f State) bool { return !f.Valid() }) {
				t.Fatalf("rule with an unknown state: %+v", r)
			}
		}
		if !reached {
			t.Errorf("no rule leads to %s", s)
		}
		leaves := slices.ContainsFunc(Ops(), func(op Op) bool { return slices.Contains(OpFrom(op), s) })
		if !s.Final() && !leaves {
			t.Errorf("pending state %s has no way out", s)
		}
		if s.Final() == slices.Contains(PendingStates, s) {
			t.Errorf("%s: Final() and PendingStates disagree", s)
		}
	}
	if got := SchedulerStates(); !slices.Equal(got, []State{Scheduled, Queued, Sending, Deferred}) {
		t.Errorf("SchedulerStates = %v", got)
	}
	if got := SQLList([]State{Queued, DeadLetter}); got != "'queued','dead_letter'" {
		t.Errorf("SQLList = %s", got)
	}
}

func TestPrepareTransition(t *testing.T) {
	spec := TransitionSpec{Op: OpHold}
	if err := PrepareTransition(&spec); err != nil {
		t.Fatal(err)
	}
	if spec.To != Held || spec.Event != EventHeld || !slices.Equal(spec.From, []State{Scheduled, Queued, Deferred}) {
		t.Fatalf("filled spec: %+v", spec)
	}
	for _, bad := range []TransitionSpec{
		{},                                 // no op
		{Op: "teleport"},                   // unknown op
		{Op: OpLease},                      // has its own method
		{Op: OpHold, To: Cancelled},        // not the op's target
		{Op: OpHold, From: []State{Held}},  // not a source for the op
		{Op: OpPurge, From: []State{Held}}, // only dead letters are purged
	} {
		if err := PrepareTransition(&bad); !errors.Is(err, ErrRefused) {
			t.Errorf("%+v: %v, want ErrRefused", bad, err)
		}
	}
}
