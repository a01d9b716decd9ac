package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/posthorn/posthorn/internal/queue"
	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/tenant"
)

// countCap bounds how many events one overview count reads; above it the
// page says "N+".
const countCap = 50000

// chartTypes are the outcome events counted and charted.
var chartTypes = []string{store.EventDelivered, store.EventDeferred, store.EventBounced, store.EventComplaint}

var laneOrder = []store.Lane{store.LaneHigh, store.LaneNormal, store.LaneLow}

// Overview is the first page's data (also served as JSON for refresh).
type Overview struct {
	At          time.Time       `json:"at"`
	States      []store.State   `json:"states"`
	Lanes       []LaneRow       `json:"lanes"`
	Counts      []CountRow      `json:"counts"`
	Chart       []Bar           `json:"chart"` // last 24 hours by hour, deliveries and failures
	ChartMax    int             `json:"chart_max"`
	Throttled   []ThrottledDest `json:"throttled"`
	DeadLetters int             `json:"dead_letters"`
	Alerts      []store.Alert   `json:"alerts"`
}

// LaneRow is one lane's queue by state, with its oldest waiting delivery.
type LaneRow struct {
	Lane   store.Lane          `json:"lane"`
	Counts map[store.State]int `json:"counts"`
	Oldest string              `json:"oldest"` // age of the oldest pending delivery ("" none)
}

// CountRow is one event type's count over the last hour and day.
type CountRow struct {
	Type      string `json:"type"`
	Hour      int    `json:"hour"`
	Day       int    `json:"day"`
	HourCap   bool   `json:"hour_capped"`
	DayCapped bool   `json:"day_capped"`
}

// Bar is one hour of the chart.
type Bar struct {
	Hour      string `json:"hour"`
	Delivered int    `json:"delivered"`
	Failed    int    `json:"failed"` // deferred + bounced
}

// ThrottledDest is a destination below its limits or paused.
type ThrottledDest struct {
	Key    string  `json:"destination"`
	Paused bool    `json:"paused"`
	Rate   float64 `json:"rate_per_minute"`
	Conns  int     `json:"connections_allowed"`
	Reason string  `json:"reason"`
}

var overviewStates = []store.State{store.Scheduled, store.Queued, store.Sending, store.Deferred, store.Held, store.DeadLetter}

func (d *Dashboard) loadOverview(ctx context.Context, s *session) (*Overview, error) {
	now := d.cfg.Now()
	ov := &Overview{At: now, States: overviewStates}
	lanes := map[store.Lane]*LaneRow{}
	oldest := map[store.Lane]time.Time{}
	for _, l := range laneOrder {
		lanes[l] = &LaneRow{Lane: l, Counts: map[store.State]int{}}
	}
	// The lanes' shape: the store's aggregate for the whole installation,
	// or the tenant's own deliveries grouped here.
	if obs, ok := d.cfg.Store.(store.Observer); ok && s.TenantID == "" {
		rows, err := obs.QueueShape(ctx)
		if err != nil {
			return nil, err
		}
		for _, r := range rows {
			lr := lanes[r.Lane]
			if lr == nil {
				continue
			}
			lr.Counts[r.State] += r.Count
			if r.State != store.DeadLetter && (oldest[r.Lane].IsZero() || r.Oldest.Before(oldest[r.Lane])) {
				oldest[r.Lane] = r.Oldest
			}
		}
	} else {
		// A tenant's counts by state (the store has no per-tenant lane
		// aggregate): shown on one row for all lanes, with the oldest
		// pending delivery (ids grow with acceptance).
		counts, err := d.cfg.Store.CountDeliveries(ctx, s.TenantID)
		if err != nil {
			return nil, err
		}
		all := &LaneRow{Lane: "all", Counts: map[store.State]int{}}
		for _, st := range overviewStates {
			all.Counts[st] = counts[st]
		}
		first, err := d.cfg.Store.ListDeliveries(ctx, store.DeliveryFilter{TenantID: s.TenantID,
			States: []store.State{store.Scheduled, store.Queued, store.Sending, store.Deferred, store.Held}, Limit: 1})
		if err != nil {
			return nil, err
		}
		if len(first) > 0 {
			all.Oldest = age(now.Sub(first[0].CreatedAt))
		}
		ov.DeadLetters = all.Counts[store.DeadLetter]
		ov.Lanes = []LaneRow{*all}
		lanes = nil
	}
	for _, l := range laneOrder {
		lr := lanes[l]
		if lr == nil {
			break // a tenant's single row, above
		}
		if !oldest[l].IsZero() {
			lr.Oldest = age(now.Sub(oldest[l]))
		}
		ov.DeadLetters += lr.Counts[store.DeadLetter]
		ov.Lanes = append(ov.Lanes, *lr)
	}
	if err := d.cachedCounts(ctx, s, now, ov); err != nil {
		return nil, err
	}
	if d.cfg.Destinations != nil && s.can(tenant.ScopeAdmin) { // as GET /v1/destinations
		for _, x := range d.cfg.Destinations() {
			if x.Throttle.Throttled || x.Paused {
				ov.Throttled = append(ov.Throttled, ThrottledDest{Key: x.Key, Paused: x.Paused, Rate: x.Throttle.RatePerMinute,
					Conns: x.Throttle.Conns, Reason: x.Throttle.Reason})
			}
		}
		slices.SortFunc(ov.Throttled, func(a, b ThrottledDest) int { return cmpString(a.Key, b.Key) })
	}
	if s.can(tenant.ScopeAdmin) { // as GET /v1/alerts
		alerts, err := d.cfg.Store.ListAlerts(ctx, now.Add(-24*time.Hour))
		if err != nil {
			return nil, err
		}
		for _, a := range alerts {
			if a.Firing {
				ov.Alerts = append(ov.Alerts, a)
			}
		}
	}
	return ov, nil
}

// countsTTL is how long the event counts are reused: they read a day of
// events, and the page refreshes every few seconds.
const countsTTL = 5 * time.Second

type countsEntry struct {
	at       time.Time
	counts   []CountRow
	chart    []Bar
	chartMax int
}

// cachedCounts fills the counts and chart from a recent count for the
// same tenant, or counts afresh.
func (d *Dashboard) cachedCounts(ctx context.Context, s *session, now time.Time, ov *Overview) error {
	d.countsMu.Lock()
	e, ok := d.counts[s.TenantID]
	d.countsMu.Unlock()
	if !ok || now.Sub(e.at) > countsTTL || now.Before(e.at) {
		if err := d.countEvents(ctx, s, now, ov); err != nil {
			return err
		}
		e = countsEntry{at: now, counts: ov.Counts, chart: ov.Chart, chartMax: ov.ChartMax}
		d.countsMu.Lock()
		d.counts[s.TenantID] = e
		d.countsMu.Unlock()
	}
	ov.Counts, ov.Chart, ov.ChartMax = e.counts, e.chart, e.chartMax
	return nil
}

// firstEventSince finds the first event ID at or after since by binary
// search on the events' IDs (each probe one primary-key seek), so the
// counts read only the day's events through the (tenant, type, id)
// index. Event IDs grow with time; an event recorded out of order only
// moves the bound a little and the Since filter still applies.
func (d *Dashboard) firstEventSince(ctx context.Context, since time.Time) (int64, error) {
	hi, err := d.cfg.Store.LastEventID(ctx)
	if err != nil {
		return 0, err
	}
	lo := int64(0) // every event after lo may be at or after since
	for lo < hi {
		mid := lo + (hi-lo)/2
		evs, err := d.cfg.Store.Events(ctx, store.EventFilter{AfterID: mid, Limit: 1})
		if err != nil {
			return 0, err
		}
		if len(evs) == 0 {
			hi = mid
		} else if evs[0].At.Before(since) {
			lo = evs[0].ID
		} else {
			hi = mid
		}
	}
	return lo, nil
}

// countEvents counts the outcome events of the last hour and day and
// buckets them by hour for the chart.
func (d *Dashboard) countEvents(ctx context.Context, s *session, now time.Time, ov *Overview) error {
	dayAgo, hourAgo := now.Add(-24*time.Hour), now.Add(-time.Hour)
	start := now.Truncate(time.Hour).Add(-23 * time.Hour)
	bars := make([]Bar, 24)
	for i := range bars {
		bars[i].Hour = start.Add(time.Duration(i) * time.Hour).UTC().Format("15h")
	}
	tenants := []string{s.TenantID}
	if s.TenantID == "" {
		// events_tenant_type is the index: count tenant by tenant.
		ts, err := d.cfg.Store.ListTenants(ctx)
		if err != nil {
			return err
		}
		tenants = tenants[:0]
		for _, t := range ts {
			tenants = append(tenants, t.ID)
		}
	}
	after, err := d.firstEventSince(ctx, dayAgo)
	if err != nil {
		return err
	}
	for _, typ := range chartTypes {
		row := CountRow{Type: typ}
		for _, tid := range tenants {
			evs, err := d.cfg.Store.Events(ctx, store.EventFilter{TenantID: tid, Type: typ, Since: dayAgo, AfterID: after, Limit: countCap})
			if err != nil {
				return err
			}
			row.DayCapped = row.DayCapped || len(evs) == countCap
			for _, e := range evs {
				row.Day++
				if !e.At.Before(hourAgo) {
					row.Hour++
				}
				i := int(e.At.Sub(start) / time.Hour)
				if i < 0 || i >= len(bars) {
					continue
				}
				if typ == store.EventDelivered {
					bars[i].Delivered++
				} else if typ != store.EventComplaint {
					bars[i].Failed++
				}
			}
		}
		row.HourCap = row.DayCapped && row.Hour >= countCap
		ov.Counts = append(ov.Counts, row)
	}
	for _, b := range bars {
		ov.ChartMax = max(ov.ChartMax, b.Delivered+b.Failed)
	}
	ov.Chart = bars
	return nil
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// age says a duration the way a person reads a queue: 45s, 12m, 3h, 2d.
func age(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

func (d *Dashboard) overview(w http.ResponseWriter, r *http.Request, s *session) {
	ov, err := d.loadOverview(r.Context(), s)
	if err != nil {
		d.internal(w, err)
		return
	}
	d.render(w, r, s, "overview", "Overview", ov)
}

// overviewJSON is the overview's numbers for scripts (the page itself
// refreshes by re-rendering its live part).
func (d *Dashboard) overviewJSON(w http.ResponseWriter, r *http.Request, s *session) {
	ov, err := d.loadOverview(r.Context(), s)
	if err != nil {
		d.internal(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(ov)
}

// destinationsOf is the scheduler's view sorted by key.
func (d *Dashboard) destinationsOf() []queue.DestinationInfo {
	if d.cfg.Destinations == nil {
		return nil
	}
	ds := d.cfg.Destinations()
	slices.SortFunc(ds, func(a, b queue.DestinationInfo) int { return cmpString(a.Key, b.Key) })
	return ds
}
