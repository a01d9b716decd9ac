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
		{TenantID: "t", Recipient: "r"}, {Recipient: "r", Domain: "d", Tag: "x"}, {TenantID: "t", Recipient: "r", Tag: "x"},
		{TenantID: "t", Tag: "x"}, {TenantID: "t", Destination: "google", Until: since}, {TenantID: "t", Since: since},
	} {
		for _, desc := range []bool{false, true} {
			f.Desc, f.BeforeID, f.AfterID = desc, 10, 0
			sel, args := eventSelect("id", f)
			q := "EXPLAIN QUERY PLAN " + sel + " ORDER BY id"
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
			if f.Recipient != "" {
				checkRecipientPlan(t, f, p)
			} else if byDomain(f) {
				checkDomainPlan(t, f, p)
			} else if strings.Contains(p, "TEMP B-TREE") {
				t.Errorf("%+v sorts: %s", f, p)
			}
		}
	}
}

// checkRecipientPlan: a search by recipient finds the recipient's
// deliveries by rcpt_key (the late index and its tail) and their events by delivery ID, plus the events
// with no delivery by their own key (rcptkey.go); it sorts only what
// those ranges return, and never scans events. (A tag filter reads the
// tenant's messages once, with or without a recipient, as before.)
func checkRecipientPlan(t *testing.T, f store.EventFilter, p string) {
	t.Helper()
	for _, want := range []string{lateRcptPlan, lateTailPlan,
		"SEARCH events USING INDEX events_delivery (delivery_id=?", "SEARCH events USING INDEX events_rcpt (rcpt_key=?"} {
		if !strings.Contains(p, want) {
			t.Errorf("%+v: plan %q lacks %q", f, p, want)
		}
	}
	if strings.Contains(p, "SCAN events") {
		t.Errorf("%+v: plan %q scans", f, p)
	}
}

// checkDomainPlan: a search by domain walks both levels of the late
// index of domains in ID order, joining events by rowid, and merges the
// two without a sort (lateindex.go).
func checkDomainPlan(t *testing.T, f store.EventFilter, p string) {
	t.Helper()
	for _, want := range []string{"MERGE (UNION ALL)", "SEARCH events_by_domain_recent USING PRIMARY KEY (edomain=?",
		"SEARCH events_by_domain USING PRIMARY KEY (edomain=?", "SEARCH events USING INTEGER PRIMARY KEY (rowid=?)"} {
		if !strings.Contains(p, want) {
			t.Errorf("%+v: plan %q lacks %q", f, p, want)
		}
	}
	if strings.Contains(p, "SCAN") || strings.Contains(p, "TEMP B-TREE") {
		t.Errorf("%+v: plan %q scans or sorts", f, p)
	}
}
