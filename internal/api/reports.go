package api

import (
	"encoding/csv"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/posthorn/posthorn/internal/store"
)

// Deliverability reports, read from the rollups the store keeps as it
// writes events (so their cost does not grow with the number of events).
// Rates are shares of accepted recipients, except the complaint rate,
// which is a share of delivered ones (as mailbox providers count it).

// Report is a deliverability report.
type Report struct {
	From    string       `json:"from"`
	To      string       `json:"to"`
	GroupBy string       `json:"group_by"`
	Rows    []ReportLine `json:"rows"`
	Total   ReportLine   `json:"total"`
}

// ReportLine is one group (or the total) with its rates.
type ReportLine struct {
	Key string `json:"key"`
	store.Counters
	Rates Rates `json:"rates"`
}

// Rates are the counters as fractions (0..1, four decimals).
type Rates struct {
	Delivered    float64 `json:"delivered"`
	Bounced      float64 `json:"bounced"` // hard and soft
	HardBounced  float64 `json:"hard_bounced"`
	SoftBounced  float64 `json:"soft_bounced"`
	Suppressed   float64 `json:"suppressed"`
	DeadLettered float64 `json:"dead_lettered"`
	Unsubscribed float64 `json:"unsubscribed"`
	Complaints   float64 `json:"complaints"` // of delivered
}

func ratio(n, d int64) float64 {
	if d == 0 {
		return 0
	}
	return math.Round(float64(n)/float64(d)*10000) / 10000
}

func line(key string, c store.Counters) ReportLine {
	a := c.Accepted
	return ReportLine{Key: key, Counters: c, Rates: Rates{
		Delivered: ratio(c.Delivered, a), Bounced: ratio(c.Bounced+c.SoftBounced, a), HardBounced: ratio(c.Bounced, a),
		SoftBounced: ratio(c.SoftBounced, a), Suppressed: ratio(c.Suppressed, a), DeadLettered: ratio(c.DeadLettered, a),
		Unsubscribed: ratio(c.Unsubscribed, a), Complaints: ratio(c.Complaints, c.Delivered)}}
}

// ParseReportQuery reads a report request's from, to (days; default the
// last 7 days), group_by (default day) and format (json or csv); the
// dashboard reads its reports with it too.
func ParseReportQuery(r *http.Request, now time.Time) (store.ReportQuery, string, error) {
	q := r.URL.Query()
	rq := store.ReportQuery{GroupBy: q.Get("group_by")}
	if rq.GroupBy == "" {
		rq.GroupBy = store.GroupByDay
	}
	switch rq.GroupBy {
	case store.GroupByDay, store.GroupByDomain, store.GroupByDestination, store.GroupByTag:
	default:
		return rq, "", errors.New("group_by: want day, domain, destination or tag")
	}
	var err error
	if rq.To, err = parseWhen(q.Get("to"), now); err != nil {
		return rq, "", fmt.Errorf("to: %w", err)
	}
	if rq.To.IsZero() {
		rq.To = now
	}
	if rq.From, err = parseWhen(q.Get("from"), now); err != nil {
		return rq, "", fmt.Errorf("from: %w", err)
	}
	if rq.From.IsZero() {
		rq.From = rq.To.Add(-6 * 24 * time.Hour)
	}
	if rq.From.After(rq.To) {
		return rq, "", errors.New("from: after to")
	}
	format := q.Get("format")
	switch format {
	case "", "json", "csv":
	default:
		return rq, "", errors.New("format: want json or csv")
	}
	return rq, format, nil
}

// BuildReport computes the report of rq with its rates and total.
func BuildReport(r *http.Request, el store.EventLog, rq store.ReportQuery) (*Report, error) {
	rows, err := el.Report(r.Context(), rq)
	if err != nil {
		return nil, err
	}
	out := &Report{From: rq.From.UTC().Format(time.DateOnly), To: rq.To.UTC().Format(time.DateOnly), GroupBy: rq.GroupBy,
		Rows: []ReportLine{}}
	var total store.Counters
	for _, row := range rows {
		out.Rows = append(out.Rows, line(row.Key, row.Counters))
		if rq.GroupBy != store.GroupByTag { // a message with two tags counts twice
			total.Add(row.Counters)
		}
	}
	if rq.GroupBy == store.GroupByTag {
		all := rq
		all.GroupBy = store.GroupByDay
		days, err := el.Report(r.Context(), all)
		if err != nil {
			return nil, err
		}
		for _, d := range days {
			total.Add(d.Counters)
		}
	}
	out.Total = line("total", total)
	return out, nil
}

// ReportCSVHeader is the first line of a CSV report.
var ReportCSVHeader = []string{"key", "accepted", "delivered", "deferred", "bounced", "soft_bounced", "complaints", "unsubscribed",
	"suppressed", "dead_lettered", "delivered_rate", "bounce_rate", "complaint_rate"}

// ReportCSV writes rows and the total as CSV.
func ReportCSV(w *csv.Writer, rep *Report) error {
	w.Write(ReportCSVHeader)
	i := func(n int64) string { return strconv.FormatInt(n, 10) }
	f := func(x float64) string { return strconv.FormatFloat(x, 'f', 4, 64) }
	for _, l := range append(rep.Rows, rep.Total) {
		c := l.Counters
		w.Write([]string{l.Key, i(c.Accepted), i(c.Delivered), i(c.Deferred), i(c.Bounced), i(c.SoftBounced), i(c.Complaints),
			i(c.Unsubscribed), i(c.Suppressed), i(c.DeadLettered), f(l.Rates.Delivered), f(l.Rates.Bounced), f(l.Rates.Complaints)})
	}
	w.Flush()
	return w.Error()
}

// WriteReport answers rep as JSON, or as CSV when format is csv.
func WriteReport(w http.ResponseWriter, rep *Report, format string) {
	if format == "csv" {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		ReportCSV(csv.NewWriter(w), rep)
		return
	}
	WriteJSON(w, http.StatusOK, rep)
}
