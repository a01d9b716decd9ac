package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/store"
)

// DMARC checks the DMARC report store: a report is stored once per org
// and report ID with its rows, rows are found by header From domain and
// period end, and an attempt keeps its source address.
func DMARC(t *testing.T, s store.Store) {
	ctx := context.Background()
	end := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	r := &store.DMARCReport{OrgName: "google.com", ReportID: "1", Domain: "example.org", Policy: "none",
		Begin: end.Add(-24 * time.Hour), End: end, ReceivedAt: end}
	rows := []store.DMARCRow{
		{HeaderFrom: "example.org", SourceIP: "192.0.2.1", Count: 10, DKIM: "pass", SPF: "pass", Disposition: "none"},
		{HeaderFrom: "other.example", SourceIP: "192.0.2.2", Count: 1, DKIM: "fail", SPF: "fail", Disposition: "reject"},
	}
	dup, err := s.PutDMARCReport(ctx, r, rows)
	if err != nil || dup || r.ID == 0 {
		t.Fatalf("first report: dup=%v id=%d err=%v", dup, r.ID, err)
	}
	again := *r
	again.ID = 0
	if dup, err := s.PutDMARCReport(ctx, &again, rows); err != nil || !dup {
		t.Fatalf("same report again: dup=%v err=%v", dup, err)
	}
	got, err := s.DMARCRows(ctx, "example.org", end.Add(-time.Hour))
	if err != nil || len(got) != 1 || got[0].Count != 10 || got[0].SourceIP != "192.0.2.1" || got[0].OrgName != "google.com" || !got[0].End.Equal(end) {
		t.Fatalf("rows of example.org: %+v %v", got, err)
	}
	if got, _ := s.DMARCRows(ctx, "example.org", end.Add(time.Hour)); len(got) != 0 {
		t.Fatalf("rows of reports ending before since: %+v", got)
	}
}
