package events

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/store/sqlite"
)

// TestPrunerRemovesOldEventsInBatches ages data by writing events with
// old timestamps through the store, then runs one pass.
func TestPrunerRemovesOldEventsInBatches(t *testing.T) {
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "p.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	now := time.Now()
	for i := 0; i < 2500; i++ {
		at := now.Add(-40 * 24 * time.Hour)
		if i%10 == 9 {
			at = now.Add(-time.Hour) // recent ones are interleaved and stay
		}
		if err := st.RecordEvent(ctx, store.Event{At: at, Type: store.EventThrottle, TenantID: "t", MessageID: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	p := &Pruner{Store: st, EventsRetention: 30 * 24 * time.Hour, Batch: 100, Pause: time.Millisecond, Now: func() time.Time { return now }}
	evs, _, err := p.RunOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	left, _ := st.CountEvents(ctx, store.EventFilter{}, 10000)
	if evs != 2250 || left != 250 {
		t.Fatalf("pruned %d, left %d; want 2250 and 250", evs, left)
	}
}
