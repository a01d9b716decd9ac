// Package metrics serves posthorn's Prometheus metrics. Every figure is
// read from the store or the scheduler when it is scraped; nothing is
// counted beside them that could drift from what they hold.
//
//   - Gauges of the queue (depth by lane and state, oldest age by lane,
//     current dead letters) come from one aggregate query over a covering
//     index of the deliveries table (store.Observer.QueueShape), cached for
//     ShapeTTL (default 1s) so several scrapers do not repeat it.
//   - Destination gauges (connections, allowed rate, paused) come from the
//     scheduler's live state (queue.Scheduler.DestinationGauges).
//   - Counters (_total) and the latency histogram are the store's own
//     append-only tables (attempts, events, messages) read forward from a
//     cursor: each scrape reads only the rows added since the previous one.
//   - The counters and their cursors are saved in the store
//     (store.Observer.SaveMetricsState) every SaveEvery (default 1 min)
//     and at Stop. A start continues from the saved state and reads only
//     the rows added after its cursors (in the background, from Start; a
//     scrape before it ends waits for it): with 50,000,000 events the
//     whole history took minutes to read (docs/performance.md). With no
//     saved state (a new database, the first start of a build before
//     this one), or one that does not fit (TopDestinations or the
//     latency buckets changed), the first pass counts the whole history
//     once, as every start did before. Counters therefore survive
//     restarts: after a restart each equals what a read of the whole
//     history from the first start on would give, and never goes down,
//     even after retention deleted old events.
//
// Decision: the saved state, not the report rollups, is what a start
// rebuilds from. The rollups count per tenant, day, domain and
// destination, but the counters need what they do not keep: attempts by
// reply class (the attempts table), accepted messages by source, the
// latency histogram by lane (the delivery's creation time), suppressions
// by reason. The saved state is the collector's own counters, so a start
// from it gives exactly what the full read gave (TestRestartFromSavedState).
// A reason asked of the suppression lists is asked once, when the event
// is first counted; a crash loses only the state since the last save,
// and those rows are read again. When retention empties SQLite's event
// log, its IDs start again from 1, below the cursor: EventsAfter then
// returns an ID below it and the log is counted from the start
// (TestCountsAfterRetentionEmptiedTheLog).
//
// Cardinality is bounded: attempts are labelled by destination (provider
// or domain) for the TopDestinations (50) with the most attempts when the
// history was first read, and for new destinations until that many are
// labelled; the rest are counted as destination="other". Destination
// gauges report the top 50 by current activity and sum the rest as
// "other". No metric carries a tenant.
//
// Lock order: Collector.mu, then the scheduler's lock (inside
// DestinationGauges); the store takes no lock of ours.
//
// Tests: metrics_test.go proves the destination labels stay bounded and
// that a collector started again on the same store (a restart) reports
// the same totals; internal/e2e TestMetricsMatchStore scrapes the built
// binary and checks every queue and counter figure against the store's
// state read through the CLI, before and after a restart.
package metrics

import (
	"context"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/posthorn/posthorn/internal/queue"
	"github.com/posthorn/posthorn/internal/store"
)

// Scheduler is what metrics read of the scheduler.
type Scheduler interface {
	DestinationGauges() []queue.DestinationGauge
}

// Config gives the collector its sources.
type Config struct {
	Store store.Observer
	Sched Scheduler
	// Destination names the destination of an attempt from its delivery's
	// domain and provider (nil: "provider:NAME" when known, else domain).
	Destination func(domain, provider string) string
	// SuppressionReason says why an address is suppressed now, for
	// recipients suppressed at accept time (the store keeps no reason
	// with those events; nil or "": "unknown").
	SuppressionReason func(tenantID, addr string) string
	// WebhookOutboxDepth is the number of webhook deliveries waiting
	// (nil: 0).
	WebhookOutboxDepth func() int
	// Blocklists are the current DNS blocklist results (nil: none are
	// monitored); each is posthorn_blocklist_listed{list, target}.
	Blocklists func() []BlocklistResult
	// DNS are the delivery resolver's counters (nil: not exported).
	DNS             func() DNSStats
	ShapeTTL        time.Duration // default 1s
	TopDestinations int           // default 50
	SaveEvery       time.Duration // how often the counters are saved (default 1 min)
	Now             func() time.Time
	Log             *slog.Logger
}

// writerStats is a store whose single writer reports its work (both of
// posthorn's stores do).
type writerStats interface{ WriterStats() store.WriterStats }

// BlocklistResult is one target's state on one DNS blocklist.
// DNSStats are the delivery resolver's counters since the start.
type DNSStats struct{ Queries, Retransmits, Failures uint64 }

type BlocklistResult struct {
	List, Target string
	Listed       bool
}

// Collector is a prometheus.Collector over posthorn's state.
type Collector struct {
	cfg Config

	mu       sync.Mutex
	c        counters
	restored bool     // the saved state was looked for
	savedAt  [3]int64 // the cursors of the state saved last
	shape    []store.ShapeRow
	shapeAt  time.Time

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// counters are the store's append-only tables, counted up to the cursors.
type counters struct {
	attemptCur, eventCur, messageCur int64
	loaded                           bool // the whole history has been read once

	attempts   map[string]map[string]uint64 // destination label -> class -> n
	labelled   map[string]bool              // destinations with their own label
	rawDest    map[string]uint64            // before loaded: attempts per destination
	hard, soft uint64
	complaints uint64
	deadTotal  uint64
	accepted   map[string]uint64 // by source
	suppressed map[string]uint64 // by reason
	latency    map[store.Lane]*histogram
}

type histogram struct {
	counts []uint64 // per bucket (not cumulative)
	sum    float64
	n      uint64
}

// LatencyBuckets are the upper bounds (seconds) of the delivery latency
// histogram: from half a second to a day.
var LatencyBuckets = []float64{0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400}

// Lanes in the order metrics list them.
var lanes = []store.Lane{store.LaneHigh, store.LaneNormal, store.LaneLow}

// counted are the event types the counters read.
var counted = []string{store.EventDelivered, store.EventBounced, store.EventSoftBounce, store.EventDeadLetter,
	store.EventComplaint, store.EventSuppressed}

const batch = 20000

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

var (
	dQueueDepth  = desc("posthorn_queue_depth", "Pending deliveries (one per recipient) by lane and state.", "lane", "state")
	dOldestAge   = desc("posthorn_queue_oldest_age_seconds", "Age since acceptance of the oldest delivery posthorn is trying to deliver (queued, sending or deferred), by lane; 0 when none.", "lane")
	dAttempts    = desc("posthorn_delivery_attempts_total", "Delivery attempts by destination (provider or domain; beyond the top 50: other) and reply class.", "destination", "class")
	dBounces     = desc("posthorn_bounces_total", "Deliveries that bounced: hard (permanent failure, synchronous or by DSN) or soft (recipient-side temporary failures until the queue lifetime ended).", "type")
	dComplaints  = desc("posthorn_complaints_total", "Complaints (ARF feedback reports) received.")
	dDead        = desc("posthorn_dead_letters", "Deliveries in the dead-letter queue now.")
	dDeadTotal   = desc("posthorn_dead_letters_total", "Deliveries that ended in the dead-letter queue.")
	dLatency     = desc("posthorn_delivery_latency_seconds", "Time from acceptance to delivery, by lane.", "lane")
	dAccepted    = desc("posthorn_accepted_total", "Messages accepted, by source (smtp, http, dsn).", "source")
	dSuppressed  = desc("posthorn_suppressed_total", "Deliveries not attempted because the address was suppressed, by reason.", "reason")
	dDestConns   = desc("posthorn_destination_connections", "Open delivery connections by destination (top 50 by activity; the rest summed as other).", "destination")
	dDestRate    = desc("posthorn_destination_rate_per_minute", "Messages per minute the destination's throttle allows now (0: unlimited), top 50 by activity.", "destination")
	dDestPaused  = desc("posthorn_destination_paused", "1 while the destination is paused after a rate-limit reply (for other: how many are paused).", "destination")
	dOutbox      = desc("posthorn_webhook_outbox_depth", "Webhook deliveries waiting in the outbox.")
	dBlocklisted = desc("posthorn_blocklist_listed", "1 while the target (a sending IP or domain) is listed on the DNS blocklist, else 0.", "list", "target")
	dCommits     = desc("posthorn_store_commits_total", "Group commits of the store's single writer (each one transaction and, with SQLite, one fsync).")
	dWrites      = desc("posthorn_store_write_requests_total", "Write requests (an accepted batch, a lease, an outcome, ...) the writer's commits carried.")
	dWriterBusy  = desc("posthorn_store_writer_busy_seconds_total", "Time the store's single writer spent on writes, by phase: exec (running the requests' statements) and commit (writing the transaction out, its fsync included). A rate near 1 means the writer is the bound.", "phase")
	dDNSQueries  = desc("posthorn_dns_queries_total", "DNS queries the delivery resolver sent (each once, whatever its retransmissions).")
	dDNSRetrans  = desc("posthorn_dns_retransmits_total", "DNS queries sent again after a try's timeout: datagrams lost on the way, or a slow resolver.")
	dDNSFailures = desc("posthorn_dns_failures_total", "Lookups no DNS server answered (timeouts, refusals, SERVFAIL; a domain that does not exist is an answer).")
	allDescs     = []*prometheus.Desc{dDNSQueries, dDNSRetrans, dDNSFailures, dQueueDepth, dOldestAge, dAttempts, dBounces, dComplaints, dDead, dDeadTotal, dLatency, dAccepted, dSuppressed, dDestConns, dDestRate, dDestPaused, dOutbox, dBlocklisted, dCommits, dWrites, dWriterBusy}
	pendingOrder = store.PendingStates
)

// New returns a collector; Start begins reading the history.
func New(cfg Config) *Collector {
	if cfg.ShapeTTL <= 0 {
		cfg.ShapeTTL = time.Second
	}
	if cfg.TopDestinations <= 0 {
		cfg.TopDestinations = 50
	}
	if cfg.SaveEvery <= 0 {
		cfg.SaveEvery = time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Destination == nil {
		cfg.Destination = func(domain, provider string) string {
			if provider != "" {
				return "provider:" + provider
			}
			return domain
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Collector{cfg: cfg, ctx: ctx, cancel: cancel, c: counters{attempts: map[string]map[string]uint64{}, labelled: map[string]bool{},
		rawDest: map[string]uint64{}, accepted: map[string]uint64{}, suppressed: map[string]uint64{}, latency: map[store.Lane]*histogram{}}}
}

// Start brings the counters up to date in the background (from the saved
// state, or the whole history), so the first scrape does not have to,
// and then saves them every SaveEvery.
func (c *Collector) Start() {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.mu.Lock()
		err := c.advance(c.ctx)
		c.mu.Unlock()
		if err != nil && c.ctx.Err() == nil {
			c.cfg.Log.Error("metrics: read the store's history", "err", err)
		}
		t := time.NewTicker(c.cfg.SaveEvery)
		defer t.Stop()
		for {
			select {
			case <-c.ctx.Done():
				return
			case <-t.C:
			}
			c.mu.Lock()
			err := c.advance(c.ctx)
			c.mu.Unlock()
			if err == nil {
				err = c.save(c.ctx)
			}
			if err != nil && c.ctx.Err() == nil {
				c.cfg.Log.Warn("metrics: save the counters", "err", err)
			}
		}
	}()
}

// Stop ends the background work, waits for it and saves the counters.
func (c *Collector) Stop() {
	c.cancel()
	c.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.save(ctx); err != nil {
		c.cfg.Log.Warn("metrics: save the counters", "err", err)
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allDescs {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ctx := context.Background()
	if err := c.advance(ctx); err != nil {
		c.cfg.Log.Error("metrics: read counters from the store", "err", err)
		ch <- prometheus.NewInvalidMetric(dAttempts, err)
	} else {
		c.collectCounters(ch)
	}
	if err := c.collectShape(ctx, ch); err != nil {
		c.cfg.Log.Error("metrics: queue shape", "err", err)
		ch <- prometheus.NewInvalidMetric(dQueueDepth, err)
	}
	c.collectDestinations(ch)
	depth := 0
	if c.cfg.WebhookOutboxDepth != nil {
		depth = c.cfg.WebhookOutboxDepth()
	}
	ch <- prometheus.MustNewConstMetric(dOutbox, prometheus.GaugeValue, float64(depth))
	if w, ok := c.cfg.Store.(writerStats); ok {
		st := w.WriterStats()
		ch <- prometheus.MustNewConstMetric(dCommits, prometheus.CounterValue, float64(st.Commits))
		ch <- prometheus.MustNewConstMetric(dWrites, prometheus.CounterValue, float64(st.Requests))
		ch <- prometheus.MustNewConstMetric(dWriterBusy, prometheus.CounterValue, st.Exec.Seconds(), "exec")
		ch <- prometheus.MustNewConstMetric(dWriterBusy, prometheus.CounterValue, st.Commit.Seconds(), "commit")
	}
	if c.cfg.DNS != nil {
		d := c.cfg.DNS()
		ch <- prometheus.MustNewConstMetric(dDNSQueries, prometheus.CounterValue, float64(d.Queries))
		ch <- prometheus.MustNewConstMetric(dDNSRetrans, prometheus.CounterValue, float64(d.Retransmits))
		ch <- prometheus.MustNewConstMetric(dDNSFailures, prometheus.CounterValue, float64(d.Failures))
	}
	if c.cfg.Blocklists != nil {
		for _, b := range c.cfg.Blocklists() {
			v := 0.0
			if b.Listed {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(dBlocklisted, prometheus.GaugeValue, v, b.List, b.Target)
		}
	}
}

// Handler serves the metrics (with Go runtime and process metrics) in the
// Prometheus text format.
func (c *Collector) Handler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(c, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// advance reads the rows added to the store since the cursors, the first
// time from the saved state when there is one. Caller holds c.mu.
func (c *Collector) advance(ctx context.Context) error {
	st := c.cfg.Store
	if !c.restored {
		if err := c.restore(ctx); err != nil {
			return err
		}
		c.restored = true
	}
	for {
		as, err := st.AttemptsAfter(ctx, c.c.attemptCur, batch)
		if err != nil {
			return err
		}
		for _, a := range as {
			c.c.attemptCur = a.ID
			if a.Class == "suppressed" {
				continue // dropped before sending: not an attempt
			}
			c.countAttempt(c.cfg.Destination(a.Domain, a.Provider), a.Class)
		}
		if len(as) < batch {
			break
		}
	}
	for {
		evs, next, err := st.EventsAfter(ctx, c.c.eventCur, counted, batch)
		if err != nil {
			return err
		}
		for _, e := range evs {
			c.countEvent(e)
		}
		if next == c.c.eventCur {
			break
		}
		if next < c.c.eventCur {
			// The log's IDs went back: SQLite after retention emptied it
			// (it deletes the oldest first, so the newest goes only with
			// all the others) gives IDs from 1 again. Every event there
			// is came after: count them all. (Retention could also take
			// the newest alone, when it is older than events written
			// before it and the log holds fewer than four batches; the
			// few left would then count twice.)
			c.cfg.Log.Warn("metrics: the event log's IDs went back below the cursor; counting it again from the start",
				"cursor", c.c.eventCur, "highest", next)
			next = 0
		}
		c.c.eventCur = next
	}
	for {
		ms, err := st.MessagesAfter(ctx, c.c.messageCur, batch)
		if err != nil {
			return err
		}
		for _, m := range ms {
			c.c.messageCur = m.Cursor
			c.c.accepted[m.Source]++
		}
		if len(ms) < batch {
			break
		}
	}
	if !c.c.loaded {
		c.pickLabels()
		c.c.loaded = true
	}
	return nil
}

func (c *Collector) countAttempt(dest, class string) {
	if !c.c.loaded {
		c.c.rawDest[dest]++
	} else if !c.c.labelled[dest] {
		if len(c.c.labelled) < c.cfg.TopDestinations {
			c.c.labelled[dest] = true
		} else {
			dest = "other"
		}
	}
	m := c.c.attempts[dest]
	if m == nil {
		m = map[string]uint64{}
		c.c.attempts[dest] = m
	}
	m[class]++
}

// pickLabels keeps the destinations with the most attempts in the history
// and folds the rest into "other". Caller holds c.mu.
func (c *Collector) pickLabels() {
	type dn struct {
		d string
		n uint64
	}
	var all []dn
	for d, n := range c.c.rawDest {
		all = append(all, dn{d, n})
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].n != all[j].n {
			return all[i].n > all[j].n
		}
		return all[i].d < all[j].d
	})
	for i, x := range all {
		if i < c.cfg.TopDestinations {
			c.c.labelled[x.d] = true
			continue
		}
		other := c.c.attempts["other"]
		if other == nil {
			other = map[string]uint64{}
			c.c.attempts["other"] = other
		}
		for cls, n := range c.c.attempts[x.d] {
			other[cls] += n
		}
		delete(c.c.attempts, x.d)
	}
	c.c.rawDest = nil
}

func (c *Collector) countEvent(e store.EventRow) {
	switch e.Type {
	case store.EventDelivered:
		if e.Lane == "" || e.CreatedAt.IsZero() {
			return
		}
		h := c.c.latency[e.Lane]
		if h == nil {
			h = &histogram{counts: make([]uint64, len(LatencyBuckets)+1)}
			c.c.latency[e.Lane] = h
		}
		secs := max(0, e.At.Sub(e.CreatedAt).Seconds())
		i := sort.SearchFloat64s(LatencyBuckets, secs) // first bound >= secs
		h.counts[i]++
		h.sum += secs
		h.n++
	case store.EventBounced:
		c.c.hard++
	case store.EventSoftBounce:
		c.c.soft++
	case store.EventDeadLetter:
		c.c.deadTotal++
	case store.EventComplaint:
		c.c.complaints++
	case store.EventSuppressed:
		c.c.suppressed[c.suppressionReason(e)]++
	}
}

// suppressionReason is the reason of a suppressed event: written in the
// text of one dropped before sending ("suppressed before delivery
// (REASON: entry)"), asked of the suppression lists for one suppressed at
// accept time.
func (c *Collector) suppressionReason(e store.EventRow) string {
	if _, rest, ok := strings.Cut(e.Text, "suppressed before delivery ("); ok {
		if r, _, ok := strings.Cut(rest, ":"); ok && r != "" {
			return r
		}
	}
	if c.cfg.SuppressionReason != nil {
		if r := c.cfg.SuppressionReason(e.TenantID, e.Recipient); r != "" {
			return r
		}
	}
	return "unknown"
}

func (c *Collector) collectCounters(ch chan<- prometheus.Metric) {
	for dest, m := range c.c.attempts {
		for cls, n := range m {
			ch <- prometheus.MustNewConstMetric(dAttempts, prometheus.CounterValue, float64(n), dest, cls)
		}
	}
	ch <- prometheus.MustNewConstMetric(dBounces, prometheus.CounterValue, float64(c.c.hard), "hard")
	ch <- prometheus.MustNewConstMetric(dBounces, prometheus.CounterValue, float64(c.c.soft), "soft")
	ch <- prometheus.MustNewConstMetric(dComplaints, prometheus.CounterValue, float64(c.c.complaints))
	ch <- prometheus.MustNewConstMetric(dDeadTotal, prometheus.CounterValue, float64(c.c.deadTotal))
	for src, n := range c.c.accepted {
		ch <- prometheus.MustNewConstMetric(dAccepted, prometheus.CounterValue, float64(n), src)
	}
	for r, n := range c.c.suppressed {
		ch <- prometheus.MustNewConstMetric(dSuppressed, prometheus.CounterValue, float64(n), r)
	}
	for _, l := range lanes {
		h := c.c.latency[l]
		if h == nil {
			h = &histogram{counts: make([]uint64, len(LatencyBuckets)+1)}
		}
		cum := map[float64]uint64{}
		var run uint64
		for i, b := range LatencyBuckets {
			run += h.counts[i]
			cum[b] = run
		}
		ch <- prometheus.MustNewConstHistogram(dLatency, h.n, h.sum, cum, string(l))
	}
}

// collectShape emits the queue gauges from the store's aggregate (cached
// for ShapeTTL). Caller holds c.mu.
func (c *Collector) collectShape(ctx context.Context, ch chan<- prometheus.Metric) error {
	now := c.cfg.Now()
	if c.shape == nil || now.Sub(c.shapeAt) >= c.cfg.ShapeTTL {
		rows, err := c.cfg.Store.QueueShape(ctx)
		if err != nil {
			return err
		}
		if rows == nil {
			rows = []store.ShapeRow{}
		}
		c.shape, c.shapeAt = rows, now
	}
	type key struct {
		l store.Lane
		s store.State
	}
	depth := map[key]int{}
	oldest := map[store.Lane]time.Time{}
	dead := 0
	for _, r := range c.shape {
		if r.State == store.DeadLetter {
			dead += r.Count
			continue
		}
		depth[key{r.Lane, r.State}] += r.Count
		if r.State == store.Queued || r.State == store.Sending || r.State == store.Deferred {
			if o, ok := oldest[r.Lane]; !ok || r.Oldest.Before(o) {
				oldest[r.Lane] = r.Oldest
			}
		}
	}
	for _, l := range lanes {
		for _, s := range pendingOrder {
			ch <- prometheus.MustNewConstMetric(dQueueDepth, prometheus.GaugeValue, float64(depth[key{l, s}]), string(l), string(s))
		}
		age := 0.0
		if o, ok := oldest[l]; ok && !o.IsZero() {
			age = max(0, now.Sub(o).Seconds())
		}
		ch <- prometheus.MustNewConstMetric(dOldestAge, prometheus.GaugeValue, age, string(l))
	}
	ch <- prometheus.MustNewConstMetric(dDead, prometheus.GaugeValue, float64(dead))
	return nil
}

// collectDestinations emits the scheduler's destination gauges: the top
// destinations by activity (ready deliveries, connections, sends in the
// last minute) by name, the rest summed as "other".
func (c *Collector) collectDestinations(ch chan<- prometheus.Metric) {
	if c.cfg.Sched == nil {
		return
	}
	gs := c.cfg.Sched.DestinationGauges()
	activity := func(g queue.DestinationGauge) int { return g.Ready + g.Connections + g.SentLastMin }
	sort.Slice(gs, func(i, j int) bool {
		if a, b := activity(gs[i]), activity(gs[j]); a != b {
			return a > b
		}
		return gs[i].Key < gs[j].Key
	})
	var otherConns, otherPaused int
	for i, g := range gs {
		paused := 0
		if g.Paused {
			paused = 1
		}
		if i >= c.cfg.TopDestinations {
			otherConns += g.Connections
			otherPaused += paused
			continue
		}
		ch <- prometheus.MustNewConstMetric(dDestConns, prometheus.GaugeValue, float64(g.Connections), g.Key)
		ch <- prometheus.MustNewConstMetric(dDestRate, prometheus.GaugeValue, g.RatePerMinute, g.Key)
		ch <- prometheus.MustNewConstMetric(dDestPaused, prometheus.GaugeValue, float64(paused), g.Key)
	}
	if len(gs) > c.cfg.TopDestinations {
		ch <- prometheus.MustNewConstMetric(dDestConns, prometheus.GaugeValue, float64(otherConns), "other")
		ch <- prometheus.MustNewConstMetric(dDestPaused, prometheus.GaugeValue, float64(otherPaused), "other")
	}
}

// Protect serves h only to requests allow accepts; others get 401.
func Protect(h http.Handler, allow func(*http.Request) bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !allow(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="posthorn metrics"`)
			http.Error(w, "metrics need an API key with the admin scope (Authorization: Bearer <key>), or the metrics listener", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}
