package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/store/storetest"
)

// openAt creates a database at schema version n, as an older posthorn
// left it.
func openAt(t *testing.T, path string, n int) *sql.DB {
	t.Helper()
	db := rawOpen(t, path)
	if err := migrateWith(db, migrations[:n]); err != nil {
		t.Fatal(err)
	}
	return db
}

// rawOpen opens the database without migrating it.
func rawOpen(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	return db
}

func schemaObjects(t *testing.T, db *sql.DB, table string) []string {
	t.Helper()
	rows, err := db.Query(`SELECT type || ' ' || name FROM sqlite_master WHERE tbl_name=? AND type IN ('index','trigger') ORDER BY 1`, table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

func version(t *testing.T, db *sql.DB) int {
	t.Helper()
	var v int
	if err := db.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// Migration 3 rebuilds deliveries with CHECK constraints: rows, ids,
// indexes and triggers of a version 2 database survive, and the database
// then refuses unknown states and lanes.
func TestMigrationAddsDeliveryChecks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "posthorn.db")
	old := openAt(t, path, 2)
	// Rows written by the version 2 code, through the old schema.
	exec(t, old, `INSERT INTO messages (id, tenant_id, sender, lane, source, size, created_at, body) VALUES ('m1','t1','s@x.test','low','smtp',3,1,x'6869')`)
	for i, st := range []string{"queued", "dead_letter", "delivered"} {
		exec(t, old, `INSERT INTO deliveries (id, message_id, tenant_id, recipient, domain, lane, state, created_at, expires_at, updated_at, last_code)
			VALUES (?, 'm1', 't1', ?, 'x.test', 'low', ?, 1, 2, 3, 421)`, 10+i, st+"@x.test", st)
	}
	// A trigger someone added: it must survive the rebuild.
	exec(t, old, `CREATE TRIGGER deliveries_touch AFTER UPDATE OF state ON deliveries BEGIN
		UPDATE deliveries SET last_text = 'touched' WHERE id = NEW.id; END`)
	before := schemaObjects(t, old, "deliveries")
	old.Close()

	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if v := version(t, s.w); v != len(migrations) {
		t.Fatalf("schema version %d, want %d", v, len(migrations))
	}
	// Later migrations may add indexes of their own (4: deliveries_shape)
	// or replace them (deliveries_recipient by deliveries_rcpt: rcptKeys;
	// deliveries_pending and _shape by deliveries_queue; deliveries_rcpt
	// and deliveries_domain by late indexes, tables of their own).
	later := func(o string) bool {
		return slices.Contains([]string{"index deliveries_shape", "index deliveries_rcpt", "index deliveries_recipient",
			"index deliveries_queue", "index deliveries_pending", "index deliveries_domain"}, o)
	}
	before = slices.DeleteFunc(before, later)
	if after := slices.DeleteFunc(schemaObjects(t, s.w, "deliveries"), later); !slices.Equal(after, before) {
		t.Fatalf("indexes and triggers after the rebuild:\n%v\nbefore:\n%v", after, before)
	}
	ds, err := s.ListDeliveries(context.Background(), store.DeliveryFilter{})
	if err != nil || len(ds) != 3 {
		t.Fatalf("deliveries after migration: %+v %v", ds, err)
	}
	if ds[1].ID != 11 || ds[1].State != store.DeadLetter || ds[1].Lane != store.LaneLow || ds[1].LastReply.Code != 421 || ds[1].Sender != "s@x.test" {
		t.Fatalf("row changed by the migration: %+v", ds[1])
	}
	// The trigger works on the new table.
	if _, err := s.Transition(context.Background(), store.TransitionSpec{Op: store.OpRequeue, DeliveryIDs: []int64{11}, Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if ds, _ := s.MessageDeliveries(context.Background(), "m1"); ds[1].LastReply.Text != "touched" {
		t.Fatalf("trigger lost: %+v", ds[1])
	}
	// New ids continue after the old ones.
	nm := storetest.NewTestMessage("m2", "a@one.test")
	if err := s.InsertMessages(context.Background(), []*store.NewMessage{nm}); err != nil || nm.Deliveries[0].ID != 13 {
		t.Fatalf("insert after migration: id %d, %v", nm.Deliveries[0].ID, err)
	}
	testChecks(t, s.w)
}

// A version 2 database with a row the constraints refuse is left as it
// was, and Open says why.
func TestMigrationRefusesBadRows(t *testing.T) {
	path := filepath.Join(t.TempDir(), "posthorn.db")
	old := openAt(t, path, 2)
	exec(t, old, `INSERT INTO deliveries (message_id, tenant_id, recipient, domain, lane, state, created_at, expires_at, updated_at)
		VALUES ('m1', 't1', 'a@x.test', 'x.test', 'normal', 'limbo', 1, 2, 3)`)
	old.Close()
	if s, err := Open(path); err == nil || !strings.Contains(err.Error(), "1 rows of deliveries break") {
		if s != nil {
			s.Close()
		}
		t.Fatalf("Open with a bad row: %v", err)
	}
	db := rawOpen(t, path)
	defer db.Close()
	var state string
	if err := db.QueryRow(`SELECT state FROM deliveries`).Scan(&state); err != nil || state != "limbo" || version(t, db) != 2 {
		t.Fatalf("database after the refused migration: state %q, version %d, %v", state, version(t, db), err)
	}
}

// The latest schema accepts exactly the store's states and lanes.
func TestSchemaChecksMatchStore(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "posthorn.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	testChecks(t, s.w)
}

func testChecks(t *testing.T, db *sql.DB) {
	t.Helper()
	ins := func(state, lane string) error {
		_, err := db.Exec(`INSERT INTO deliveries (message_id, tenant_id, recipient, domain, lane, state, created_at, expires_at, updated_at)
			VALUES ('check', 't1', 'a@x.test', 'x.test', ?, ?, 1, 2, 3)`, lane, state)
		return err
	}
	for _, st := range store.AllStates {
		for _, lane := range []store.Lane{store.LaneHigh, store.LaneNormal, store.LaneLow} {
			if err := ins(string(st), string(lane)); err != nil {
				t.Fatalf("schema refuses state %s lane %s: %v", st, lane, err)
			}
		}
	}
	for _, bad := range [][2]string{{"limbo", "normal"}, {"queued", "urgent"}, {"", "normal"}, {"Queued", "normal"}} {
		if err := ins(bad[0], bad[1]); err == nil || !strings.Contains(err.Error(), "CHECK") {
			t.Fatalf("schema accepts state %q lane %q: %v", bad[0], bad[1], err)
		}
	}
	exec(t, db, `DELETE FROM deliveries WHERE message_id='check'`)
}

func exec(t *testing.T, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%.60s: %v", q, err)
	}
}

// TestMigrationFoldsSuppressions: address entries stored before the
// folded key column (any case, non-ASCII too) are found by their folded
// form after the upgrade, as one key range.
func TestMigrationFoldsSuppressions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "posthorn.db")
	db := openAt(t, path, migrationIndex(t, suppressionsFolded))
	for _, v := range []string{"Victim@Y.test", "victim@y.test", "ÄNNE@x.test", "other@y.test"} {
		if _, err := db.Exec(`INSERT INTO suppressions (tenant_id, kind, value, reason, created_at) VALUES ('t1','address',?,'manual',1)`, v); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	for folded, want := range map[string][]string{
		"victim@y.test": {"Victim@Y.test", "victim@y.test"},
		"änne@x.test":   {"ÄNNE@x.test"},
		"nobody@y.test": nil,
	} {
		got, err := s.AddressSuppressions(ctx, "t1", folded)
		if err != nil {
			t.Fatal(err)
		}
		var vals []string
		for _, x := range got {
			vals = append(vals, x.Value)
		}
		slices.Sort(vals)
		if !slices.Equal(vals, want) {
			t.Errorf("AddressSuppressions(%s) = %q, want %q", folded, vals, want)
		}
	}
	var plan string
	if err := s.r.QueryRow(`EXPLAIN QUERY PLAN SELECT value FROM suppressions WHERE tenant_id = 't1' AND kind = 'address' AND folded = 'x'`).Scan(new(int), new(int), new(int), &plan); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(plan, "USING PRIMARY KEY (tenant_id=? AND kind=? AND folded=?)") {
		t.Errorf("lookup is not a key range: %s", plan)
	}
	// The rest of the table's life: replace, delete in the new key.
	x := store.Suppression{TenantID: "t1", Kind: "address", Value: "Victim@Y.test", Reason: "hard_bounce", CreatedAt: time.Now()}
	if err := s.PutSuppressions(ctx, []store.Suppression{x}); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.DeleteSuppression(ctx, "t1", "address", "Victim@Y.test"); !ok || err != nil {
		t.Fatalf("delete: %v %v", ok, err)
	}
	if got, _ := s.AddressSuppressions(ctx, "t1", "victim@y.test"); len(got) != 1 || got[0].Value != "victim@y.test" {
		t.Errorf("after replace and delete: %+v", got)
	}
}

// migrationIndex is how many migrations run before m (a named migration
// function: the closures of sqlMigration share one code pointer).
func migrationIndex(t *testing.T, m migration) int {
	t.Helper()
	for i, x := range migrations {
		if reflect.ValueOf(x).Pointer() == reflect.ValueOf(m).Pointer() {
			return i
		}
	}
	t.Fatal("migration not in the list")
	return 0
}

// TestPutSuppressionsOrder: a batch is written in key order, yet of two
// writes of one entry in a batch the later still wins.
func TestPutSuppressionsOrder(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "posthorn.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	now := time.Now()
	batch := []store.Suppression{
		{TenantID: "t1", Kind: "address", Value: "z@x.test", Reason: "manual", CreatedAt: now},
		{TenantID: "t1", Kind: "address", Value: "a@x.test", Reason: "manual", CreatedAt: now},
		{TenantID: "t1", Kind: "address", Value: "z@x.test", Reason: "hard_bounce", CreatedAt: now},
		{TenantID: "t1", Kind: "address", Value: "A@x.test", Reason: "complaint", CreatedAt: now},
	}
	if err := s.PutSuppressions(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if batch[0].Value != "z@x.test" {
		t.Error("the caller's batch was reordered")
	}
	all, err := s.ListSuppressions(ctx, "t1")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, x := range all {
		got = append(got, x.Value+" "+x.Reason)
	}
	if want := []string{"A@x.test complaint", "a@x.test manual", "z@x.test hard_bounce"}; !slices.Equal(got, want) {
		t.Errorf("stored %q, want %q", got, want)
	}
}
