package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

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
