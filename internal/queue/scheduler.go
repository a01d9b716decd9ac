// Package queue is posthorn's in-memory scheduler and its delivery
// workers. Every pending delivery lives here, rebuilt from the store at
// start-up: a timer heap holds jobs not yet due (deferred, send_at), and
// each destination has ready lists per lane, drained by up to N connection
// workers that reuse their SMTP session for the next job. Nothing polls the
// database.
//
// Invariants:
//   - A delivery is leased in the store (state sending, next attempt pushed
//     out) before it is sent, and its outcome is recorded before it is
//     rescheduled or forgotten; so a crash mid-attempt gives a delayed
//     retry, and two workers never hold the same delivery.
//   - known holds every delivery the scheduler owns, so an operator's
//     change (hold, delete, flush) can find and drop it, and the same
//     delivery is never enqueued twice.
//   - A delivery's queue lifetime is kept whatever its destination does:
//     a job still waiting in a ready list RetryMin/2 after its lifetime
//     ended (the destination paused or saturated) ends as dead_letter (or
//     soft_bounced) without another attempt, its last reply kept.
//   - Failures are shared only where they belong: a DNS failure stays
//     with its domain; a host-level failure (connect, greeting, TLS) is
//     given to the other ready jobs that would use only the failed hosts.
//   - A delivery left in sending after its lease ended (its outcome could
//     not be recorded) is returned to the queue by a periodic rescuer.
//   - Stop cancels dials and SMTP sessions in progress; an interrupted
//     attempt is recorded as deferred, due at once on the next start.
//
// Recipients of a job share SMTP transactions (up to the destination's
// recipient limit), except when each copy must differ: with VERP return
// paths (Config.ReturnPath, one per delivery) or List-Unsubscribe headers,
// each recipient gets its own transaction on the same connection.
package queue

import (
	"container/heap"
	"context"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/posthorn/posthorn/internal/classify"
	"github.com/posthorn/posthorn/internal/delivery"
	"github.com/posthorn/posthorn/internal/shaping"
	"github.com/posthorn/posthorn/internal/smtpproto"
	"github.com/posthorn/posthorn/internal/store"
)

// Config tunes the scheduler.
type Config struct {
	RetryMin        time.Duration
	RetryMax        time.Duration
	MaxConnections  int // all destinations together
	MaxConnsPerDest int
	MaxMsgsPerConn  int
	IdleTimeout     time.Duration // an idle connection waits this long for more work
	RatePerMinute   float64       // per destination; 0: unlimited
	Cooldown        time.Duration // pause after a rate_limited reply
	// Limits, when set, gives a destination's own limits (per-provider
	// built-ins and config overrides); otherwise the fields above apply.
	Limits func(dest string) shaping.Limits
	// Classifier decides the class of each reply (nil: the built-in rules).
	Classifier *classify.Classifier
	// Suppressions, when set, is checked just before each send and told
	// about hard bounces.
	Suppressions Suppressions
	// An address that soft-bounced OnHoldAfter times within OnHoldWindow
	// is put on hold for OnHoldFor (0 disables).
	OnHoldAfter  int
	OnHoldWindow time.Duration
	OnHoldFor    time.Duration
	// ReturnPath, when set, gives the envelope sender to use for one
	// delivery (VERP); each recipient then goes in its own transaction,
	// since the return path names the recipient. Messages with the null
	// sender keep it, and their grouping.
	ReturnPath func(messageID string, deliveryID int64) (string, error)
	// Unsubscribe, when set, gives the List-Unsubscribe header lines for
	// one delivery; mail in UnsubscribeLanes gets them, one recipient per
	// transaction (the header names the recipient).
	Unsubscribe      func(deliveryID int64) []byte
	UnsubscribeLanes map[store.Lane]bool
	// SignPending signs a message still waiting for its DKIM signature
	// (internal/dkimqueue) and stores it; such a message is never sent
	// unsigned: without SignPending, or when it fails, its deliveries
	// are deferred.
	SignPending func(ctx context.Context, m *store.Message) (*store.Message, error)
	// SignAdded, when set, gives a DKIM-Signature field covering the
	// List-Unsubscribe fields added to one delivery of m (whose stored
	// signature cannot cover them); it goes on top of them. On error the
	// delivery is sent with the stored signature only.
	SignAdded func(m *store.Message, added []byte) ([]byte, error)
	// Signing, when set, tells whether a message's DKIM signature is
	// being computed in the background, which enqueues its deliveries
	// once it is stored: the loader leaves such deliveries to it, so a
	// delivery worker does not sign at full priority what the
	// low-priority signers would (internal/dkimqueue).
	Signing func(messageID string) bool
	// OnFailed, when set, is told (in the background) about deliveries
	// that reached bounced, soft_bounced or dead_letter.
	OnFailed func(messageID string, failed []FailedRcpt)
	// Source, when set, chooses the source address (and EHLO name) of a
	// job (internal/pool); ok false means every address is at its warm-up
	// cap and the job waits until wait.
	Source func(q SourceQuery) (src delivery.Source, wait time.Time, ok bool)
	// Cluster, when set, shares the queue with other nodes (cluster.go).
	Cluster Cluster
	// Window and MaxLoaded bound the memory of the queue (load.go): only
	// deliveries due within Window (0: a minute) are held in memory, and
	// the store's due mail is loaded while fewer than MaxLoaded (0: 50,000)
	// are held.
	Window    time.Duration
	MaxLoaded int
	// Now is the clock (nil: time.Now). Timers still run in real time:
	// a test that moves the clock calls Poke.
	Now func() time.Time
}

// FailedRcpt is one finally failed recipient, for OnFailed.
type FailedRcpt struct {
	Addr    string
	Outcome store.Outcome
}

// Suppressions is the scheduler's view of the suppression lists.
type Suppressions interface {
	Check(tenantID, addr string) (store.Suppression, bool)
	Add(ctx context.Context, ss ...store.Suppression) error
}

// Scheduler owns pending deliveries and the workers that send them.
type Scheduler struct {
	cfg Config
	st  store.Store
	dl  *delivery.Deliverer
	log *slog.Logger
	now func() time.Time

	mu       sync.Mutex
	timers   jobHeap
	expiring expiryHeap // ready jobs, by when they are given up
	dests    map[string]*dest
	known    map[int64]*Job
	leased   map[int64]bool // deliveries this scheduler holds in sending
	conns    int
	seq      uint64
	stopped  bool                   // no goroutine may start any more
	hooks    alertHooks             // alerthooks.go: rate caps and held lanes
	drainCh  chan struct{}          // closed by Drain (drain.go): no job starts any more
	manual   map[string]ManualPause // operators' pauses by destination key (pause.go)
	// sharedCuts are other nodes' throttle cuts by destination (cluster.go).
	sharedCuts map[string]store.SharedThrottle

	// Bodies holds recently accepted messages for their first attempt.
	Bodies *Bodies

	live live // settings a configuration reload changes (reload.go)

	// The loader (load.go): its position in the store's due order, the
	// farthest due time it asked for, and how many rows it read.
	loadCur   store.DueCursor
	scanUntil time.Time
	loaded    int
	loadWake  chan struct{}
	// Destinations with ready mail and no connection, waiting for one
	// under MaxConnections, in arrival order; those with high-lane mail
	// are served first (slots.go).
	slotWait, slotWaitHigh []*dest
	// strs interns the strings many jobs share (tenant, sender, domain,
	// lane, class), so each is held once, not once per loaded row.
	strs map[string]string

	wake   chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// dest is one destination's ready work and connections.
type dest struct {
	key    string
	ready  [3]laneQueue // by lane: high, normal, low
	nready int
	active int           // connection workers
	idle   int           // workers waiting for work
	avail  chan struct{} // wakes an idle worker
	picks  uint64
	th     *shaping.Throttle
	src    delivery.Source // the source address of this destination's connections
	sent   []time.Time     // send times in the last minute (observed rate)
	recent [64]string      // classes of the latest results, a ring
	nres   int
	rekick *time.Timer // kicks this destination when its pause ends
	// In Scheduler.slotWait / slotWaitHigh: waiting for a connection slot.
	inSlotWait, inSlotWaitHigh bool
	// pauseReply is the latest rate-limit reply: the reason for a pause,
	// given to deliveries that expire without an attempt of their own.
	pauseReply smtpproto.Reply
	// slotWait: the cluster's connection budget was used up; ask again
	// then (cluster.go).
	slotWait time.Time
}

// New returns a scheduler; Start loads pending work and runs it.
func New(cfg Config, st store.Store, dl *delivery.Deliverer, log *slog.Logger) *Scheduler {
	if cfg.Classifier == nil {
		cfg.Classifier = classify.Default()
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Scheduler{cfg: cfg, st: st, dl: dl, log: log, now: now, ctx: ctx, cancel: cancel, Bodies: NewBodies(64 << 20),
		dests: map[string]*dest{}, known: map[int64]*Job{}, sharedCuts: map[string]store.SharedThrottle{}, leased: map[int64]bool{}, wake: make(chan struct{}, 1), loadWake: make(chan struct{}, 1)}
}

// wakeTimer makes the timer loop look at its deadlines again.
func (s *Scheduler) wakeTimer() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Poke makes the timer loop and the loader look at the clock again (for
// tests that move an injected clock).
func (s *Scheduler) Poke() {
	for _, c := range []chan struct{}{s.wake, s.loadWake} {
		select {
		case c <- struct{}{}:
		default:
		}
	}
}

// Start recovers deliveries a previous run left in sending, loads the
// first page of pending deliveries in due order, and starts the timer loop
// and the loader, which loads the rest in the background (load.go).
func (s *Scheduler) Start(ctx context.Context) error {
	if s.cfg.Cluster != nil {
		return s.clusterStart(ctx)
	}
	n, err := s.st.RecoverLeases(ctx, s.now())
	if err != nil {
		return err
	}
	if n > 0 {
		s.log.Warn("recovered deliveries that were being sent when posthorn stopped", "count", n)
	}
	first, _, _, err := s.loadOnce(ctx, firstPage)
	if err != nil {
		return err
	}
	s.log.Info("scheduler started", "loaded", first)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return nil
	}
	s.wg.Add(3)
	go s.timerLoop()
	go s.rescueLoop()
	go s.loadLoop()
	return nil
}

// Stop ends the timer loop, cancels dials and SMTP sessions in progress
// (their deliveries are recorded as deferred) and waits until workers have
// recorded what they hold, or ctx ends.
func (s *Scheduler) Stop(ctx context.Context) error {
	s.mu.Lock()
	s.stopped = true // from here on, nothing calls s.wg.Add from outside a counted goroutine
	for _, d := range s.dests {
		if d.rekick != nil {
			d.rekick.Stop()
			d.rekick = nil
		}
	}
	s.mu.Unlock()
	s.cancel()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if s.cfg.Cluster != nil {
		// What this node holds and is not sending goes back to the cluster.
		if lerr := s.cfg.Cluster.Leave(context.WithoutCancel(ctx)); lerr != nil {
			s.log.Error("leave the cluster", "err", lerr)
		}
	}
	return err
}

// Enqueue adds stored deliveries. Deliveries already known, held or final
// are ignored, and so are those due after the memory window: the loader
// brings them back when due (load.go). Recipients of one message at one domain due at the same
// time become one job.
func (s *Scheduler) Enqueue(ds []store.Delivery) {
	type key struct {
		msg, domain string
		due         int64
	}
	groups := map[key]*Job{}
	var order []*Job
	s.fillSenders(ds)
	s.mu.Lock()
	defer s.mu.Unlock()
	keep := s.keepUntil(s.now())
	for i := range ds {
		d := &ds[i]
		if s.known[d.ID] != nil || d.State.Final() || d.State == store.Held || d.NextAttemptAt.After(keep) {
			continue
		}
		k := key{d.MessageID, d.Domain, d.NextAttemptAt.UnixMilli()}
		j := groups[k]
		if j == nil {
			j = &Job{MessageID: d.MessageID, TenantID: s.intern(d.TenantID), Sender: s.intern(d.Sender), Domain: s.intern(d.Domain),
				Lane: store.Lane(s.intern(string(d.Lane))), Due: d.NextAttemptAt, hidx: -1}
			groups[k] = j
			order = append(order, j)
		}
		j.Rcpts = append(j.Rcpts, Rcpt{ID: d.ID, Addr: d.Recipient, Attempts: d.Attempts, ExpiresAt: d.ExpiresAt, LastClass: s.intern(d.LastClass)})
		s.known[d.ID] = j
	}
	now := s.now()
	for _, j := range order {
		s.schedule(j, now)
	}
}

// intern returns the held copy of v. Caller holds s.mu.
func (s *Scheduler) intern(v string) string {
	if x, ok := s.strs[v]; ok {
		return x
	}
	if s.strs == nil || len(s.strs) >= 100_000 {
		s.strs = map[string]string{} // many distinct values: start over rather than grow without bound
	}
	s.strs[v] = v
	return v
}

// Remove drops deliveries the store no longer has pending as the
// scheduler knows them (an operator held, deleted or rescheduled them). A
// delivery in flight is marked so that its attempt, once recorded, is not
// rescheduled from memory: finish reads what the store says. It returns
// the IDs it dropped.
func (s *Scheduler) Remove(ids []int64) []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []int64
	for _, id := range ids {
		j := s.known[id]
		if j == nil {
			continue
		}
		delete(s.known, id)
		out = append(out, id)
		if j.where == inFlight {
			if j.dropped == nil {
				j.dropped = map[int64]bool{}
			}
			j.dropped[id] = true
			continue
		}
		for i, r := range j.Rcpts {
			if r.ID == id {
				j.Rcpts = append(j.Rcpts[:i], j.Rcpts[i+1:]...)
				break
			}
		}
		if len(j.Rcpts) > 0 {
			continue
		}
		switch j.where {
		case inHeap:
			heap.Remove(&s.timers, j.hidx)
		case inReady:
			j.removed = true
			j.dest.nready--
			s.unwatch(j)
		}
		j.where = nowhere
	}
	return out
}

// Reschedule replaces what the scheduler holds for ds with ds as they are
// now (after a flush, release or requeue).
func (s *Scheduler) Reschedule(ds []store.Delivery) {
	ids := make([]int64, len(ds))
	for i, d := range ds {
		ids[i] = d.ID
	}
	s.Remove(ids)
	s.Enqueue(ds)
}

// DestinationInfo describes one destination for `posthorn destinations`.
type DestinationInfo struct {
	Key         string         `json:"destination"`
	Connections int            `json:"connections"`
	Ready       int            `json:"ready"`
	Waiting     int            `json:"deferred"` // deliveries waiting for a later attempt (to the destination from any source address)
	Recent      map[string]int `json:"recent_classes"`
	SentLastMin int            `json:"sent_last_minute"`
	Throttle    shaping.State  `json:"throttle"`
	Paused      bool           `json:"paused"`
	Manual      *ManualPause   `json:"manual_pause,omitempty"` // an operator's pause (pause.go)
}

// Destinations lists the destinations the scheduler holds state for.
func (s *Scheduler) Destinations() []DestinationInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	waiting := map[string]int{}
	for _, j := range s.timers {
		waiting[s.dl.Destination(j.Domain)] += len(j.Rcpts)
	}
	out := make([]DestinationInfo, 0, len(s.dests))
	for _, d := range s.dests {
		st := d.th.State()
		rc := map[string]int{}
		for i := 0; i < min(d.nres, len(d.recent)); i++ {
			rc[d.recent[i]]++
		}
		info := DestinationInfo{Key: d.key, Connections: d.active, Ready: d.nready, Waiting: waiting[baseDest(d.key)],
			Recent: rc, SentLastMin: d.recentCount(now), Throttle: st, Paused: now.Before(st.PausedUntil)}
		if p, ok := s.manualPause(d, now); ok {
			info.Manual, info.Paused = &p, true
		}
		out = append(out, info)
	}
	// Paused destinations without state (their mail all on timers) are
	// listed too, so their pause shows and can be lifted.
	for k, p := range s.manual {
		if s.dests[k] == nil && p.active(now) {
			p := p
			out = append(out, DestinationInfo{Key: k, Recent: map[string]int{}, Waiting: waiting[k], Paused: true, Manual: &p,
				Throttle: shaping.New(s.limits(k)).State()})
		}
	}
	return out
}

// rateEstimate is the destination's recent acceptance rate per minute:
// the last minute's count, or the last ten seconds' scaled up when that is
// higher (a burst shortly after start says more than a mostly empty
// minute). Caller holds s.mu.
func (d *dest) rateEstimate(now time.Time) int {
	minute := d.recentCount(now)
	// d.sent is in time order: a binary search, not a walk over up to ten
	// seconds of sends on every delivery (at 1,500 a second that walk was
	// 2% of the server's CPU, under s.mu).
	short := len(d.sent) - sort.Search(len(d.sent), func(i int) bool { return now.Sub(d.sent[i]) <= 10*time.Second })
	return max(minute, short*6)
}

// recentCount counts sends in the last minute. Caller holds s.mu.
func (d *dest) recentCount(now time.Time) int {
	cut := 0
	for cut < len(d.sent) && now.Sub(d.sent[cut]) > time.Minute {
		cut++
	}
	d.sent = d.sent[cut:]
	return len(d.sent)
}

// Stats is a snapshot for health and listings.
type Stats struct {
	Known       int `json:"known"`
	Waiting     int `json:"waiting"`
	Ready       int `json:"ready"`
	Connections int `json:"connections"`
}

// Stats returns counts of what the scheduler holds.
func (s *Scheduler) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{Known: len(s.known), Waiting: len(s.timers), Connections: s.conns}
	for _, d := range s.dests {
		st.Ready += d.nready
	}
	return st
}

// schedule puts j in the heap or, when due, in its destination's ready
// list. Caller holds s.mu.
func (s *Scheduler) schedule(j *Job, now time.Time) {
	s.seq++
	j.seq = s.seq
	j.removed = false
	if j.Due.After(now) {
		j.where = inHeap
		heap.Push(&s.timers, j)
		if j.hidx == 0 {
			select {
			case s.wake <- struct{}{}:
			default:
			}
		}
		return
	}
	s.makeReady(j, now)
}

func (s *Scheduler) makeReady(j *Job, now time.Time) {
	if s.park(j) {
		return
	}
	key, src, wait := s.destKey(j, now)
	if !wait.IsZero() {
		s.waitForSource(j, wait, now)
		return
	}
	d := s.dests[key]
	if d == nil {
		d = s.newDest(key)
		d.src = src
	}
	j.dest, j.where = d, inReady
	d.ready[laneIndex(j.Lane)].push(j)
	d.nready++
	s.watch(j, now)
	if j.Lane == store.LaneHigh && d.active == 0 {
		s.kickWithin(d, s.highLimit())
	} else {
		s.kick(d)
	}
}

func (s *Scheduler) newDest(key string) *dest {
	lim := shaping.Limits{MaxConns: s.cfg.MaxConnsPerDest, MaxMsgsPerConn: s.cfg.MaxMsgsPerConn,
		RatePerMinute: s.cfg.RatePerMinute, Cooldown: s.cfg.Cooldown}
	if s.cfg.Limits != nil {
		lim = s.cfg.Limits(baseDest(key))
	}
	d := &dest{key: key, avail: make(chan struct{}, max(1, lim.MaxConns)), th: shaping.New(lim)}
	if c, ok := s.sharedCuts[baseDest(key)]; ok && c.PausedUntil.After(s.now()) {
		// No history here yet: take the other node's connections and pause.
		d.th.Adopt(c.Conns, 0, c.PausedUntil, c.Reason+" (seen by node "+c.Node+")", s.now())
	}
	s.dests[key] = d
	s.applyCap(d)
	return d
}

// kick wakes an idle worker of d or starts a new one within the limits.
// Caller holds s.mu.
func (s *Scheduler) kick(d *dest) { s.kickWithin(d, s.cfg.MaxConnections) }

// kickWithin is kick with limit as the cap on all connections: above
// MaxConnections for high-lane mail (slots.go). Caller holds s.mu.
func (s *Scheduler) kickWithin(d *dest, limit int) {
	if d.nready == 0 {
		return
	}
	if d.idle > 0 {
		select {
		case d.avail <- struct{}{}:
		default:
		}
		return
	}
	if s.conns >= limit && d.active == 0 && !s.stopped {
		s.waitForSlot(d, limit > s.cfg.MaxConnections)
	}
	if d.active >= d.th.Conns() || s.conns >= limit || s.stopped || s.draining() {
		return
	}
	if s.holdManual(d) {
		return
	}
	if s.now().Before(d.slotWait) {
		s.kickAt(d, d.slotWait) // the cluster's connections to it are all in use
		return
	}
	if until := d.th.PausedUntil(); s.now().Before(until) {
		s.kickAt(d, until)
		return
	}
	d.active++
	s.conns++
	s.wg.Add(1)
	go s.worker(d)
}

// kickAt kicks d again at t (when its pause ends). Caller holds s.mu.
func (s *Scheduler) kickAt(d *dest, t time.Time) {
	if d.rekick != nil || s.stopped {
		return
	}
	var tm *time.Timer
	tm = time.AfterFunc(t.Sub(s.now())+time.Millisecond, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if d.rekick != tm {
			return // stopped
		}
		d.rekick = nil
		if s.dests[d.key] == d {
			s.kick(d)
		}
	})
	d.rekick = tm
}

func (s *Scheduler) timerLoop() {
	defer s.wg.Done()
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		s.mu.Lock()
		now := s.now()
		for len(s.timers) > 0 && !s.timers[0].Due.After(now) {
			j := heap.Pop(&s.timers).(*Job)
			s.makeReady(j, now)
		}
		for len(s.expiring) > 0 && !s.expiring[0].expireAt.After(now) {
			s.expireReady(heap.Pop(&s.expiring).(*Job), now)
		}
		wait := time.Hour
		if len(s.timers) > 0 {
			wait = s.timers[0].Due.Sub(now)
		}
		if len(s.expiring) > 0 {
			wait = min(wait, s.expiring[0].expireAt.Sub(now))
		}
		s.mu.Unlock()
		t.Reset(wait)
		select {
		case <-t.C:
		case <-s.wake:
			if !t.Stop() {
				select {
				case <-t.C:
				default:
				}
			}
		case <-s.ctx.Done():
			return
		}
	}
}

// take pops the next ready job of d by lane: strictly by priority, except
// that every 10th pick serves normal first and every 20th low first, so
// lower lanes always progress. With wait, it waits up to IdleTimeout for
// work; it returns nil when there is none or the scheduler stops.
func (s *Scheduler) take(d *dest, wait bool) *Job {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		s.mu.Lock()
		if s.ctx.Err() != nil || s.draining() || d.active > d.th.Conns() {
			s.mu.Unlock()
			return nil // stopping, or this destination was throttled down
		}
		drain := s.drainCh // nil (never ready) until Drain
		if s.holdManual(d) {
			s.mu.Unlock()
			return nil // paused by an operator: close this connection
		}
		if d.nready > 0 {
			if w := d.th.Take(s.now()); w > 0 {
				if w > s.cfg.IdleTimeout {
					// Paused for a while: close this connection; a timer
					// brings a worker back when the pause ends.
					s.kickAt(d, s.now().Add(w))
					s.mu.Unlock()
					return nil
				}
				s.mu.Unlock()
				select {
				case <-time.After(w):
				case <-s.ctx.Done():
				case <-drain:
				}
				continue
			}
			if (len(s.slotWaitHigh) > 0 || s.conns > s.cfg.MaxConnections) && !hasHigh(d) {
				// High-lane mail waits for a connection slot elsewhere: give
				// this one up (slots.go).
				s.mu.Unlock()
				return nil
			}
			if j := s.popReady(d); j != nil {
				s.mu.Unlock()
				j.taken, j.setup = s.now(), 0
				return j
			}
		}
		if !wait || len(s.slotWait)+len(s.slotWaitHigh) > 0 {
			// Nothing to do here, or another destination waits for this
			// connection's slot: close it rather than idle.
			s.mu.Unlock()
			return nil
		}
		d.idle++
		s.mu.Unlock()
		if timer == nil {
			timer = time.NewTimer(s.idleTimeout()) // cluster.go
		}
		var got bool
		select {
		case <-d.avail:
			got = true
		case <-timer.C:
		case <-s.ctx.Done():
		case <-drain:
		}
		s.mu.Lock()
		d.idle--
		s.mu.Unlock()
		if !got {
			wait = false // one last look, then give up
		}
	}
}

// popReady takes d's next ready job by lane: strictly by priority, except
// that every 10th pick serves normal first and every 20th low first, so
// lower lanes always progress. Caller holds s.mu.
func (s *Scheduler) popReady(d *dest) *Job {
	if d.nready == 0 {
		return nil
	}
	d.picks++
	order := [3]int{0, 1, 2}
	switch {
	case d.picks%20 == 0:
		order = [3]int{2, 1, 0}
	case d.picks%10 == 0:
		order = [3]int{1, 2, 0}
	}
	for _, l := range order {
		if j := d.ready[l].pop(); j != nil {
			d.nready--
			j.where = inFlight
			s.unwatch(j)
			return j
		}
	}
	return nil
}

// workerDone is called as a worker exits: it gives its connection slot to
// a destination that is waiting for one.
func (s *Scheduler) workerDone(d *dest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d.active--
	s.conns--
	if d.active == 0 && d.nready > 0 && d.idle == 0 {
		// Mail reached d while this worker was leaving (it found nothing
		// to send, or gave its slot up): makeReady did not line d up for
		// a slot then, since d had a worker. It does now, in the high
		// line if it has high-lane mail, before the slot is given.
		s.waitForSlot(d, hasHigh(d))
	}
	s.giveSlots()
	if d.active == 0 && d.nready == 0 && d.idle == 0 && !d.th.State().Throttled && d.rekick == nil &&
		!s.now().Before(d.th.PausedUntil()) {
		delete(s.dests, d.key) // a throttled or paused destination keeps its state
	}
	for _, o := range s.dests {
		if o.nready > 0 && o.idle == 0 && o.active < o.th.Conns() {
			s.kick(o)
			if s.conns >= s.cfg.MaxConnections {
				return
			}
		}
	}
}
