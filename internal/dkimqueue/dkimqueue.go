// Package dkimqueue DKIM-signs accepted messages after they were stored,
// in a bounded pool of background signers, and makes them eligible for
// delivery only once their signature is stored.
//
// Why not sign on the accept path: an RSA-2048 signature costs about
// 1.2 ms of CPU here (crypto/rsa's constant-time CRT exponentiation, 88%
// of it in bigmod.Exp; BenchmarkSign in internal/domain), more than the
// whole rest of accepting a 4 KiB message. Signed inline, it held SMTP
// acceptance at 10 sessions on 2 cores to 0.21-0.45 of the unsigned rate
// (bench/dkim). Nothing makes the operation itself cheaper without giving
// something up: Go's RSA has no blinding to precompute (it is constant
// time instead), a variable-time big.Int exponentiation would leak the
// key through timing, and OpenSSL through cgo is a C dependency for a
// factor below 2. So the key operation leaves the accept path instead:
//
//   - accept stores the message unsigned with its signing domain
//     (store.Message.DKIMDomain) and answers 250 after the commit, as
//     before; the message is "pending" (DKIMPending) and its deliveries
//     are not handed to the scheduler;
//   - Submit queues it for a signer goroutine (Workers; the server runs
//     one per core and raises GOMAXPROCS by as many, so a signer thread
//     the kernel holds back never holds a P that acceptance needs); the
//     signature is computed once per message, stored in batches
//     (Store.SetDKIMSignatures, one commit per writeLinger), and only then
//     are the deliveries enqueued and the signed message put in the body
//     cache;
//   - the scheduler's loader leaves a message the pool still has to the
//     pool (Signing), so delivery workers do not sign it at full priority;
//   - a message pending after a crash (committed, not yet signed) is found
//     again by the scheduler's LoadPending at start; the queue never sends
//     a pending message: it calls Sign first (internal/queue, worker.go),
//     so no message of a signing domain leaves unsigned;
//   - signer threads run at the lowest priority (SCHED_IDLE on Linux), so
//     on a busy machine the CPU goes to accepting and delivering first
//     (the key operation itself runs on those threads: domain.Signer);
//   - the backlog is bounded (Backlog bytes): when signing cannot keep
//     up, Submit waits, so acceptance slows to the signing rate instead of
//     piling up unsigned mail in memory.
//
// Signing after the 250 cannot fail on content: accept always stores a
// header block ended by a blank line, which is all go-msgauth needs. It
// can fail when the domain lost its key or was removed meanwhile; the
// message is then not sent (the delivery is deferred and retried, so
// restoring the domain releases it).
//
// End-to-end throughput is still bounded by the CPU: every message of an
// RSA domain costs its 1.2 ms on some core. See docs/domains.md.
package dkimqueue

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"time"

	"github.com/posthorn/posthorn/internal/store"
)

// Keys gives the function that signs a tenant's domain's mail
// (internal/domain.Service.Sending).
type Keys interface {
	Sending(tenantID, domain string) (sign func(msg []byte) (field []byte, err error), ok bool)
}

// Enqueuer hands deliveries to the scheduler.
type Enqueuer interface {
	Enqueue(ds []store.Delivery)
}

// BodyCache remembers signed messages for their first attempt.
type BodyCache interface {
	Put(m *store.Message)
}

// Config is what the queue works with.
type Config struct {
	Store  store.Store
	Keys   Keys
	Sched  Enqueuer
	Bodies BodyCache // optional
	Log    *slog.Logger
	// Workers is the number of signer goroutines; 0: half of GOMAXPROCS,
	// at least one, so the runtime always has processors for accepting
	// and delivering (it does not know about thread priorities).
	Workers int
	// Backlog is how many bytes of messages may wait to be signed before
	// Submit waits; 0: 64 MiB.
	Backlog int
}

type job struct {
	m  *store.Message
	ds []store.Delivery
	f  *flight
}

// flight is a submitted message until its signature is stored: Sign
// (the delivery worker's path, for a message the scheduler's loader found
// in the store before the pool signed it) waits for it or takes its job
// over, so a message is signed once, not twice.
type flight struct {
	taken   bool // by a signer goroutine, or by Sign
	done    chan struct{}
	field   []byte // set before done closes; nil when the pool failed
	settled bool
	ds      []store.Delivery // the message's deliveries, for Sign to release
}

type signed struct {
	job
	field []byte
}

// Queue is the signer pool.
type Queue struct {
	cfg Config

	mu      sync.Mutex
	cond    *sync.Cond // signalled when jobs are added or taken, and at Stop
	jobs    []job      // waiting to be signed, oldest first
	bytes   int        // their bodies' size
	stopped bool
	flights map[string]*flight // submitted messages whose signature is not stored yet

	out  chan signed
	wg   sync.WaitGroup // signers
	fwg  sync.WaitGroup // the writer
	once sync.Once
}

// Start runs the signers and the writer that stores their signatures.
func Start(cfg Config) *Queue {
	if cfg.Workers <= 0 {
		cfg.Workers = max(1, runtime.GOMAXPROCS(0)/2)
	}
	if cfg.Backlog <= 0 {
		cfg.Backlog = 64 << 20
	}
	q := &Queue{cfg: cfg, out: make(chan signed, 256), flights: map[string]*flight{}}
	q.cond = sync.NewCond(&q.mu)
	for range cfg.Workers {
		q.wg.Add(1)
		go q.signer()
	}
	q.fwg.Add(1)
	go q.writer()
	return q
}

// Stop ends the pool: messages signed so far are stored and enqueued;
// those still waiting stay pending in the store and are signed before
// their delivery after the next start.
func (q *Queue) Stop() {
	q.once.Do(func() {
		q.mu.Lock()
		q.stopped = true
		q.cond.Broadcast()
		q.mu.Unlock()
	})
	q.wg.Wait()
	close(q.out)
	q.fwg.Wait()
	// What is left stays pending in the store; a Sign waiting for it
	// signs it itself.
	q.mu.Lock()
	ids := make([]string, 0, len(q.flights))
	for id := range q.flights {
		ids = append(ids, id)
	}
	q.mu.Unlock()
	for _, id := range ids {
		q.settle(id, nil)
	}
}

// Submit queues a stored, pending message and its new deliveries; the
// deliveries reach the scheduler once the signature is stored. It waits
// while the backlog is full; after Stop it returns at once (the message
// stays pending in the store).
func (q *Queue) Submit(m *store.Message, ds []store.Delivery) {
	q.mu.Lock()
	defer q.mu.Unlock()
	// One message larger than the whole backlog still goes in alone.
	for !q.stopped && q.bytes > 0 && q.bytes+len(m.Body) > q.cfg.Backlog {
		q.cond.Wait()
	}
	if q.stopped {
		return
	}
	f := &flight{done: make(chan struct{}), ds: ds}
	q.flights[m.ID] = f
	q.jobs = append(q.jobs, job{m, ds, f})
	q.bytes += len(m.Body)
	q.cond.Broadcast()
}

// Signing reports whether the pool still has message id: its deliveries
// reach the scheduler when its signature is stored.
func (q *Queue) Signing(id string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	f := q.flights[id]
	return f != nil && !f.settled
}

// take waits for the oldest waiting job; ok is false after Stop.
func (q *Queue) take() (j job, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for {
		for !q.stopped && len(q.jobs) == 0 {
			q.cond.Wait()
		}
		if q.stopped {
			return job{}, false
		}
		j = q.jobs[0]
		q.jobs[0] = job{}
		q.jobs = q.jobs[1:]
		if len(q.jobs) == 0 {
			q.jobs = nil // lets the backing array go
		}
		q.bytes -= len(j.m.Body)
		q.cond.Broadcast()
		if !j.f.taken { // else Sign took it over
			j.f.taken = true
			return j, true
		}
	}
}

// settle ends m's flight with its stored signature (nil: none).
func (q *Queue) settle(id string, field []byte) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if f := q.flights[id]; f != nil && !f.settled {
		f.field, f.settled = field, true
		close(f.done)
		delete(q.flights, id)
	}
}

// Sign signs a pending message now and stores the signature, returning
// the message as it is sent (signature first). The queue calls it for a
// pending message it is about to deliver (one that was accepted before a
// crash, or whose background signature has not been stored).
//
// A message the pool has not signed yet is signed once: if a signer is at
// it, Sign waits for its stored signature; if it still waits in the pool,
// Sign takes it over (and hands its deliveries to the scheduler, as the
// pool would have).
func (q *Queue) Sign(ctx context.Context, m *store.Message) (*store.Message, error) {
	q.mu.Lock()
	f := q.flights[m.ID]
	var own *flight // the pool's flight this call took over
	if f != nil && !f.taken {
		f.taken, own = true, f
	}
	q.mu.Unlock()
	if f != nil && own == nil {
		select {
		case <-f.done:
			if f.field != nil {
				return withSignature(m, f.field), nil
			}
			// The pool failed: sign here, which reports why.
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	field, err := q.sign(m)
	if err == nil {
		err = q.cfg.Store.SetDKIMSignatures(ctx, []store.DKIMSignature{{MessageID: m.ID, Field: field}})
		if err != nil {
			err = fmt.Errorf("store DKIM signature of %s: %w", m.ID, err)
		}
	}
	if own != nil {
		if err != nil {
			field = nil
		}
		q.settle(m.ID, field)
		q.cfg.Sched.Enqueue(own.ds) // as the pool would have; those already there are ignored
	}
	if err != nil {
		return nil, err
	}
	return withSignature(m, field), nil
}

func (q *Queue) sign(m *store.Message) ([]byte, error) {
	sign, ok := q.cfg.Keys.Sending(m.TenantID, m.DKIMDomain)
	if !ok || sign == nil {
		return nil, fmt.Errorf("message %s: domain %s has no DKIM key for this tenant any more", m.ID, m.DKIMDomain)
	}
	field, err := sign(m.Body)
	if err != nil {
		return nil, fmt.Errorf("message %s: %w", m.ID, err)
	}
	return field, nil
}

// withSignature is m as sent: a copy with the field before the body.
func withSignature(m *store.Message, field []byte) *store.Message {
	c := *m
	c.Body = append(append(make([]byte, 0, len(field)+len(m.Body)), field...), m.Body...)
	c.Size += len(field)
	c.DKIMPending = false
	return &c
}

// Signer threads run at the lowest priority there is: the key operation
// is the one piece of work that can wait (the 250 was already given), so
// on a busy machine the kernel gives the CPU to the threads that accept
// and deliver first. On Linux they use SCHED_IDLE (CPU time no normal
// thread wants); where that fails, signerNice.
const signerNice = 19

func (q *Queue) signer() {
	defer q.wg.Done()
	// Never unlocked: the thread with the lowered priority ends with the
	// goroutine instead of going back to the runtime's pool.
	runtime.LockOSThread()
	if err := lowerPriority(signerNice); err != nil {
		q.cfg.Log.Warn("DKIM signer: cannot lower thread priority", "err", err)
	}
	for {
		j, ok := q.take()
		if !ok {
			return
		}
		field, err := q.sign(j.m)
		if err != nil {
			// Enqueued unsigned in the store: the delivery worker's
			// Sign fails the same way and defers it, with the reason.
			q.cfg.Log.Error("DKIM signing after acceptance", "message", j.m.ID, "err", err)
			q.settle(j.m.ID, nil)
			q.cfg.Sched.Enqueue(j.ds)
			continue
		}
		q.out <- signed{j, field}
	}
}

// writeLinger is how long the writer gathers signatures before storing
// them: signers finish one at a time, and a commit per signature would
// add an fsync per message to the accept path's own.
const writeLinger = 5 * time.Millisecond

// writer stores signatures in batches, then releases their deliveries.
func (q *Queue) writer() {
	defer q.fwg.Done()
	const maxBatch = 256
	batch := make([]signed, 0, maxBatch)
	for s := range q.out {
		batch = append(batch[:0], s)
		linger := time.NewTimer(writeLinger)
	fill:
		for len(batch) < maxBatch {
			select {
			case s, ok := <-q.out:
				if !ok {
					break fill
				}
				batch = append(batch, s)
			case <-linger.C:
				break fill
			}
		}
		linger.Stop()
		sigs := make([]store.DKIMSignature, len(batch))
		for i, s := range batch {
			sigs[i] = store.DKIMSignature{MessageID: s.m.ID, Field: s.field}
		}
		err := q.cfg.Store.SetDKIMSignatures(context.Background(), sigs)
		if err != nil {
			q.cfg.Log.Error("store DKIM signatures; signing again before delivery", "messages", len(sigs), "err", err)
		}
		var ready []store.Delivery
		for _, s := range batch {
			if err == nil && q.cfg.Bodies != nil {
				q.cfg.Bodies.Put(withSignature(s.m, s.field))
			}
			if err == nil {
				q.settle(s.m.ID, s.field)
			} else {
				q.settle(s.m.ID, nil)
			}
			ready = append(ready, s.ds...)
		}
		q.cfg.Sched.Enqueue(ready)
	}
}
