package api

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/posthorn/posthorn/internal/events"
	"github.com/posthorn/posthorn/internal/store"
)

// The activity log over HTTP, shared by the public API (tenant-scoped)
// and the admin socket (every tenant, or ?tenant=):
//   - a page: newest first (order=asc for oldest first), limit items, a
//     next_cursor to pass back as cursor for the next page;
//   - an export (Accept: application/x-ndjson, format=ndjson or
//     format=csv) of the whole selection, read from the store in keyset
//     batches and written (and flushed) batch by batch, so its size does
//     not matter to the server's memory;
//   - a live stream (server-sent events) fed by the broadcaster after each
//     commit; Last-Event-ID resumes from the store.

const (
	defaultEventLimit = 100
	maxEventLimit     = 1000
	exportBatch       = 5000
	// countCap bounds the count of a page's whole selection (a count
	// costs a scan of what it counts).
	countCap = 100_000
)

// EventPage is a page of the activity log.
type EventPage struct {
	Items      []store.Event `json:"items"`
	NextCursor string        `json:"next_cursor,omitempty"`
	// Total counts the whole selection (admin API), up to TotalCapped.
	Total       int  `json:"total,omitempty"`
	TotalCapped bool `json:"total_capped,omitempty"`
}

// EventQuery is a parsed events request.
type EventQuery struct {
	Filter store.EventFilter
	Limit  int    // 0 for an export: everything
	Format string // "" or json (a page), ndjson or csv (an export)
}

// ParseEventQuery reads an events request's query (and Accept header).
func ParseEventQuery(r *http.Request, now time.Time) (EventQuery, error) {
	q := r.URL.Query()
	var eq EventQuery
	f := &eq.Filter
	f.MessageID, f.Recipient, f.Domain = q.Get("message"), q.Get("recipient"), q.Get("domain")
	f.Destination, f.Tag = q.Get("destination"), q.Get("tag")
	if t := q.Get("type"); t != "" {
		if !store.ValidEventType(t) {
			return eq, fmt.Errorf("type: unknown event type %q; valid types: %s", t, store.EventTypeList())
		}
		f.Type = t
	}
	var err error
	if f.Since, err = parseWhen(q.Get("since"), now); err != nil {
		return eq, fmt.Errorf("since: %w", err)
	}
	if f.Until, err = parseWhen(q.Get("until"), now); err != nil {
		return eq, fmt.Errorf("until: %w", err)
	}
	switch q.Get("order") {
	case "", "desc":
		f.Desc = true
	case "asc":
	default:
		return eq, errors.New("order: want asc or desc")
	}
	if c := q.Get("cursor"); c != "" {
		id, err := strconv.ParseInt(c, 10, 64)
		if err != nil || id <= 0 {
			return eq, errors.New("cursor: not a cursor from next_cursor")
		}
		if f.Desc {
			f.BeforeID = id
		} else {
			f.AfterID = id
		}
	}
	eq.Format = q.Get("format")
	if eq.Format == "" && strings.Contains(r.Header.Get("Accept"), "application/x-ndjson") {
		eq.Format = "ndjson"
	}
	switch eq.Format {
	case "", "json", "ndjson", "csv":
	default:
		return eq, errors.New("format: want json, ndjson or csv")
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			return eq, errors.New("limit: want a positive number")
		}
		eq.Limit = n
	}
	if eq.Format == "" || eq.Format == "json" {
		if eq.Limit == 0 {
			eq.Limit = defaultEventLimit
		}
		if eq.Limit > maxEventLimit {
			return eq, fmt.Errorf("limit: at most %d a page (use format=ndjson or csv to export everything)", maxEventLimit)
		}
	}
	return eq, nil
}

// parseWhen reads an RFC 3339 time, a date (UTC midnight), or a Go
// duration meaning that long ago.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q: want RFC 3339 (2006-01-02T15:04:05Z), a date or a duration ago (24h)", s)
}

// eventPage reads one page; withTotal also counts the selection.
func eventPage(ctx context.Context, st store.Store, eq EventQuery, withTotal bool) (*EventPage, error) {
	f := eq.Filter
	f.Limit = eq.Limit + 1
	evs, err := st.Events(ctx, f)
	if err != nil {
		return nil, err
	}
	page := &EventPage{Items: evs}
	if len(evs) > eq.Limit {
		page.Items = evs[:eq.Limit]
		page.NextCursor = strconv.FormatInt(page.Items[eq.Limit-1].ID, 10)
	}
	if page.Items == nil {
		page.Items = []store.Event{}
	}
	if withTotal && page.NextCursor != "" {
		if el, ok := st.(store.EventLog); ok {
			cf := eq.Filter
			cf.AfterID, cf.BeforeID = 0, 0
			n, err := el.CountEvents(ctx, cf, countCap)
			if err != nil {
				return nil, err
			}
			page.Total, page.TotalCapped = n, n >= countCap
		}
	}
	return page, nil
}

var csvHeader = []string{"id", "at", "type", "tenant", "message_id", "delivery_id", "recipient", "domain", "destination",
	"attempt", "mx", "code", "enhanced", "text", "detail"}

// exportEvents writes the whole selection as NDJSON or CSV, one store
// batch at a time.
func exportEvents(ctx context.Context, w http.ResponseWriter, st store.Store, eq EventQuery) error {
	fl, _ := w.(http.Flusher)
	if eq.Format == "csv" {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="events.csv"`)
	} else {
		w.Header().Set("Content-Type", "application/x-ndjson")
	}
	var cw *csv.Writer
	enc := json.NewEncoder(w)
	f, left := eq.Filter, eq.Limit
	for started := false; ; started = true {
		f.Limit = exportBatch
		if left > 0 && left < exportBatch {
			f.Limit = left
		}
		evs, err := st.Events(ctx, f)
		if err != nil {
			if started {
				return fmt.Errorf("%w: %w", ErrExportCut, err)
			}
			return err
		}
		if !started {
			w.WriteHeader(http.StatusOK)
			if eq.Format == "csv" {
				cw = csv.NewWriter(w)
				cw.Write(csvHeader)
			}
		}
		for i := range evs {
			e := &evs[i]
			if cw != nil {
				cw.Write([]string{strconv.FormatInt(e.ID, 10), e.At.Format(time.RFC3339Nano), e.Type, e.TenantID, e.MessageID,
					strconv.FormatInt(e.DeliveryID, 10), e.Recipient, e.Domain, e.Destination, strconv.Itoa(e.Attempt), e.MX,
					strconv.Itoa(e.Reply.Code), e.Reply.Enhanced, e.Reply.Text, e.Detail})
			} else if err := enc.Encode(e); err != nil {
				return fmt.Errorf("%w: %w", ErrExportCut, err)
			}
		}
		if cw != nil {
			cw.Flush()
			if err := cw.Error(); err != nil {
				return fmt.Errorf("%w: %w", ErrExportCut, err)
			}
		}
		if fl != nil {
			fl.Flush()
		}
		if left > 0 {
			if left -= len(evs); left <= 0 {
				return nil
			}
		}
		if len(evs) < f.Limit {
			return nil
		}
		last := evs[len(evs)-1].ID
		if f.Desc {
			f.BeforeID = last
		} else {
			f.AfterID = last
		}
	}
}

// ErrExportCut is an export that failed after it started: the answer
// cannot become an error any more, only end early.
var ErrExportCut = errors.New("export cut short")

// ServeEvents answers a list request: a page or an export.
func ServeEvents(w http.ResponseWriter, r *http.Request, st store.Store, eq EventQuery, withTotal bool) error {
	if eq.Format == "ndjson" || eq.Format == "csv" {
		return exportEvents(r.Context(), w, st, eq)
	}
	page, err := eventPage(r.Context(), st, eq, withTotal)
	if err != nil {
		return err
	}
	WriteJSON(w, http.StatusOK, page)
	return nil
}

const heartbeatEvery = 15 * time.Second

// matcher is the stream's filter (the store's filter, applied in memory).
func matcher(f store.EventFilter) func(*store.Event) bool {
	return func(e *store.Event) bool {
		return (f.TenantID == "" || e.TenantID == f.TenantID) && (f.Type == "" || e.Type == f.Type) &&
			(f.MessageID == "" || e.MessageID == f.MessageID) && (f.Recipient == "" || e.Recipient == f.Recipient) &&
			(f.Domain == "" || e.Domain == strings.ToLower(f.Domain)) && (f.Destination == "" || e.Destination == f.Destination)
	}
}

// StreamEvents follows the log as server-sent events until the client
// goes or the broadcaster closes. Each event is "id: <id>" and "data:
// <event JSON>"; ": ping" comments keep idle connections open. With
// Last-Event-ID (or ?after=) it first sends what the store has after
// that ID; a follower that lags is caught up from the store the same way.
func StreamEvents(w http.ResponseWriter, r *http.Request, st store.Store, b *events.Broadcaster, f store.EventFilter, heartbeat time.Duration) error {
	fl, ok := w.(http.Flusher)
	if !ok || b == nil {
		return errors.New("streaming is not available here")
	}
	if f.Tag != "" || !f.Since.IsZero() || !f.Until.IsZero() {
		return &BadRequest{Msg: "the stream filters by type, message, recipient, domain and destination only"}
	}
	var last int64
	if s := cmpOr(r.Header.Get("Last-Event-ID"), r.URL.Query().Get("after")); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return &BadRequest{Msg: "Last-Event-ID: want an event id"}
		}
		last = n
	}
	if heartbeat <= 0 {
		heartbeat = heartbeatEvery
	}
	// Subscribed before the first line goes out: a client that has read
	// it misses nothing committed afterwards.
	sub := b.Subscribe(matcher(f))
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, ": posthorn events\n\n")
	fl.Flush()
	ctx := r.Context()
	send := func(e *store.Event) error {
		data, _ := json.Marshal(e)
		_, err := fmt.Fprintf(w, "id: %d\ndata: %s\n\n", e.ID, data)
		last = e.ID
		return err
	}
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	for {
		if sub == nil {
			sub = b.Subscribe(matcher(f))
		}
		if last > 0 { // catch up from the store, then follow
			cf := f
			cf.Desc, cf.Limit = false, exportBatch
			for {
				cf.AfterID = last
				evs, err := st.Events(ctx, cf)
				if err != nil {
					sub.Close()
					return nil // the client went, or the store is closing
				}
				for i := range evs {
					if err := send(&evs[i]); err != nil {
						sub.Close()
						return nil
					}
				}
				fl.Flush()
				if len(evs) < cf.Limit {
					break
				}
			}
		}
	follow:
		for {
			select {
			case <-ctx.Done():
				sub.Close()
				return nil
			case <-tick.C:
				if _, err := fmt.Fprint(w, ": ping\n\n"); err != nil {
					sub.Close()
					return nil
				}
				fl.Flush()
			case evs, ok := <-sub.C:
				if !ok {
					if sub.Lagged() {
						sub = nil
						break follow // catch up from the store
					}
					return nil // shutting down
				}
				for i := range evs {
					if evs[i].ID <= last {
						continue // already sent from the store
					}
					if err := send(&evs[i]); err != nil {
						sub.Close()
						return nil
					}
				}
				fl.Flush()
			}
		}
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
