package api

import (
	"net/http"
	"time"

	"github.com/posthorn/posthorn/internal/store"
)

// ParseReportQuery reads a report's from, to, group_by and format from
// r's query, as GET /v1/reports/deliverability does (for the dashboard).
func ParseReportQuery(r *http.Request, now time.Time) (store.ReportQuery, string, error) {
	return parseReportQuery(r, now)
}

// BuildReport computes the report of rq with its rates and total.
func BuildReport(r *http.Request, el store.EventLog, rq store.ReportQuery) (*Report, error) {
	return buildReport(r, el, rq)
}
