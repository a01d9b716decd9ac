package web

import (
	"encoding/csv"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/posthorn/posthorn/internal/api"
	"github.com/posthorn/posthorn/internal/store"
)

// ReportView is the deliverability report page: the API's report (from
// the store's rollups) for the session's tenant.
type ReportView struct {
	From, To, GroupBy string
	Report            *api.Report
	CSV               string // the same report as CSV
	Error             string
}

// report reads the query (from, to, group_by as the API takes them; by
// default the last 7 days by day) and builds the tenant's report.
func (d *Dashboard) report(r *http.Request, s *session) (*ReportView, error) {
	q := r.URL.Query()
	v := &ReportView{GroupBy: q.Get("group_by")}
	if v.GroupBy == "" {
		v.GroupBy = store.GroupByDay
	}
	el, ok := d.cfg.Store.(store.EventLog)
	if !ok {
		return nil, errors.New("this store keeps no reports")
	}
	rq, _, err := api.ParseReportQuery(r, d.cfg.Now())
	if err != nil {
		v.Error = err.Error()
		return v, nil
	}
	rq.TenantID = s.TenantID
	v.From, v.To = rq.From.UTC().Format(time.DateOnly), rq.To.UTC().Format(time.DateOnly)
	if v.Report, err = api.BuildReport(r, el, rq); err != nil {
		return nil, err
	}
	cq := url.Values{"from": {v.From}, "to": {v.To}, "group_by": {rq.GroupBy}}
	v.CSV = "/ui/reports.csv?" + cq.Encode()
	return v, nil
}

// reports shows the report as a table with rates and a CSV link.
func (d *Dashboard) reports(w http.ResponseWriter, r *http.Request, s *session) {
	v, err := d.report(r, s)
	if err != nil {
		d.internal(w, err)
		return
	}
	d.render(w, r, s, "reports", "Reports", v)
}

// reportsCSV downloads the report as the API's CSV.
func (d *Dashboard) reportsCSV(w http.ResponseWriter, r *http.Request, s *session) {
	v, err := d.report(r, s)
	if err != nil {
		d.internal(w, err)
		return
	}
	if v.Error != "" {
		http.Error(w, v.Error, http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="posthorn-report-`+v.GroupBy+`-`+v.From+`-`+v.To+`.csv"`)
	if err := api.ReportCSV(csv.NewWriter(w), v.Report); err != nil {
		d.cfg.Log.Error("report csv", "err", err)
	}
}
