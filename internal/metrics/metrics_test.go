package metrics

import (
	"context"
	"fmt"
	"math"
	"net/http/httptest"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/posthorn/posthorn/internal/smtpproto"
	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/store/storetest"
	"github.com/posthorn/posthorn/internal/testkit/pgtest"
	"github.com/posthorn/posthorn/internal/testkit/stores"
)

// The tests run on each store backend (testkit/stores).
func TestMain(m *testing.M) { pgtest.Main(m) }

// attempt stores one message to rcpt and one deferred attempt for it.
func attempt(t *testing.T, st store.Store, id, rcpt string) {
	t.Helper()
	ctx := context.Background()
	nm := storetest.NewTestMessage(id, rcpt)
	if err := st.InsertMessages(ctx, []*store.NewMessage{nm}); err != nil {
		t.Fatal(err)
	}
	d := nm.Deliveries[0]
	now := d.CreatedAt
	if _, err := st.Lease(ctx, []int64{d.ID}, now, now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := st.RecordOutcomes(ctx, []store.Outcome{{DeliveryID: d.ID, State: store.Deferred, NextAt: now.Add(time.Hour),
		Class: "deferred", Reply: smtpproto.Reply{Code: 451}, StartedAt: now, Event: store.EventDeferred}}); err != nil {
		t.Fatal(err)
	}
}

// scrape serves c's metrics and returns the attempts counter by
// destination.
func scrape(t *testing.T, c *Collector) map[string]float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	c.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, m := range fams["posthorn_delivery_attempts_total"].GetMetric() {
		for _, l := range m.Label {
			if l.GetName() == "destination" {
				out[l.GetValue()] += m.Counter.GetValue()
			}
		}
	}
	return out
}

// TestDestinationLabelsBounded: only the TopDestinations with the most
// attempts in the history get their own label, the rest count as
// "other"; a destination seen later gets a label while there is room,
// and "other" after; a collector started again on the same store (a
// restart) shows the same totals, its labels picked again from the whole
// history when their number changed (the saved counters do not fit).
func TestDestinationLabelsBounded(t *testing.T) { stores.Each(t, testDestinationLabelsBounded) }

func testDestinationLabelsBounded(t *testing.T, st store.Store) {
	obs := st.(store.Observer)
	n := 0
	for dom, k := range map[string]int{"a.test": 4, "b.test": 3, "c.test": 2, "d.test": 1} {
		for i := 0; i < k; i++ {
			n++
			attempt(t, st, fmt.Sprint("m", n), fmt.Sprintf("u%d@%s", i, dom))
		}
	}
	c := New(Config{Store: obs, TopDestinations: 2})
	c.Start()
	defer c.Stop()
	if got := fmt.Sprint(scrape(t, c)); got != "map[a.test:4 b.test:3 other:3]" {
		// Two destinations by name, c and d folded into other.
		t.Fatalf("after the history: %s", got)
	}
	attempt(t, st, "m-late-1", "x@e.test") // no room: other
	attempt(t, st, "m-late-2", "y@a.test")
	if got := fmt.Sprint(scrape(t, c)); got != "map[a.test:5 b.test:3 other:4]" {
		t.Fatalf("after new attempts: %s", got)
	}
	c.Stop() // saves its counters, made with 2 labels: not used with 3
	again := New(Config{Store: obs, TopDestinations: 3})
	if got := fmt.Sprint(scrape(t, again)); got != "map[a.test:5 b.test:3 c.test:2 other:2]" {
		t.Fatalf("restarted with 3 labels: %s", got)
	}
}

// outcomes cycles through the attempt results history writes.
var outcomes = []struct {
	state store.State
	event string
	class string
	code  int
}{
	{store.Delivered, store.EventDelivered, "delivered", 250},
	{store.Deferred, store.EventDeferred, "deferred", 451},
	{store.Bounced, store.EventBounced, "bounced", 550},
	{store.SoftBounced, store.EventSoftBounce, "deferred", 452},
	{store.DeadLetter, store.EventDeadLetter, "bounced", 554},
	{store.Suppressed, store.EventSuppressed, "suppressed", 0},
	{store.Delivered, store.EventDelivered, "delivered", 250},
}

// history stores n messages (sources, lanes and recipient domains
// varied), one attempt for each with a result from outcomes, and a
// complaint for every seventh; it returns how many events it wrote.
func history(t *testing.T, st store.Store, prefix string, n int) int {
	t.Helper()
	ctx := context.Background()
	events := 0
	for i := 0; i < n; i++ {
		nm := storetest.NewTestMessage(fmt.Sprintf("%s-%d", prefix, i), fmt.Sprintf("u%d@d%d.test", i, i%7))
		nm.Message.Source = []string{"smtp", "http", "dsn"}[i%3]
		if i%2 == 0 {
			nm.Message.Lane, nm.Deliveries[0].Lane = store.LaneHigh, store.LaneHigh
		}
		if err := st.InsertMessages(ctx, []*store.NewMessage{nm}); err != nil {
			t.Fatal(err)
		}
		d := nm.Deliveries[0]
		start := d.CreatedAt.Add(time.Duration(i%40) * 700 * time.Millisecond)
		if _, err := st.Lease(ctx, []int64{d.ID}, start, start.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		o := outcomes[i%len(outcomes)]
		out := store.Outcome{DeliveryID: d.ID, State: o.state, Class: o.class, Reply: smtpproto.Reply{Code: o.code}, StartedAt: start, Event: o.event}
		if o.state == store.Deferred {
			out.NextAt = start.Add(time.Hour)
		}
		if o.state == store.Suppressed {
			out.Reply, out.Error = smtpproto.Reply{}, "suppressed before delivery (bounce: u@d.test)"
		}
		if err := st.RecordOutcomes(ctx, []store.Outcome{out}); err != nil {
			t.Fatal(err)
		}
		events += 2 // accepted, outcome
		if i%7 == 3 {
			if err := st.RecordEvent(ctx, store.Event{At: start, Type: store.EventComplaint, TenantID: "t1", MessageID: nm.Message.ID,
				DeliveryID: d.ID, Recipient: d.Recipient}); err != nil {
				t.Fatal(err)
			}
			events++
		}
	}
	return events
}

// counterLines scrapes c and returns the lines of its counters and of
// the latency histogram (the figures read from the history), sorted.
func counterLines(t *testing.T, c *Collector) []string {
	t.Helper()
	rec := httptest.NewRecorder()
	c.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	var out []string
	for _, l := range strings.Split(rec.Body.String(), "\n") {
		name, _, _ := strings.Cut(l, " ")
		name, _, _ = strings.Cut(name, "{")
		// The counters read from the history (not the store writer's
		// work, which is the running process's own).
		if strings.HasPrefix(name, "posthorn_") && !strings.HasPrefix(name, "posthorn_store_") &&
			(strings.HasSuffix(name, "_total") || strings.HasPrefix(name, "posthorn_delivery_latency_seconds")) {
			out = append(out, l)
		}
	}
	if len(out) == 0 {
		t.Fatalf("no counters in:\n%s", rec.Body.String())
	}
	sort.Strings(out)
	return out
}

// counting is the store seen through what the collector reads of it:
// the events EventsAfter returned and the lowest cursor it was asked for.
type counting struct {
	store.Observer
	noState  bool // hide the saved state: the collector reads the whole history
	mu       sync.Mutex
	events   int
	minAfter int64
	calls    int
}

func (s *counting) EventsAfter(ctx context.Context, after int64, types []string, limit int) ([]store.EventRow, int64, error) {
	evs, next, err := s.Observer.EventsAfter(ctx, after, types, limit)
	s.mu.Lock()
	if s.calls == 0 || after < s.minAfter {
		s.minAfter = after
	}
	s.calls++
	s.events += int(next - after) // every event of the window was looked at
	s.mu.Unlock()
	return evs, next, err
}

func (s *counting) MetricsState(ctx context.Context) ([]byte, error) {
	if s.noState {
		return nil, nil
	}
	return s.Observer.MetricsState(ctx)
}

// TestRestartFromSavedState: a collector started on a store with a history
// shows the counters a read of the whole history gives; stopped, it saves
// them; after more history, a collector started again (a restart) reads
// only the events written since, and its counters are those of a read of
// the whole history, none lower than before the restart.
func TestRestartFromSavedState(t *testing.T) { stores.Each(t, testRestartFromSavedState) }

func testRestartFromSavedState(t *testing.T, st store.Store) {
	obs := st.(store.Observer)
	history(t, st, "old", 140)
	want := counterLines(t, New(Config{Store: &counting{Observer: obs, noState: true}})) // the whole history, as every start did
	first := New(Config{Store: obs})
	first.Start()
	got := counterLines(t, first)
	first.Stop() // saves
	if !slices.Equal(got, want) {
		t.Fatalf("first start:\n%s\nwant (whole history):\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	before := got

	added := history(t, st, "new", 50)
	full := counterLines(t, New(Config{Store: &counting{Observer: obs, noState: true}}))
	seen := &counting{Observer: obs}
	again := New(Config{Store: seen})
	again.Start()
	defer again.Stop()
	got = counterLines(t, again)
	if !slices.Equal(got, full) {
		t.Fatalf("after a restart:\n%s\nwant (whole history):\n%s", strings.Join(got, "\n"), strings.Join(full, "\n"))
	}
	seen.mu.Lock()
	defer seen.mu.Unlock()
	if seen.minAfter == 0 || seen.events != added {
		t.Fatalf("the restart read %d events from cursor %d; want only the %d written since the save", seen.events, seen.minAfter, added)
	}
	now := values(t, got)
	for k, v := range values(t, before) {
		if now[k] < v {
			t.Errorf("%s went down across the restart: %v -> %v", k, v, now[k])
		}
	}
}

// TestCountsAfterRetentionEmptiedTheLog: retention deletes every event
// while the server is stopped, and SQLite then gives new events IDs from
// 1 again, below the saved cursor; a start counts them all the same, and
// the counters of events only grow: each is its value before the stop plus
// what the new events add.
func TestCountsAfterRetentionEmptiedTheLog(t *testing.T) {
	stores.Each(t, testCountsAfterRetentionEmptiedTheLog)
}

func testCountsAfterRetentionEmptiedTheLog(t *testing.T, st store.Store) {
	ctx := context.Background()
	obs := st.(store.Observer)
	history(t, st, "old", 70)
	first := New(Config{Store: obs})
	first.Start()
	before := values(t, counterLines(t, first))
	first.Stop()
	el := st.(store.EventLog)
	for {
		n, err := el.PruneEvents(ctx, time.Now().Add(24*time.Hour), 1000)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	history(t, st, "new", 35)
	onlyNew := values(t, counterLines(t, New(Config{Store: &counting{Observer: obs, noState: true}}))) // the events left are the new ones
	again := New(Config{Store: obs})
	again.Start()
	defer again.Stop()
	after := values(t, counterLines(t, again))
	checked := 0
	for k, v := range after {
		if !strings.HasPrefix(k, "posthorn_bounces_total") && !strings.HasPrefix(k, "posthorn_complaints_total") &&
			!strings.HasPrefix(k, "posthorn_dead_letters_total") && !strings.HasPrefix(k, "posthorn_suppressed_total") &&
			!strings.HasPrefix(k, "posthorn_delivery_latency_seconds") {
			continue // read from attempts and messages, which retention keeps
		}
		want := before[k] + onlyNew[k]
		if math.Abs(v-want) > 1e-9*math.Max(1, want) {
			t.Errorf("%s = %v after the restart; want %v before + %v new", k, v, before[k], onlyNew[k])
		}
		checked++
	}
	if checked < 10 || onlyNew[`posthorn_bounces_total{type="hard"}`] == 0 {
		t.Fatalf("only %d event series checked, %v new hard bounces", checked, onlyNew[`posthorn_bounces_total{type="hard"}`])
	}
}

// values maps each line of counterLines to its value.
func values(t *testing.T, lines []string) map[string]float64 {
	t.Helper()
	m := map[string]float64{}
	for _, l := range lines {
		k, v, _ := strings.Cut(l, " ")
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			t.Fatal(err)
		}
		m[k] = f
	}
	return m
}
