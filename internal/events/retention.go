package events

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/posthorn/posthorn/internal/store"
)

// Pruner enforces retention. Each pass deletes events older than
// EventsRetention and drops the bodies of finished messages older than
// BodyRetention (zero keeps them forever), Batch rows per write with
// Pause between writes: the writer is shared with acceptance, so a pass
// is many small transactions, never one long one.
//
// A write that fails (SQLite's "database is locked" when a checkpoint or
// another process holds the lock past the busy timeout) is tried again
// after Retry, then twice as long each time up to a minute, for up to
// Every in all; the pass ends with the error only after that. Before,
// one failure ended the pass and the next came an Every (10 minutes)
// later: with 50,000,000 events nothing was pruned while measured
// (docs/performance.md). The first failure of a run of them is logged
// (a warning), and the recovery; the retries in between are not.
type Pruner struct {
	Store           store.EventLog
	EventsRetention time.Duration
	BodyRetention   time.Duration
	Every           time.Duration // between passes (default: a quarter of the shorter retention, at most 10 minutes)
	Batch           int           // rows per transaction (default 50: see defaults)
	Pause           time.Duration // between transactions (default 20ms)
	Retry           time.Duration // before a failed write is tried again, doubling (default 1s)
	Now             func() time.Time
	Log             *slog.Logger

	cursor     int64     // messages looked at by body pruning (rowid)
	cursorFrom time.Time // when the cursor last started over
	stop, done chan struct{}
	stopOnce   sync.Once
}

// rescanEvery is how often body pruning starts over from the first
// message, to catch messages that finished (held, dead-lettered) after it
// walked past them.
const rescanEvery = 24 * time.Hour

// Start runs passes in the background until Stop.
func (p *Pruner) Start(ctx context.Context) error {
	p.defaults()
	p.stop, p.done = make(chan struct{}), make(chan struct{})
	go p.loop()
	return nil
}

func (p *Pruner) defaults() {
	if p.Batch <= 0 {
		// Small: a write that arrives while a delete runs waits for it
		// (the store has one writer), and a delete of 1,000 events
		// touches a thousand scattered index pages (recipient, domain).
		// Measured with 2,000,000 events (docs/performance.md), acceptance
		// p99 while pruning: 7.4x an idle server's at 1,000 in the
		// shared group commit, 1.5x at 200 and 1.3x at 50 in commits of
		// their own (one run each on a loaded machine). 50 every 20ms still prunes up to 2,500 events a
		// second, 200 million a day, far more than a busy server writes.
		p.Batch = 50
	}
	if p.Pause <= 0 {
		p.Pause = 20 * time.Millisecond
	}
	if p.Retry <= 0 {
		p.Retry = time.Second
	}
	if p.Now == nil {
		p.Now = time.Now
	}
	if p.Log == nil {
		p.Log = slog.Default()
	}
	if p.Every <= 0 {
		p.Every = 10 * time.Minute
		for _, r := range []time.Duration{p.EventsRetention, p.BodyRetention} {
			if r > 0 && r/4 < p.Every {
				p.Every = max(r/4, 100*time.Millisecond)
			}
		}
	}
}

// Stop ends the background passes and waits for the one running.
func (p *Pruner) Stop() {
	if p.stop == nil {
		return
	}
	p.stopOnce.Do(func() { close(p.stop) }) // a second Stop only waits
	<-p.done
}

func (p *Pruner) loop() {
	defer close(p.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-p.stop:
			cancel()
		case <-p.done:
		}
	}()
	t := time.NewTicker(p.Every)
	defer t.Stop()
	for {
		if evs, bodies, err := p.RunOnce(ctx); err != nil && ctx.Err() == nil {
			p.Log.Error("retention", "err", err)
		} else if evs+bodies > 0 {
			p.Log.Info("retention pruned", "events", evs, "bodies", bodies)
		}
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
	}
}

// RunOnce runs one pass and reports how many events and bodies it pruned.
func (p *Pruner) RunOnce(ctx context.Context) (events, bodies int, err error) {
	p.defaults()
	now := p.Now()
	if p.EventsRetention > 0 {
		cutoff := now.Add(-p.EventsRetention)
		for {
			var n int
			err := p.retry(ctx, "events", func() (err error) {
				n, err = p.Store.PruneEvents(ctx, cutoff, p.Batch)
				return err
			})
			events += n
			if err != nil {
				return events, bodies, err
			}
			if n == 0 {
				break
			}
			if !p.pause(ctx) {
				return events, bodies, ctx.Err()
			}
		}
	}
	if p.BodyRetention > 0 {
		if now.Sub(p.cursorFrom) > rescanEvery {
			p.cursor, p.cursorFrom = 0, now
		}
		cutoff := now.Add(-p.BodyRetention)
		for {
			var n int
			var next int64
			var done bool
			err := p.retry(ctx, "bodies", func() (err error) {
				n, next, done, err = p.Store.PruneBodies(ctx, cutoff, p.cursor, p.Batch)
				return err
			})
			bodies += n
			if err != nil {
				return events, bodies, err
			}
			p.cursor = next
			if done {
				break
			}
			if !p.pause(ctx) {
				return events, bodies, ctx.Err()
			}
		}
	}
	return events, bodies, nil
}

// maxRetryWait bounds the wait between two tries of a failed write.
const maxRetryWait = time.Minute

// retry runs write, and again after a growing wait while it fails, until
// the waits add up to Every; it returns the last error (or ctx's).
func (p *Pruner) retry(ctx context.Context, what string, write func() error) error {
	err := write()
	if err == nil || ctx.Err() != nil {
		return err
	}
	p.Log.Warn("retention: write failed, trying again", "prune", what, "err", err, "in", p.Retry)
	wait, waited, tries := p.Retry, time.Duration(0), 1
	for waited+wait <= p.Every {
		if !p.sleep(ctx, wait) {
			return ctx.Err()
		}
		waited += wait
		tries++
		if err = write(); err == nil {
			p.Log.Info("retention: write succeeded again", "prune", what, "tries", tries)
			return nil
		}
		if ctx.Err() != nil {
			return err
		}
		wait = min(2*wait, maxRetryWait)
	}
	return fmt.Errorf("%d tries over %s: %w", tries, waited, err)
}

func (p *Pruner) pause(ctx context.Context) bool { return p.sleep(ctx, p.Pause) }

func (p *Pruner) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
