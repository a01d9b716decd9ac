package events

import (
	"testing"

	"github.com/posthorn/posthorn/internal/store"
)

func TestBroadcasterFiltersAndCutsLaggards(t *testing.T) {
	b := NewBroadcaster()
	all := b.Subscribe(nil)
	t2 := b.Subscribe(func(e *store.Event) bool { return e.TenantID == "t2" })
	b.Publish([]store.Event{{ID: 1, TenantID: "t1"}, {ID: 2, TenantID: "t2"}})
	if got := <-all.C; len(got) != 2 {
		t.Fatalf("all: %+v", got)
	}
	if got := <-t2.C; len(got) != 1 || got[0].ID != 2 {
		t.Fatalf("t2: %+v", got)
	}
	// all stops reading: once its buffer is full it is cut loose, and t2
	// (which matches nothing) is not.
	for i := 0; i <= subBuffer; i++ {
		b.Publish([]store.Event{{ID: int64(3 + i), TenantID: "t1"}})
	}
	n := 0
	for range all.C {
		n++
	}
	if n != subBuffer || !all.Lagged() {
		t.Fatalf("laggard got %d batches, lagged=%v", n, all.Lagged())
	}
	b.Close()
	if _, ok := <-t2.C; ok || t2.Lagged() {
		t.Fatal("Close did not end t2 (or called it lagged)")
	}
	if _, ok := <-b.Subscribe(nil).C; ok {
		t.Fatal("subscribed after Close")
	}
}
