package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/store/storetest"
)

// TestLateIndexFindsMergedAndUnmerged: deliveries are found by recipient
// and by domain (listings, a recipient's events, events by domain, an
// operator's transition by domain) whether their entries are merged or
// recent,
// and the writer merges once lateMergeRows are recent, or when idle; the
// lookups stay whole across a restart and a merge, and pruning events
// takes their entries along.
func TestLateIndexFindsMergedAndUnmerged(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	s, err := Open(path, withLate(10, time.Hour)) // no idle merge in this test
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// 25 messages to a@x.test, b@y.test and c@z.test in turn, one write
	// each: two merges of 10 run after the 10th and the 20th, 5 stay behind.
	rcpts := []string{"a@x.test", "b@y.test", "c@z.test"}
	for i := range 25 {
		nm := storetest.NewTestMessage(fmt.Sprintf("m%03d", i), rcpts[i%3])
		if err := s.InsertMessages(ctx, []*store.NewMessage{nm}); err != nil {
			t.Fatal(err)
		}
	}
	// merged and recent entries of the recipients' late index
	levels := func(s *Store) [2]int {
		var n [2]int
		if err := s.r.QueryRow(`SELECT (SELECT count(*) FROM deliveries_by_rcpt), (SELECT count(*) FROM deliveries_by_rcpt_recent)`).Scan(&n[0], &n[1]); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := levels(s); n != [2]int{20, 5} {
		t.Fatalf("late index after 25 deliveries with merges of 10: %v merged and recent, want [20 5]", n)
	}
	want := map[string]int{"a@x.test": 9, "b@y.test": 8, "c@z.test": 8}
	check := func(s *Store, when string) {
		t.Helper()
		for addr, n := range want {
			ds, err := s.ListDeliveries(ctx, store.DeliveryFilter{Recipient: addr})
			if err != nil || len(ds) != n {
				t.Fatalf("%s: deliveries to %s: %d %v, want %d", when, addr, len(ds), err, n)
			}
			for i, d := range ds {
				if d.Recipient != addr || i > 0 && d.ID <= ds[i-1].ID {
					t.Fatalf("%s: deliveries to %s: %+v", when, addr, ds)
				}
			}
			dom := addr[2:]
			if ds, err := s.ListDeliveries(ctx, store.DeliveryFilter{Domain: dom}); err != nil || len(ds) != n {
				t.Fatalf("%s: deliveries to %s: %d %v, want %d", when, dom, len(ds), err, n)
			}
			if evs, err := s.Events(ctx, store.EventFilter{Recipient: addr}); err != nil || len(evs) != n {
				t.Fatalf("%s: events of %s: %d %v, want %d", when, addr, len(evs), err, n)
			}
			// Events by domain, in pages of 2 both ways: IDs in order,
			// none twice, none missed, and the count.
			for _, desc := range []bool{false, true} {
				var got []int64
				f := store.EventFilter{Domain: dom, Limit: 2, Desc: desc}
				for {
					evs, err := s.Events(ctx, f)
					if err != nil {
						t.Fatal(err)
					}
					for _, e := range evs {
						if e.Domain != dom || len(got) > 0 && (e.ID > got[len(got)-1]) == desc {
							t.Fatalf("%s: events of %s (desc %v): %+v after %v", when, dom, desc, e, got)
						}
						got = append(got, e.ID)
					}
					if len(evs) < 2 {
						break
					}
					if desc {
						f.BeforeID = evs[len(evs)-1].ID
					} else {
						f.AfterID = evs[len(evs)-1].ID
					}
				}
				if len(got) != n {
					t.Fatalf("%s: events of %s (desc %v): %v, want %d", when, dom, desc, got, n)
				}
			}
			if c, err := s.CountEvents(ctx, store.EventFilter{Domain: dom, Type: "queued"}, 100); err != nil || c != n {
				t.Fatalf("%s: count of queued events of %s: %d %v, want %d", when, dom, c, err, n)
			}
		}
	}
	check(s, "before the restart")
	s.Close()

	s, err = Open(path, withLate(10, 50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n := levels(s); n != [2]int{20, 5} {
		t.Fatalf("late index after a restart: %v, want [20 5]", n)
	}
	check(s, "after the restart")
	// Idle, the writer merges the rest.
	for deadline := time.Now().Add(5 * time.Second); levels(s) != [2]int{25, 0}; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("an idle writer left the late index at %v, want [25 0]", levels(s))
		}
	}
	check(s, "after the idle merge")
	// An operator's hold by domain takes merged and unmerged deliveries.
	held, err := s.Transition(ctx, store.TransitionSpec{Domain: "X.test", Op: store.OpHold, Now: time.Now()})
	if err != nil || len(held) != 9 {
		t.Fatalf("hold x.test: %d %v, want 9", len(held), err)
	}
	for _, d := range held {
		if d.Domain != "x.test" {
			t.Fatalf("hold x.test took %+v", d)
		}
	}
	// The held events, written one at a time, are found by domain too.
	if evs, err := s.Events(ctx, store.EventFilter{Domain: "x.test", Type: "held"}); err != nil || len(evs) != 9 {
		t.Fatalf("held events of x.test: %d %v, want 9", len(evs), err)
	}
	var n int
	if err := s.r.QueryRow(`SELECT (SELECT count(*) FROM deliveries_by_rcpt) + (SELECT count(*) FROM deliveries_by_domain)`).Scan(&n); err != nil || n != 50 {
		t.Fatalf("late index entries: %d %v, want 50 (25 in each)", n, err)
	}
	// Pruning every event takes the pruned events' late entries along,
	// merged (the queued events) and recent (the held ones).
	for {
		n, err := s.PruneEvents(ctx, time.Now().Add(time.Hour), 7)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	if evs, err := s.Events(ctx, store.EventFilter{}); err != nil || len(evs) != 0 {
		t.Fatalf("events after pruning them all: %+v %v", evs, err)
	}
	if err := s.r.QueryRow(`SELECT (SELECT count(*) FROM events_by_domain) + (SELECT count(*) FROM events_by_domain_recent)`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("late entries of pruned events: %d %v", n, err)
	}
}

// TestLateIndexDirectWhileSmall: while a table's ids are below the
// direct bound, a transaction's entries go straight into the large
// tables; past it, into the recent ones; lookups find both.
func TestLateIndexDirectWhileSmall(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "db"), withLate(1000, time.Hour), func(s *Store) { s.late.direct = 11 })
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	for i := range 25 { // one write each: delivery ids 1 to 25
		nm := storetest.NewTestMessage(fmt.Sprintf("m%03d", i), "a@x.test")
		if err := s.InsertMessages(ctx, []*store.NewMessage{nm}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		table, id string
		want      [2]int // ids below 11 in the large table, the rest recent
	}{
		{"deliveries_by_rcpt", "id", [2]int{10, 15}},
		{"deliveries_by_domain", "id", [2]int{10, 15}},
		{"events_by_domain", "eid", [2]int{10, -1}},
	} {
		var n [2]int
		var maxLarge int64
		if err := s.r.QueryRow(`SELECT (SELECT count(*) FROM `+tc.table+`), (SELECT count(*) FROM `+tc.table+`_recent),
			(SELECT coalesce(max(`+tc.id+`), 0) FROM `+tc.table+`)`).Scan(&n[0], &n[1], &maxLarge); err != nil {
			t.Fatal(err)
		}
		if tc.want[1] < 0 { // events: as many as the writes made, past id 10
			tc.want[1] = n[1]
			if n[1] == 0 {
				t.Errorf("%s: nothing recent past the direct bound", tc.table)
			}
		}
		if n != tc.want || maxLarge >= 11 {
			t.Errorf("%s: %v in the large and recent tables (largest id in the large one %d), want %v below id 11", tc.table, n, maxLarge, tc.want)
		}
	}
	if ds, err := s.ListDeliveries(ctx, store.DeliveryFilter{Recipient: "a@x.test"}); err != nil || len(ds) != 25 {
		t.Fatalf("deliveries to a@x.test: %d %v, want 25", len(ds), err)
	}
	if ds, err := s.ListDeliveries(ctx, store.DeliveryFilter{Domain: "x.test"}); err != nil || len(ds) != 25 {
		t.Fatalf("deliveries to x.test: %d %v, want 25", len(ds), err)
	}
	if c, err := s.CountEvents(ctx, store.EventFilter{Domain: "x.test", Type: "queued"}, 100); err != nil || c != 25 {
		t.Fatalf("queued events of x.test: %d %v, want 25", c, err)
	}
}
