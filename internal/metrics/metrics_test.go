package metrics

import (
	"context"
	"fmt"
	"net/http/httptest"
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
// restart) shows the same totals.
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
	again := New(Config{Store: obs, TopDestinations: 3})
	if got := fmt.Sprint(scrape(t, again)); got != "map[a.test:5 b.test:3 c.test:2 other:2]" {
		t.Fatalf("restarted with 3 labels: %s", got)
	}
}
