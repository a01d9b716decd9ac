package store

import (
	"context"
	"time"
)

// DMARC is the store of DMARC aggregate reports (RFC 7489 appendix C),
// kept per row of each report for the per-domain, per-source summaries
// of internal/dmarc.
type DMARC interface {
	// PutDMARCReport stores a report and its rows in one transaction and
	// fills in r.ID. A report already stored (same org and report ID) is
	// left alone: dup is true and nothing is written.
	PutDMARCReport(ctx context.Context, r *DMARCReport, rows []DMARCRow) (dup bool, err error)
	// DMARCRows returns the rows about domain (the header From domain)
	// of reports whose period ends at or after since.
	DMARCRows(ctx context.Context, domain string, since time.Time) ([]DMARCRow, error)
}

// DMARCReport is one aggregate report's metadata.
type DMARCReport struct {
	ID         int64     `json:"id"`
	OrgName    string    `json:"org_name"`
	Email      string    `json:"email,omitempty"`
	ReportID   string    `json:"report_id"`
	Domain     string    `json:"domain"` // policy_published domain
	Policy     string    `json:"policy"` // p=
	Begin      time.Time `json:"begin"`
	End        time.Time `json:"end"`
	ReceivedAt time.Time `json:"received_at"`
}

// DMARCRow is one <record>: a count of messages from one source IP with
// the same results.
type DMARCRow struct {
	ReportID    int64     `json:"-"`
	OrgName     string    `json:"org_name"`
	Begin       time.Time `json:"begin"`
	End         time.Time `json:"end"`
	SourceIP    string    `json:"source_ip"`
	Count       int       `json:"count"`
	Disposition string    `json:"disposition"`
	DKIM        string    `json:"dkim"` // policy_evaluated: DKIM aligned pass or fail
	SPF         string    `json:"spf"`  // policy_evaluated: SPF aligned pass or fail
	HeaderFrom  string    `json:"header_from"`
	EnvFrom     string    `json:"envelope_from,omitempty"`
	// AuthResults is the raw auth_results, summarised
	// ("dkim=example.com:pass spf=example.com:pass").
	AuthResults string `json:"auth_results,omitempty"`
}
