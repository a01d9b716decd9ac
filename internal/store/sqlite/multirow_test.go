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

// TestMultiRowInsertIDs: deliveries written with multi-row INSERTs get
// the IDs of their own rows, and each acceptance event names its own
// delivery, across chunk sizes and messages of one write.
func TestMultiRowInsertIDs(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "ids.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	var msgs []*store.NewMessage
	for i, n := range []int{1, 101, 3, 64} {
		var to []string
		for k := 0; k < n; k++ {
			to = append(to, fmt.Sprintf("u%d-%d@d%d.test", i, k, k%5))
		}
		msgs = append(msgs, storetest.NewTestMessage(fmt.Sprintf("m%d", i), to...))
	}
	// A row deleted at the end of the table must not shift the IDs.
	if err := s.InsertMessages(ctx, []*store.NewMessage{storetest.NewTestMessage("m-old", "old@d.test")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.Exec(`DELETE FROM deliveries`); err != nil {
		t.Fatal(err)
	}
	if err := s.InsertMessages(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	seen := map[int64]bool{}
	for _, nm := range msgs {
		for _, d := range nm.Deliveries {
			if seen[d.ID] {
				t.Fatalf("delivery ID %d given twice", d.ID)
			}
			seen[d.ID] = true
			var rcpt, msg string
			if err := s.r.QueryRow(`SELECT recipient, message_id FROM deliveries WHERE id = ?`, d.ID).Scan(&rcpt, &msg); err != nil {
				t.Fatalf("delivery %d (%s): %v", d.ID, d.Recipient, err)
			}
			if rcpt != d.Recipient || msg != nm.Message.ID || d.MessageID != msg {
				t.Fatalf("delivery %d is %s of %s in the table, %s of %s in memory", d.ID, rcpt, msg, d.Recipient, d.MessageID)
			}
			var n int
			if err := s.r.QueryRow(`SELECT count(*) FROM events WHERE delivery_id = ? AND recipient = ? AND message_id = ? AND type = ?`,
				d.ID, d.Recipient, msg, store.AcceptEvent(d.State)).Scan(&n); err != nil || n != 1 {
				t.Fatalf("acceptance events of delivery %d (%s): %d %v", d.ID, d.Recipient, n, err)
			}
		}
	}
	if len(seen) != 169 {
		t.Fatalf("%d deliveries, want 169", len(seen))
	}
}

// TestMultiRowOutcomes: the attempts and events of many outcomes recorded
// at once (multi-row INSERTs) each belong to their own delivery, and an
// outcome for a delivery no longer sending gets its event in order.
func TestMultiRowOutcomes(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "outs.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	var to []string
	for k := 0; k < 70; k++ {
		to = append(to, fmt.Sprintf("u%d@d%d.test", k, k%3))
	}
	nm := storetest.NewTestMessage("m1", to...)
	if err := s.InsertMessages(ctx, []*store.NewMessage{nm}); err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, d := range nm.Deliveries {
		ids = append(ids, d.ID)
	}
	now := time.Now()
	// The last one is not leased: its outcome is ignored.
	if _, err := s.Lease(ctx, ids[:69], now, now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	var outs []store.Outcome
	for i, id := range ids {
		st, ev := store.Delivered, store.EventDelivered
		if i%2 == 1 {
			st, ev = store.Deferred, store.EventDeferred
		}
		outs = append(outs, store.Outcome{DeliveryID: id, State: st, Event: ev, Class: string(ev), StartedAt: now,
			MX: fmt.Sprintf("mx%d", i), NextAt: now.Add(time.Hour)})
	}
	if err := s.RecordOutcomes(ctx, outs); err != nil {
		t.Fatal(err)
	}
	for i, d := range nm.Deliveries {
		want := outs[i].Event
		var attempts int
		if err := s.r.QueryRow(`SELECT count(*) FROM attempts WHERE delivery_id = ? AND mx = ?`, d.ID, outs[i].MX).Scan(&attempts); err != nil {
			t.Fatal(err)
		}
		if i == 69 {
			want = store.EventOutcomeIgnored
			if attempts != 0 {
				t.Fatalf("ignored outcome of %d has an attempt", d.ID)
			}
		} else if attempts != 1 {
			t.Fatalf("delivery %d (%s): %d attempts with its MX, want 1", d.ID, d.Recipient, attempts)
		}
		var n int
		if err := s.r.QueryRow(`SELECT count(*) FROM events WHERE delivery_id = ? AND recipient = ? AND type = ? AND mx = ?`,
			d.ID, d.Recipient, want, outs[i].MX).Scan(&n); err != nil || n != 1 {
			t.Fatalf("delivery %d (%s): %d %s events, want 1 (%v)", d.ID, d.Recipient, n, want, err)
		}
	}
	// Events keep the order of the outcomes.
	rows, err := s.r.Query(`SELECT delivery_id FROM events WHERE type != ? ORDER BY id`, store.AcceptEvent(store.Queued))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []int64
	for rows.Next() {
		var id int64
		rows.Scan(&id)
		got = append(got, id)
	}
	if fmt.Sprint(got) != fmt.Sprint(ids) {
		t.Fatalf("outcome events in order %v, want %v", got, ids)
	}
}
