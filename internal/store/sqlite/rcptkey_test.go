package sqlite

import (
	"context"
	"hash/fnv"
	"path/filepath"
	"slices"
	"testing"

	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/store/storetest"
)

// TestMigrationFillsRecipientKeys: a database of the schema before
// rcpt_key gets the key of every delivery and event that has a recipient
// (folded: Unicode upper case included), the indexes on the address are
// replaced by the key's, and lookups by recipient find the old rows.
func TestMigrationFillsRecipientKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "posthorn.db")
	old := openAt(t, path, rcptKeysMigration)
	if _, err := old.Exec(`SELECT rcpt_key FROM deliveries`); err == nil {
		t.Fatal("rcptKeysMigration does not name the migration adding rcpt_key")
	}
	exec(t, old, `INSERT INTO messages (id, tenant_id, sender, lane, source, size, created_at, body) VALUES ('m1', 't1', 's@x.test', 'normal', 'api', 1, 1, x'')`)
	rcpts := []string{"a@x.test", "Ünï@X.Test", "b@y.test"}
	for i, r := range rcpts {
		exec(t, old, `INSERT INTO deliveries (message_id, tenant_id, recipient, domain, lane, state, created_at, expires_at, updated_at)
			VALUES ('m1', 't1', ?, 'x.test', 'normal', 'delivered', 1, 2, 3)`, r)
		exec(t, old, `INSERT INTO events (at, type, tenant_id, message_id, delivery_id, recipient) VALUES (?, 'delivered', 't1', 'm1', ?, ?)`,
			i+1, i+1, r)
	}
	exec(t, old, `INSERT INTO events (at, type, tenant_id, message_id) VALUES (9, 'alert_fired', 't1', '')`)
	// An event with a recipient and no delivery (RecordEvent allows it).
	exec(t, old, `INSERT INTO events (at, type, tenant_id, message_id, recipient) VALUES (10, 'complained', 't1', 'm1', 'Ünï@X.Test')`)
	old.Close()

	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, table := range []string{"deliveries", "events"} {
		rows, err := s.r.Query(`SELECT recipient, rcpt_key, ` + map[string]string{"deliveries": "id", "events": "delivery_id"}[table] + ` FROM ` + table)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for rows.Next() {
			var r string
			var key any
			var delivery int64
			if err := rows.Scan(&r, &key, &delivery); err != nil {
				t.Fatal(err)
			}
			want := rcptKey(r)
			if table == "events" && delivery != 0 {
				want = nil // found through its delivery
			}
			if key != want {
				t.Errorf("%s: recipient %q (delivery %d) has key %v, want %v", table, r, delivery, key, want)
			}
			n++
		}
		rows.Close()
		if n < len(rcpts) {
			t.Fatalf("%s: %d rows after the migration", table, n)
		}
	}
	if rcptKey("Ünï@X.Test") != rcptKey("ünï@x.test") {
		t.Fatal("the key does not fold the address")
	}
	for _, ix := range []string{"index deliveries_recipient", "index events_recipient"} {
		if slices.Contains(append(schemaObjects(t, s.w, "deliveries"), schemaObjects(t, s.w, "events")...), ix) {
			t.Errorf("%s is still there", ix)
		}
	}
	ctx := context.Background()
	for _, r := range rcpts {
		ds, err := s.ListDeliveries(ctx, store.DeliveryFilter{TenantID: "t1", Recipient: r})
		if err != nil || len(ds) != 1 || ds[0].Recipient != r {
			t.Errorf("deliveries of %q after the migration: %+v %v", r, ds, err)
		}
		evs, err := s.Events(ctx, store.EventFilter{TenantID: "t1", Recipient: r})
		want := 1
		if r == "Ünï@X.Test" {
			want = 2 // its delivery's and the one without a delivery
		}
		if err != nil || len(evs) != want || evs[0].Recipient != r {
			t.Errorf("events of %q after the migration: %+v %v", r, evs, err)
		}
	}
}

// TestRecipientLookupIsExact: the key only narrows a lookup; rows of
// another spelling of the address, or of another address whose key is
// the same (a hash collision, forced here), are not returned.
func TestRecipientLookupIsExact(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "posthorn.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	nm := storetest.NewTestMessage("m1", "a@x.test", "A@x.test", "other@x.test")
	if err := s.InsertMessages(ctx, []*store.NewMessage{nm}); err != nil {
		t.Fatal(err)
	}
	// other@x.test collides with a@x.test.
	exec(t, s.w, `UPDATE deliveries SET rcpt_key = ? WHERE recipient = 'other@x.test'`, rcptKey("a@x.test"))
	exec(t, s.w, `UPDATE events SET rcpt_key = ? WHERE recipient = 'other@x.test'`, rcptKey("a@x.test"))
	// All three rows now share a key; each lookup returns its own.
	for _, r := range []string{"a@x.test", "A@x.test"} {
		ds, err := s.ListDeliveries(ctx, store.DeliveryFilter{Recipient: r})
		if err != nil || len(ds) != 1 || ds[0].Recipient != r {
			t.Errorf("deliveries of %q: %+v %v", r, ds, err)
		}
		evs, err := s.Events(ctx, store.EventFilter{Recipient: r})
		if err != nil || len(evs) != 1 || evs[0].Recipient != r {
			t.Errorf("events of %q: %+v %v", r, evs, err)
		}
	}
}

// The inline hash is FNV-1a of the folded address.
func TestRcptKeyIsFNV1a(t *testing.T) {
	for _, addr := range []string{"a@x.test", "Ünï@X.Test", "x"} {
		h := fnv.New64a()
		h.Write([]byte(store.FoldAddress(addr)))
		if got := rcptKey(addr); got != int64(h.Sum64()) {
			t.Errorf("rcptKey(%q) = %v, want %v", addr, got, int64(h.Sum64()))
		}
	}
	if rcptKey("") != nil {
		t.Error("an empty address has a key")
	}
}
