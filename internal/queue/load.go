package queue

import (
	"context"
	"runtime/debug"
	"time"

	"github.com/posthorn/posthorn/internal/store"
)

// The scheduler keeps in memory only the deliveries due within
// Config.Window (and those it already holds: in flight, retrying, fresh
// mail), at most Config.MaxLoaded of them while the rest is in the store.
// The loader pages through the store in due order (Store.PendingDue,
// earliest first) as mail comes into the window and as memory frees up,
// so a queue of millions scheduled hours ahead costs no memory until it is
// due, due mail is never starved by later mail, and a restart does not wait
// for the queue to be read: Start loads one page, the loader the rest in
// the background.
//
// Correctness rests on one rule, checked under s.mu: Enqueue forgets a
// delivery only when it is due after both now+Window and scanUntil, the
// farthest due time a page was asked for. The cursor never passes
// scanUntil, so a forgotten delivery is ahead of the cursor and a later
// page returns it. A page may return a delivery memory already holds
// (known: ignored) or one finished meanwhile (the lease refuses it).

const (
	defaultWindow    = time.Minute
	defaultMaxLoaded = 50_000
	loadPage         = 5_000
	firstPage        = 1_000 // loaded by Start, before posthorn listens
)

func (s *Scheduler) window() time.Duration {
	if s.cfg.Window > 0 {
		return s.cfg.Window
	}
	return defaultWindow
}

func (s *Scheduler) maxLoaded() int {
	if s.cfg.MaxLoaded > 0 {
		return s.cfg.MaxLoaded
	}
	return defaultMaxLoaded
}

// keepUntil is the latest due time Enqueue keeps in memory. Caller holds
// s.mu. In a cluster it keeps everything: a node owns what it holds and
// runs no loader, so a delivery it forgot would wait for its owner's
// restart (memory in cluster mode is bounded by what each node owns).
func (s *Scheduler) keepUntil(now time.Time) time.Time {
	if s.cfg.Cluster != nil {
		return time.UnixMilli(1<<62 - 1)
	}
	k := now.Add(s.window())
	if s.scanUntil.After(k) {
		k = s.scanUntil
	}
	return k
}

// loadOnce loads the next page of stored deliveries due within the window.
// It returns how many it read, more when the page was full (the store may
// hold more), and full when memory holds MaxLoaded deliveries (with room
// for less than a quarter of them) and nothing was read.
func (s *Scheduler) loadOnce(ctx context.Context, page int) (n int, more, full bool, err error) {
	s.mu.Lock()
	room := s.maxLoaded() - len(s.known)
	if room <= 0 || room < min(page, s.maxLoaded()/4) {
		s.mu.Unlock()
		return 0, false, true, nil
	}
	until := s.keepUntil(s.now())
	s.scanUntil = until
	cur := s.loadCur
	s.mu.Unlock()
	limit := min(room, page)
	ds, err := s.st.PendingDue(ctx, cur, until, limit)
	if err != nil || len(ds) == 0 {
		return 0, false, false, err
	}
	last := ds[len(ds)-1]
	s.Enqueue(s.notSigning(ds))
	s.mu.Lock()
	s.loadCur = store.DueCursor{Due: last.NextAttemptAt, ID: last.ID}
	s.loaded += len(ds)
	s.mu.Unlock()
	return len(ds), len(ds) == limit, false, nil
}

// loadLoop loads due mail as it comes into the window and as memory frees
// up. Once it has caught up the first time it returns the garbage of
// start-up to the operating system.
func (s *Scheduler) loadLoop() {
	defer s.wg.Done()
	caughtUp := false
	for {
		_, more, full, err := s.loadOnce(s.ctx, loadPage)
		if err != nil {
			if s.ctx.Err() != nil {
				return
			}
			s.log.Error("load pending deliveries", "err", err)
		}
		// Only a full page says the store may hold more now. A short one
		// has reached the mail being accepted, which memory already
		// holds: paging on would chase acceptance with small queries
		// (a quarter of the CPU at 10 SMTP sessions, bench/dkim).
		if more {
			continue
		}
		wait := s.window() / 4 // mail coming into the window
		switch {
		case err != nil:
			wait = time.Second
		case full:
			wait = 100 * time.Millisecond // memory frees up as deliveries finish
		case !caughtUp:
			caughtUp = true
			s.mu.Lock()
			loaded := s.loaded
			s.mu.Unlock()
			s.log.Info("scheduler caught up with the stored queue", "loaded", loaded)
			debug.FreeOSMemory()
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-s.loadWake:
			t.Stop()
		case <-s.ctx.Done():
			t.Stop()
			return
		}
	}
}

// notSigning leaves out the deliveries of messages the background signers
// still have: they enqueue them once the signature is stored.
func (s *Scheduler) notSigning(ds []store.Delivery) []store.Delivery {
	if s.cfg.Signing == nil {
		return ds
	}
	kept := make([]store.Delivery, 0, len(ds))
	for _, d := range ds {
		if !s.cfg.Signing(d.MessageID) {
			kept = append(kept, d)
		}
	}
	return kept
}
