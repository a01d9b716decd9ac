package sqlite

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/store"
)

// TestEventQueriesUseAnIndex: every filter the activity log, the abuse
// guard and the alerts use walks an index, never the whole table (a scan
// of 50,000,000 events held up the start for minutes).
func TestEventQueriesUseAnIndex(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, f := range []store.EventFilter{
		{Type: "alert_fired", AfterID: 5},
		{TenantID: "t", Type: "delivered"},
		{TenantID: "t"},
		{MessageID: "m"},
		{Recipient: "a@b.test"},
		{TenantID: "t", Recipient: "a@b.test", Type: "soft_bounced", Since: time.Now(), Limit: 5}, // on-hold check
		{Domain: "b.test"},
	} {
		q, args := eventSelect("id", f)
		rows, err := s.r.Query("EXPLAIN QUERY PLAN "+q+" ORDER BY id LIMIT 10", args...)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		p := strings.Join(plan, "; ")
		if f.Recipient != "" {
			checkRecipientPlan(t, f, p) // through the recipient's deliveries
			continue
		}
		if f.Domain != "" {
			checkDomainPlan(t, f, p) // through the late index
			continue
		}
		if !strings.Contains(p, "USING INDEX") && !strings.Contains(p, "USING COVERING INDEX") || strings.Contains(p, "TEMP B-TREE") {
			t.Errorf("%+v: plan %q: not an index walk in ID order", f, p)
		}
	}
}

// TestRecipientQueriesUseTheKeyIndex: listings of one recipient's
// deliveries (the queue and message listings of the API, CLI and web UI)
// find them by rcpt_key through the late index and the unmerged tail
// (lateindex.go), as rowid lookups, never by a walk of the table.
func TestRecipientQueriesUseTheKeyIndex(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, f := range []store.DeliveryFilter{
		{Recipient: "a@b.test"},
		{TenantID: "t", Recipient: "a@b.test", Limit: 50},
		{TenantID: "t", Recipient: "a@b.test", Newest: true, BeforeID: 99, Limit: 50},
		{Recipient: "a@b.test", States: []store.State{store.Deferred, store.Queued}, Domain: "b.test", Limit: 1000},
		{TenantID: "t", Recipient: "a@b.test", Tag: "x", Since: time.Now(), Limit: 50},
	} {
		q, args := deliveryQuery(f)
		p := queryPlan(t, s, q, args...)
		if !strings.HasPrefix(p, "SEARCH d USING INTEGER PRIMARY KEY (rowid=?)") || !strings.Contains(p, lateRcptPlan) ||
			!strings.Contains(p, lateTailPlan) || strings.Contains(p, "SCAN d") {
			t.Errorf("%+v: plan %q does not look the recipient up by its key", f, p)
		}
	}
}

func queryPlan(t *testing.T, s *Store, q string, args ...any) string {
	t.Helper()
	rows, err := s.r.Query("EXPLAIN QUERY PLAN "+q, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	return strings.Join(plan, "; ")
}

// TestQueueIndexServesBoth: deliveries_queue serves what deliveries_pending
// and deliveries_shape served: the scheduler's due order per state (a
// range read in order, no sort), the listing of deliveries in flight, and
// the queue shape (observe_test.go); neither old index is left.
func TestQueueIndexServesBoth(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, st := range store.SchedulerStates() {
		p := queryPlan(t, s, pendingDueSQL(st), 1, 2, 3, 10)
		if !strings.Contains(p, "INDEX deliveries_queue (state=? AND ") || strings.Contains(p, "TEMP B-TREE") {
			t.Errorf("due %s: plan %q is not a range of deliveries_queue in order", st, p)
		}
	}
	q, args := deliveryQuery(store.DeliveryFilter{States: []store.State{store.Sending}, Limit: 10000})
	if p := queryPlan(t, s, q, args...); !strings.Contains(p, "INDEX deliveries_queue (state=?)") {
		t.Errorf("deliveries in flight: plan %q", p)
	}
	if p := queryPlan(t, s, `SELECT id FROM deliveries WHERE `+queueIndexCond+` AND state IN ('sending')`); !strings.Contains(p, "deliveries_queue") {
		t.Errorf("lease recovery: plan %q", p)
	}
	for _, ix := range []string{"index deliveries_pending", "index deliveries_shape"} {
		if slices.Contains(schemaObjects(t, s.w, "deliveries"), ix) {
			t.Errorf("%s is still there", ix)
		}
	}
}

// The plans of lookups in the two levels of the late index of
// recipients (lateindex.go).
const (
	lateRcptPlan = "SEARCH deliveries_by_rcpt USING PRIMARY KEY (rcpt_key=?)"
	lateTailPlan = "SEARCH deliveries_by_rcpt_recent USING PRIMARY KEY (rcpt_key=?)"
)

// TestPrunePrefetchSearchesEachIndex: the pruner's read-ahead looks each
// pruned event up in every index of events by a point search (it exists
// to bring exactly the pages the delete will touch into the cache), and
// an index of events it does not know fails the test: the delete would
// read that one's pages cold.
func TestPrunePrefetchSearchesEachIndex(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	p := queryPlan(t, s, prunePrefetch+`(SELECT id FROM (SELECT id, at FROM events ORDER BY id LIMIT ?) WHERE at < ? LIMIT ?)`, 200, 0, 50)
	var indexes []string
	for _, o := range schemaObjects(t, s.r, "events") { // migrate_test.go
		if name, ok := strings.CutPrefix(o, "index "); ok {
			indexes = append(indexes, name)
		}
	}
	if len(indexes) == 0 {
		t.Fatal("no indexes on events")
	}
	for _, ix := range indexes {
		if !strings.Contains(p, "SEARCH t USING COVERING INDEX "+ix+" (") {
			t.Errorf("index %s: no point search in the read-ahead's plan %q", ix, p)
		}
	}
	if n := strings.Count(p, "SEARCH d USING PRIMARY KEY (edomain=? AND eid=?)"); n != 2 {
		t.Errorf("the late index of events by domain: %d searches in %q, want 2", n, p)
	}
	if strings.Contains(p, "SCAN t") || strings.Contains(p, "SCAN d") {
		t.Errorf("the read-ahead scans: %q", p)
	}
}
