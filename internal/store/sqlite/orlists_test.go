package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/store"
)

// ephemeralTables lists the opcodes of q's program that build a
// temporary B-tree at each execution.
func ephemeralTables(t *testing.T, db *sql.DB, q string) []string {
	t.Helper()
	rows, err := db.Query("EXPLAIN "+q, make([]any, strings.Count(q, "?"))...)
	if err != nil {
		t.Fatalf("explain %.60s: %v", q, err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var found []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		op, _ := vals[1].(string)
		if op == "OpenEphemeral" || op == "OpenAutoindex" {
			found = append(found, op)
		}
	}
	return found
}

// hotWrites are the statements the writer runs for every message, lease
// and outcome.
func hotWrites() map[string]string {
	return map[string]string{
		"insert message":       insMessageSQL,
		"insert 1 delivery":    multiRowSQL(insDeliveryHead, insDeliveryCols, 1),
		"insert 64 deliveries": multiRowSQL(insDeliveryHead, insDeliveryCols, 64),
		"insert 16 events":     multiRowSQL(insEventHead, eventCols, 16),
		"insert 4 attempts":    multiRowSQL(insAttemptHead, insAttemptCols, 4),
		"lease":                leaseSQL,
		"outcome":              outcomeSQL,
		"2 outcomes":           outcomeManySQL(2),
		"64 outcomes":          outcomeManySQL(64),
	}
}

// ephemeralNeeded is how many temporary tables a hot write cannot do
// without: RETURNING collects its rows in one, and UPDATE ... FROM a
// VALUES list materializes the list and the join. Everything else built
// one at each execution for an IN list of constants (in the statement, a
// CHECK constraint or a partial index's WHERE) before orListsMigration.
var ephemeralNeeded = map[string]int{"outcome": 1, "2 outcomes": 3, "64 outcomes": 3}

func checkHotWrites(t *testing.T, db *sql.DB) {
	t.Helper()
	for name, q := range hotWrites() {
		if e := ephemeralTables(t, db, q); len(e) > ephemeralNeeded[name] {
			t.Errorf("%s builds %d temporary tables a run, want %d: %.120s", name, len(e), ephemeralNeeded[name], q)
		}
	}
}

// TestHotWritesBuildNoEphemeralTables: the statements the writer runs per
// message, lease and outcome build no temporary table they could do
// without.
func TestHotWritesBuildNoEphemeralTables(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "posthorn.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	checkHotWrites(t, s.w)
}

// TestORListsMigration: a database of the version before is rewritten in
// place: its CHECK constraints still refuse what they refused, the
// rebuilt queue index holds the pending rows, and the writer's connection
// (reopened after migrating) runs the new definitions.
func TestORListsMigration(t *testing.T) {
	path := filepath.Join(t.TempDir(), "posthorn.db")
	old := openAt(t, path, len(migrations)-1)
	if e := ephemeralTables(t, old, leaseSQL); len(e) == 0 {
		t.Fatal("before the migration the lease built no temporary table: the test no longer shows the change")
	}
	exec(t, old, `INSERT INTO messages (id, tenant_id, sender, lane, source, size, created_at, body) VALUES ('m1','t1','s@x.test','normal','smtp',3,1,x'6869')`)
	for i, st := range []string{"queued", "deferred", "delivered", "held"} {
		exec(t, old, `INSERT INTO deliveries (id, message_id, tenant_id, recipient, domain, lane, state, created_at, next_attempt_at, expires_at, updated_at)
			VALUES (?, 'm1', 't1', ?, 'x.test', 'normal', ?, 1, ?, 9999999999999, 3)`, 10+i, st+"@x.test", st, 1000+i)
	}
	old.Close()

	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var def, ix string
	if err := s.w.QueryRow(`SELECT sql FROM sqlite_schema WHERE name='deliveries'`).Scan(&def); err != nil {
		t.Fatal(err)
	}
	if err := s.w.QueryRow(`SELECT sql FROM sqlite_schema WHERE name='deliveries_queue'`).Scan(&ix); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(def, " IN (") || !strings.Contains(def, "CHECK (state='scheduled' OR ") || !strings.Contains(def, "CHECK (lane='high' OR lane='normal' OR lane='low')") {
		t.Fatalf("deliveries after the migration:\n%s", def)
	}
	if !strings.HasSuffix(ix, "WHERE "+queueIndexCond) {
		t.Fatalf("deliveries_queue after the migration:\n%s", ix)
	}
	checkHotWrites(t, s.w) // the writer's connection parsed the new definitions
	testChecks(t, s.w)
	due, err := s.PendingDue(context.Background(), store.DueCursor{}, time.UnixMilli(5000), 10)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, d := range due {
		ids = append(ids, d.ID)
	}
	if len(ids) != 2 || ids[0] != 10 || ids[1] != 11 {
		t.Fatalf("due after the migration: %v, want the queued and deferred deliveries 10 and 11", ids)
	}
	shape, err := s.QueueShape(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range shape {
		n += r.Count
	}
	if n != 3 {
		t.Fatalf("queue shape after the migration counts %d deliveries (%+v), want 3 (queued, deferred, held)", n, shape)
	}
}
