package queue

import (
	"context"
	"fmt"
	"time"

	"github.com/posthorn/posthorn/internal/classify"
	"github.com/posthorn/posthorn/internal/delivery"
	"github.com/posthorn/posthorn/internal/shaping"
	"github.com/posthorn/posthorn/internal/smtpproto"
	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/suppress"
)

// worker is one connection to destination d: it takes jobs until none is
// left for IdleTimeout, reusing its SMTP session between them.
func (s *Scheduler) worker(d *dest) {
	defer s.wg.Done()
	defer s.workerDone(d)
	release, ok := s.takeSlot(d) // the cluster's budget for d (cluster.go); always ok on one node
	if !ok {
		return
	}
	defer release()
	var conn *delivery.Conn
	w := &workerState{}
	defer func() {
		if conn != nil {
			conn.Close()
		}
		w.wait()
	}()
	held := s.now()
	for {
		j := s.take(d, conn != nil)
		if j == nil {
			return
		}
		conn = s.process(d, j, conn, w)
		if s.yieldSlot(d, &held) { // cluster.go
			return
		}
	}
}

// workerState lets a worker record one job's outcome while it leases and
// sends the next: both writes then share a group commit, and the worker
// waits for one commit per message instead of two. At most one outcome is
// in flight per worker.
type workerState struct {
	pending chan struct{}
}

func (w *workerState) wait() {
	if w.pending != nil {
		<-w.pending
		w.pending = nil
	}
}

// finishAsync records j's outcomes in the background (after the previous
// one of this worker is done).
func (s *Scheduler) finishAsync(w *workerState, j *Job, outs []store.Outcome) {
	w.wait()
	done := make(chan struct{})
	w.pending = done
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(done)
		s.finish(j, outs)
	}()
}

// process sends one job and records the outcome; it returns the
// connection to use next (nil when it was closed or failed).
func (s *Scheduler) process(d *dest, j *Job, conn *delivery.Conn, w *workerState) *delivery.Conn {
	if !s.lease(j) {
		return conn
	}
	if !s.dropSuppressed(j) {
		return conn
	}
	msg, err := s.message(j.MessageID)
	if err != nil {
		s.log.Error("load message for delivery", "message", j.MessageID, "err", err)
		s.finish(j, s.failAll(j, &delivery.Failure{Class: classify.ProtocolError, Phase: "queue", Err: "message unreadable: " + err.Error()}, s.now()))
		return conn
	}
	if msg.Sandbox {
		s.finish(j, sandboxOutcomes(j, s.now()))
		return conn
	}
	if msg.DKIMPending {
		if msg, err = s.signPending(msg); err != nil {
			s.log.Error("DKIM-sign before delivery", "message", j.MessageID, "err", err)
			s.finish(j, s.failAll(j, &delivery.Failure{Class: classify.Deferred, Phase: "queue", Err: "not sent unsigned: " + err.Error()}, s.now()))
			return conn
		}
	}
	if conn != nil && (!conn.Usable() || conn.Sent >= max(1, d.th.Limits().MaxMsgsPerConn)) {
		conn.Close()
		conn = nil
	}
	if conn == nil {
		start := s.now()
		ctx := s.ctx
		if d.src.IP.IsValid() {
			ctx = delivery.WithSource(ctx, d.src)
		}
		c, f := s.dl.Dial(ctx, j.Domain)
		if f != nil && s.ctx.Err() != nil {
			// Stopping: this was no verdict on the destination.
			s.finish(j, s.interrupted(j, f.Phase, f.Error(), start))
			return nil
		}
		if f != nil && f.Reply.Code != 0 && f.Phase != "auth" {
			// The configured rules decide what a refusal at connect or EHLO means.
			f.Class = s.classifier().ClassifyAttempt(f.Phase, f.Reply, j.Rcpts[0].Attempts+1).Class
			f.Permanent = f.Class.Permanent()
		}
		if f != nil {
			s.log.Info("cannot connect", "dest", d.key, "domain", j.Domain, "phase", f.Phase, "err", f.Error())
			s.adapt(d, f.Class, f.Reply, nil, start)
			outs := s.failAll(j, f, start)
			s.finish(j, outs)
			// The hosts are unreachable: give the same failure to the other
			// jobs ready now that would use only these hosts, rather than
			// dialling again for each (like Postfix's dead-destination
			// handling). A DNS failure is its domain's alone.
			s.failReady(d, j.Domain, f, start)
			return nil
		}
		conn = c
		j.setup = s.now().Sub(start)
	}
	start := s.now()
	rcpts := make([]string, len(j.Rcpts))
	for i, r := range j.Rcpts {
		rcpts[i] = r.Addr
	}
	dm := delivery.Message{Sender: msg.Sender, Body: msg.Body, UTF8: msg.UTF8, EightBit: msg.EightBitMIM}
	var results []delivery.Result
	verp := s.cfg.ReturnPath != nil && msg.Sender != ""
	unsub := s.cfg.Unsubscribe != nil && s.cfg.UnsubscribeLanes[j.Lane]
	if verp || unsub {
		results = s.sendEach(conn, dm, msg, j, verp, unsub)
	} else {
		results = s.send(conn, dm, rcpts, d.th.Limits().MaxRcptsPerTx)
	}
	end := s.now()
	if s.ctx.Err() != nil && results[0].Reply.Code == 0 {
		// Stop cut the session short; replies already received stand.
		outs := s.interrupted(j, results[0].Phase, results[0].Err, start)
		for i, res := range results {
			if res.Reply.Code != 0 {
				res.Class = s.classifier().ClassifyAttempt(res.Phase, res.Reply, j.Rcpts[i].Attempts+1).Class
				st, next, ev := s.decide(j.Rcpts[i], res.Class, false, end, d.th.PausedUntil())
				outs[i] = store.Outcome{DeliveryID: j.Rcpts[i].ID, State: st, NextAt: next, Class: string(res.Class), Phase: res.Phase,
					Reply: res.Reply, MX: conn.MX, IP: conn.IP, SourceIP: conn.Source, TLS: conn.TLS, StartedAt: start, Duration: end.Sub(start), Event: ev}
			}
		}
		s.finishAsync(w, j, outs)
		conn.Close()
		return nil
	}
	outs := make([]store.Outcome, len(j.Rcpts))
	for i, r := range j.Rcpts {
		if results[i].Reply.Code != 0 {
			// Replies are classified here, with the configured rules and the
			// attempt count: some temporary replies become permanent after
			// many attempts (a 4xx "no such user" that never changes).
			results[i].Class = s.classifier().ClassifyAttempt(results[i].Phase, results[i].Reply, r.Attempts+1).Class
		}
		res := results[i]
		state, next, ev := s.decide(r, res.Class, false, end, d.th.PausedUntil())
		outs[i] = store.Outcome{DeliveryID: r.ID, State: state, NextAt: next, Class: string(res.Class), Phase: res.Phase,
			Reply: res.Reply, Error: res.Err, MX: conn.MX, IP: conn.IP, SourceIP: conn.Source, TLS: conn.TLS, TLSDetail: store.TLSDetail(conn.TLSInfo), StartedAt: start, Provider: s.dl.Provider(j.Domain),
			Duration: end.Sub(start), Event: ev}
	}
	s.adapt(d, results[0].Class, results[0].Reply, results, end)
	s.finishAsync(w, j, outs)
	if !conn.Usable() {
		conn.Close()
		return nil
	}
	return conn
}

// dropSuppressed records recipients that were suppressed while they
// waited (a bounce, complaint or operator entry since they were accepted)
// and removes them from j; it reports whether anything is left to send.
func (s *Scheduler) dropSuppressed(j *Job) bool {
	if s.cfg.Suppressions == nil {
		return true
	}
	var outs []store.Outcome
	var dropped []Rcpt
	kept := j.Rcpts[:0:0]
	now := s.now()
	for _, r := range j.Rcpts {
		if sup, ok := s.cfg.Suppressions.Check(j.TenantID, r.Addr); ok {
			outs = append(outs, store.Outcome{DeliveryID: r.ID, State: store.Suppressed, Class: "suppressed", Phase: "queue",
				Error: "before delivery: " + suppress.Describe(sup), StartedAt: now, Event: store.EventSuppressed})
			dropped = append(dropped, r)
			continue
		}
		kept = append(kept, r)
	}
	if len(outs) == 0 {
		return true
	}
	s.finish(&Job{MessageID: j.MessageID, TenantID: j.TenantID, Domain: j.Domain, Lane: j.Lane, Rcpts: dropped}, outs)
	s.mu.Lock()
	for _, r := range dropped {
		if s.known[r.ID] == j {
			delete(s.known, r.ID)
		}
	}
	j.Rcpts = kept
	s.mu.Unlock()
	return len(kept) > 0
}

// signPending signs a message stored before its DKIM signature was (a
// crash between commit and signing, or a signature not stored yet).
func (s *Scheduler) signPending(m *store.Message) (*store.Message, error) {
	if s.cfg.SignPending == nil {
		return nil, fmt.Errorf("message %s awaits its DKIM signature and no signer is configured", m.ID)
	}
	return s.cfg.SignPending(s.ctx, m)
}

// message returns the message to send, from the body cache or the store.
func (s *Scheduler) message(id string) (*store.Message, error) {
	if m := s.Bodies.Get(id); m != nil {
		return m, nil
	}
	return s.st.GetMessage(context.Background(), "", id, true)
}

// send sends msg to rcpts in transactions of at most per recipients (the
// destination's limit); recipients after a broken connection get its
// failure.
func (s *Scheduler) send(conn *delivery.Conn, msg delivery.Message, rcpts []string, per int) []delivery.Result {
	if per <= 0 || len(rcpts) <= per {
		return sendTx(conn, msg, rcpts)
	}
	var out []delivery.Result
	for len(rcpts) > 0 {
		n := min(per, len(rcpts))
		if !conn.Usable() {
			last := out[len(out)-1]
			for range rcpts {
				out = append(out, delivery.Result{Class: classify.ConnectionError, Phase: last.Phase, Err: "connection closed before this transaction"})
			}
			return out
		}
		out = append(out, sendTx(conn, msg, rcpts[:n])...)
		rcpts = rcpts[n:]
	}
	return out
}

// sendEach sends each recipient its own copy, in its own transaction:
// with verp, from the return path naming that delivery (so a bounce to it
// can speak only for that recipient); with unsub, with the
// List-Unsubscribe headers naming that delivery.
func (s *Scheduler) sendEach(conn *delivery.Conn, msg delivery.Message, stored *store.Message, j *Job, verp, unsub bool) []delivery.Result {
	out := make([]delivery.Result, 0, len(j.Rcpts))
	for _, r := range j.Rcpts {
		if !conn.Usable() {
			out = append(out, delivery.Result{Class: classify.ConnectionError, Phase: "connect", Err: "connection closed before this transaction"})
			continue
		}
		m := msg
		if verp {
			if rp, err := s.cfg.ReturnPath(j.MessageID, r.ID); err == nil {
				m.Sender = rp
			} else {
				s.log.Error("VERP return path; sending with the message's sender", "delivery", r.ID, "err", err)
			}
		}
		if unsub {
			added := s.cfg.Unsubscribe(r.ID)
			if s.cfg.SignAdded != nil && stored.DKIMDomain != "" {
				if sig, err := s.cfg.SignAdded(stored, added); err != nil {
					s.log.Error("DKIM-sign List-Unsubscribe; sending with the message's signature only", "delivery", r.ID, "err", err)
				} else {
					added = append(sig, added...)
				}
			}
			m.Body = append(added, msg.Body...)
		}
		out = append(out, conn.Send(m, []string{r.Addr})...)
	}
	return out
}

// lease marks j's deliveries as sending in the store; deliveries an
// operator changed meanwhile are dropped from j. It reports whether
// anything is left to send.
func (s *Scheduler) lease(j *Job) bool {
	now := s.now()
	leased, err := s.st.Lease(context.Background(), j.ids(), now, now.Add(s.cfg.RetryMin))
	if err != nil {
		s.log.Error("lease deliveries", "message", j.MessageID, "err", err)
		// Nothing changed in the store: try again later.
		s.mu.Lock()
		j.Due = now.Add(s.cfg.RetryMin)
		s.schedule(j, now)
		s.mu.Unlock()
		return false
	}
	ok := make(map[int64]bool, len(leased))
	for _, id := range leased {
		ok[id] = true
	}
	s.mu.Lock()
	kept := j.Rcpts[:0]
	for _, r := range j.Rcpts {
		if !ok[r.ID] {
			if s.known[r.ID] == j {
				delete(s.known, r.ID)
			}
			continue
		}
		kept = append(kept, r)
		s.leased[r.ID] = true
		if j.dropped[r.ID] {
			// The operator's change came before our lease (nothing can
			// select a delivery in sending): this attempt is the one that
			// counts, and finish records it as usual.
			delete(j.dropped, r.ID)
			if s.known[r.ID] == nil {
				s.known[r.ID] = j
			}
		}
	}
	j.Rcpts = kept
	s.mu.Unlock()
	return len(kept) > 0
}

// interrupted gives every recipient of j an attempt cut short by Stop:
// deferred and due at once, so the next start retries it.
func (s *Scheduler) interrupted(j *Job, phase, why string, start time.Time) []store.Outcome {
	end := s.now()
	outs := make([]store.Outcome, len(j.Rcpts))
	for i, r := range j.Rcpts {
		outs[i] = store.Outcome{DeliveryID: r.ID, State: store.Deferred, NextAt: end, Class: string(classify.ConnectionError),
			Phase: phase, Error: "interrupted: posthorn stopped during the attempt (" + why + ")", StartedAt: start,
			Duration: end.Sub(start), Event: store.EventDeferred}
	}
	return outs
}

// failAll gives every recipient of j the same failure.
func (s *Scheduler) failAll(j *Job, f *delivery.Failure, start time.Time) []store.Outcome {
	end := s.now()
	outs := make([]store.Outcome, len(j.Rcpts))
	for i, r := range j.Rcpts {
		state, next, ev := s.decide(r, f.Class, f.Permanent, end, d0(j).th.PausedUntil())
		outs[i] = store.Outcome{DeliveryID: r.ID, State: state, NextAt: next, Class: string(f.Class), Phase: f.Phase,
			Reply: f.Reply, Error: f.Err, MX: f.MX, IP: f.IP, SourceIP: sourceOf(j), TLSDetail: store.TLSDetail(f.TLS), StartedAt: start, Duration: end.Sub(start), Event: ev}
	}
	return outs
}

// onHold puts an address on hold when it soft-bounced OnHoldAfter times
// within OnHoldWindow (this outcome included), for OnHoldFor.
func (s *Scheduler) onHold(tenantID, addr string, o store.Outcome) (store.Suppression, bool) {
	n, window, hold := s.onHoldSettings()
	if n <= 0 || window <= 0 || hold <= 0 {
		return store.Suppression{}, false
	}
	now := s.now()
	evs, err := s.st.Events(context.Background(), store.EventFilter{TenantID: tenantID, Recipient: addr,
		Type: store.EventSoftBounce, Since: now.Add(-window), Limit: n})
	if err != nil {
		s.log.Error("count soft bounces", "err", err)
		return store.Suppression{}, false
	}
	if len(evs) < n {
		return store.Suppression{}, false
	}
	return store.Suppression{TenantID: tenantID, Kind: "address", Value: addr, Reason: "on_hold", ExpiresAt: now.Add(hold),
		Detail: fmt.Sprintf("%d soft bounces within %s; last: %s", len(evs), window, o.Reply.String())}, true
}

// d0 is the destination a job was taken from.
func d0(j *Job) *dest { return j.dest }

// adapt feeds one attempt's result to the destination's throttle: a
// rate_limited reply anywhere in it cuts the limits, a delivery counts as a
// success. Changes are logged and written as throttle_changed events.
func (s *Scheduler) adapt(d *dest, cls classify.Class, reply smtpproto.Reply, results []delivery.Result, now time.Time) {
	for _, r := range results {
		if r.Class == classify.RateLimited {
			cls, reply = r.Class, r.Reply
			break
		}
	}
	s.mu.Lock()
	if cls == classify.Delivered {
		d.sent = append(d.sent, now)
	}
	if cls == classify.RateLimited {
		d.pauseReply = reply
	}
	d.recent[d.nres%len(d.recent)] = string(cls)
	d.nres++
	recent := d.rateEstimate(now)
	s.mu.Unlock()
	var ch shaping.Change
	var changed bool
	switch cls {
	case classify.RateLimited:
		ch, changed = d.th.RateLimited(now, recent, reply.String()), true
		s.publishCut(d, reply.String()) // the other nodes of a cluster slow down too
	case classify.Delivered:
		ch, changed = d.th.Success(now)
	}
	if !changed {
		return
	}
	s.log.Warn("throttle changed", "dest", d.key, "change", ch.String())
	ev := store.Event{At: now, Type: store.EventThrottle, Reply: reply, MX: d.key, Detail: d.key + ": " + ch.String()}
	if err := s.st.RecordEvent(context.Background(), ev); err != nil {
		s.log.Error("record throttle event", "err", err)
	}
}

// failReady applies a failed dial for domain to the jobs now ready for d
// that it concerns: those of the same domain, and, when the failure was
// the hosts' (f.Hosts), those of domains that would use only these hosts.
// A destination groups domains by provider or relay, so its other domains
// may resolve differently or use other hosts: their jobs stay ready.
func (s *Scheduler) failReady(d *dest, domain string, f *delivery.Failure, start time.Time) {
	failed := make(map[string]bool, len(f.Hosts))
	for _, h := range f.Hosts {
		failed[h] = true
	}
	shares := func(dom string) bool {
		if dom == domain {
			return true
		}
		if len(failed) == 0 {
			return false
		}
		hosts := s.dl.Hosts(dom)
		for _, h := range hosts {
			if !failed[h] {
				return false
			}
		}
		return len(hosts) > 0
	}
	verdict := map[string]bool{}
	s.mu.Lock()
	var jobs []*Job
	for l := range d.ready {
		for _, j := range d.ready[l].jobs() {
			ok, seen := verdict[j.Domain]
			if !seen {
				ok = shares(j.Domain)
				verdict[j.Domain] = ok
			}
			if ok {
				j.removed = true // lazily dropped from the lane's queue
				d.nready--
				j.where = inFlight
				s.unwatch(j)
				jobs = append(jobs, j)
			}
		}
	}
	s.mu.Unlock()
	for _, j := range jobs {
		if s.lease(j) {
			s.finish(j, s.failAll(j, f, start))
		}
	}
}

// finish records outcomes and reschedules what was deferred. If the
// store cannot record them, the deliveries stay leased in the store and
// the rescuer returns them to the queue once their lease has ended (a
// possible duplicate, never a loss).
func (s *Scheduler) finish(j *Job, outs []store.Outcome) {
	var err error
	for try := 0; try < 5; try++ {
		if err = s.st.RecordOutcomes(context.Background(), outs); err == nil {
			break
		}
		s.log.Error("record delivery outcomes", "message", j.MessageID, "try", try+1, "err", err)
		time.Sleep(time.Duration(try+1) * 200 * time.Millisecond)
	}
	if err == nil {
		s.logOutcomes(j, outs, true)
		s.reportFinal(j, outs)
	}
	s.mu.Lock()
	var recheck []int64
	var again *Job
	for i, o := range outs {
		r := j.Rcpts[i]
		delete(s.leased, r.ID)
		if j.dropped[r.ID] {
			// An operator changed it after this attempt was recorded: the
			// store knows what it is now.
			recheck = append(recheck, r.ID)
			continue
		}
		if err != nil || o.State != store.Deferred {
			// Final, or left in sending for the rescuer to return.
			if s.known[r.ID] == j {
				delete(s.known, r.ID)
			}
			continue
		}
		if o.Class != string(classify.RateLimited) {
			r.Attempts++ // a rate limit does not burn the message's backoff
		}
		r.LastClass = o.Class
		if again == nil || !again.Due.Equal(o.NextAt) {
			if again != nil {
				s.schedule(again, s.now())
			}
			again = &Job{MessageID: j.MessageID, TenantID: j.TenantID, Sender: j.Sender, Domain: j.Domain, Lane: j.Lane, Due: o.NextAt, hidx: -1}
		}
		again.Rcpts = append(again.Rcpts, r)
		s.known[r.ID] = again
	}
	if again != nil {
		s.schedule(again, s.now())
	}
	j.where = nowhere
	s.mu.Unlock()
	if len(recheck) > 0 {
		s.reload(j.MessageID, recheck)
	}
}

// reload enqueues the deliveries among ids that the store still has
// pending (after an operator's change raced an attempt).
func (s *Scheduler) reload(messageID string, ids []int64) {
	ds, err := s.st.MessageDeliveries(context.Background(), messageID)
	if err != nil {
		s.log.Error("reload deliveries", "message", messageID, "err", err)
		return // the next start loads them
	}
	want := make(map[int64]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	var pending []store.Delivery
	for _, d := range ds {
		if want[d.ID] && !d.State.Final() && d.State != store.Held && d.State != store.Sending {
			pending = append(pending, d)
		}
	}
	s.Enqueue(pending)
}

// reportFinal adds suppressions for hard bounces (and on-hold entries for
// repeated soft bounces) and tells OnFailed about final failures; outs[i]
// belongs to j.Rcpts[i] and is recorded.
func (s *Scheduler) reportFinal(j *Job, outs []store.Outcome) {
	if s.cfg.Suppressions != nil {
		var add []store.Suppression
		for i, o := range outs {
			switch {
			case o.State == store.Bounced && o.Class == string(classify.HardBounce):
				add = append(add, store.Suppression{TenantID: j.TenantID, Kind: "address", Value: j.Rcpts[i].Addr,
					Reason: "hard_bounce", Detail: o.Reply.String()})
			case o.State == store.SoftBounced:
				if hold, ok := s.onHold(j.TenantID, j.Rcpts[i].Addr, o); ok {
					add = append(add, hold)
				}
			}
		}
		if len(add) > 0 {
			if err := s.cfg.Suppressions.Add(context.Background(), add...); err != nil {
				s.log.Error("suppress hard-bounced addresses", "err", err)
			}
		}
	}
	if s.cfg.OnFailed != nil {
		var failed []FailedRcpt
		for i, o := range outs {
			if o.State == store.Bounced || o.State == store.SoftBounced || o.State == store.DeadLetter {
				failed = append(failed, FailedRcpt{Addr: j.Rcpts[i].Addr, Outcome: o})
			}
		}
		if len(failed) > 0 {
			// Counted, so Stop waits for it (the caller is a counted
			// goroutine itself, so this Add cannot race Wait).
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.cfg.OnFailed(j.MessageID, failed)
			}()
		}
	}
}

// sandboxOutcomes records a sandbox message's recipients as delivered to
// the sandbox: no connection is made. The attempt's class and MX say
// "sandbox", so the delivered event's detail does too.
func sandboxOutcomes(j *Job, now time.Time) []store.Outcome {
	outs := make([]store.Outcome, len(j.Rcpts))
	for i, r := range j.Rcpts {
		outs[i] = store.Outcome{DeliveryID: r.ID, State: store.Delivered, Class: "sandbox", Phase: "sandbox", MX: "sandbox",
			Reply: smtpproto.Reply{Code: 250, Enhanced: "2.0.0", Text: "sandbox: accepted, not sent"}, StartedAt: now, Event: store.EventDelivered}
	}
	return outs
}
