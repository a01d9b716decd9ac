package sqlite

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/store/storetest"
)

func TestEventLogConformance(t *testing.T) {
	storetest.RunEventLog(t, func(t *testing.T) storetest.EventStore {
		s, err := Open(filepath.Join(t.TempDir(), "posthorn.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// TestEventQueriesWalkAnIndexInOrder: every page query of the activity
// log walks an index (or the table) in ID order; none sorts what matches
// first (which made each page of a tenant's export cost the whole log).
func TestEventQueriesWalkAnIndexInOrder(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "posthorn.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	since := time.Now()
	for _, f := range []store.EventFilter{
		{}, {TenantID: "t"}, {TenantID: "t", Type: "delivered"}, {Type: "delivered"}, {TenantID: "t", Domain: "d"},
		{TenantID: "t", Recipient: "r", Type: "soft_bounced", Since: since}, {MessageID: "m", TenantID: "t"},
		{TenantID: "t", Tag: "x"}, {TenantID: "t", Destination: "google", Until: since}, {TenantID: "t", Since: since},
	} {
		for _, desc := range []bool{false, true} {
			f.Desc, f.BeforeID, f.AfterID = desc, 10, 0
			where, args := eventWhere(f)
			q := "EXPLAIN QUERY PLAN SELECT id FROM events" + where + " ORDER BY id"
			if desc {
				q += " DESC"
			}
			rows, err := s.r.Query(q+" LIMIT 100", args...)
			if err != nil {
				t.Fatalf("%+v: %v", f, err)
			}
			var plan []string
			for rows.Next() {
				var a, b, c int
				var d string
				rows.Scan(&a, &b, &c, &d)
				plan = append(plan, d)
			}
			rows.Close()
			p := strings.Join(plan, "; ")
			if strings.Contains(p, "TEMP B-TREE") {
				t.Errorf("%+v sorts: %s", f, p)
			}
			if f.Recipient != "" && !strings.Contains(p, "events_recipient") {
				t.Errorf("%+v does not take the recipient's index: %s", f, p)
			}
		}
	}
}
