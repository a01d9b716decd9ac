package postgres

// Group commit. PostgreSQL flushes its WAL on every commit (the writer's
// sessions keep synchronous_commit on: a nil return means durable), so a
// commit per acceptance would cap the queue at the disk's flush rate. As
// in the SQLite store, every write that logs events goes through one
// writer goroutine on its own connection: it takes all waiting requests,
// runs them in one transaction and commits once; each caller returns
// after that commit. The hot requests (acceptance, lease, outcome) are
// piped: the statements of all of them in a batch go to the server in one
// pipeline, one round trip. Requests are re-runnable, so no savepoints
// are needed: when one request of a batch fails, PostgreSQL has aborted
// the transaction anyway; it is rolled back and every request is run
// again alone, so a failure stays its own. A batch that lost a deadlock
// or a serialization conflict with another node is run again whole.
//
// Writes that log no events and may be large (suppression imports,
// pruning, purges) do not queue behind the writer: they run in their own
// transaction on the pool.
//
// Tried and dropped: two writer connections, so that a batch runs while
// the previous one commits. On a busy 2-core machine it made commits
// smaller and more numerous without raising throughput.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/posthorn/posthorn/internal/store"
)

// maxBatch bounds how many requests share one transaction.
const maxBatch = 512

// gatherWait is how long the writer lingers for more requests when the
// previous batch carried several (load is high): a slightly later commit
// carrying many requests costs far less than many commits.
const gatherWait = 250 * time.Microsecond

// wtx is a write request's view of the group-commit transaction: the
// transaction, and the event log that inserts events (with their rollups
// and webhook outbox rows) before the commit.
type wtx struct {
	tx pgx.Tx
	ev *evLog
}

// event logs e in this transaction (written at the end of the batch).
func (w *wtx) event(e store.Event) { w.ev.add(e, false) }

// writeFn is a write request. It must be safe to run again after a
// rollback: it resets whatever it fills in.
type writeFn func(ctx context.Context, w *wtx) error

// piped is a write request in two parts, so that the statements of many
// requests go to the server in one pipeline (one round trip for the
// batch, not one per request): queue adds its statements, read takes
// their results in the same order and logs its events. Both must be safe
// to run again (read resets what it fills in).
type piped struct {
	queue func(b *pgx.Batch)
	read  func(br pgx.BatchResults, w *wtx) error
}

type writeReq struct {
	fn   writeFn // or:
	pipe *piped
	done chan error
}

// writer is the group-commit writer's state.
type writer struct {
	cfg   *pgx.ConnConfig
	conn  *pgx.Conn // the writer goroutine's only
	reqs  chan *writeReq
	quit  chan struct{}
	ended chan struct{}
	stop  sync.Once

	ev        evLog
	lastBatch int // size of the previous batch (writer goroutine only)
	sink      atomic.Pointer[func([]store.Event)]

	commits, requests atomic.Uint64
	execNS, commitNS  atomic.Int64 // time spent running batches and committing them
}

// WriterStats reports the writer's work so far (metrics; requests/commits
// is the group commit's batching factor).
func (s *Store) WriterStats() store.WriterStats {
	return store.WriterStats{Commits: s.w.commits.Load(), Requests: s.w.requests.Load(),
		Exec: time.Duration(s.w.execNS.Load()), Commit: time.Duration(s.w.commitNS.Load())}
}

// SetEventSink implements store.EventLog: fn is called on the writer
// goroutine, after each commit, with the events the commit wrote.
func (s *Store) SetEventSink(fn func([]store.Event)) {
	if fn == nil {
		s.w.sink.Store(nil)
		return
	}
	s.w.sink.Store(&fn)
}

func (s *Store) startWriter(ctx context.Context) error {
	s.w.cfg = s.pool.Config().ConnConfig.Copy()
	conn, err := s.connectWriter(ctx)
	if err != nil {
		return fmt.Errorf("postgres store: connect the writer: %w", err)
	}
	s.w.conn = conn
	s.w.reqs = make(chan *writeReq, 4096)
	s.w.quit = make(chan struct{})
	s.w.ended = make(chan struct{})
	go s.writer()
	return nil
}

func (s *Store) stopWriter() error {
	s.w.stop.Do(func() { close(s.w.quit) })
	<-s.w.ended
	return nil
}

var errClosed = errors.New("postgres store: closed")

// write runs fn in the next group commit and waits until it is durable.
func (s *Store) write(ctx context.Context, fn writeFn) error {
	return s.send(ctx, &writeReq{fn: fn, done: make(chan error, 1)})
}

// writePiped runs a piped request in the next group commit and waits
// until it is durable.
func (s *Store) writePiped(ctx context.Context, queue func(b *pgx.Batch), read func(br pgx.BatchResults, w *wtx) error) error {
	return s.send(ctx, &writeReq{pipe: &piped{queue, read}, done: make(chan error, 1)})
}

func (s *Store) send(ctx context.Context, req *writeReq) error {
	select {
	case <-s.w.quit:
		return errClosed
	default:
	}
	select {
	case s.w.reqs <- req:
	case <-s.w.quit:
		return errClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	// Once queued the write happens: wait for it even if ctx ends, so the
	// caller never acts on an unknown outcome.
	select {
	case err := <-req.done:
		return err
	case <-s.w.ended:
		select {
		case err := <-req.done:
			return err
		default:
			return errClosed
		}
	}
}

func (s *Store) writer() {
	defer close(s.w.ended)
	defer func() {
		if s.w.conn != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			s.w.conn.Close(ctx)
			cancel()
		}
	}()
	batch := make([]*writeReq, 0, maxBatch)
	for {
		var first *writeReq
		select {
		case first = <-s.w.reqs:
		case <-s.w.quit:
			for { // drain what was queued before Close
				select {
				case r := <-s.w.reqs:
					s.commit([]*writeReq{r})
				default:
					return
				}
			}
		}
		batch = append(batch[:0], first)
		batch = s.fill(batch)
		s.commit(batch)
	}
}

// fill adds every request already waiting, lingering up to gatherWait
// while more arrive when the load is high.
func (s *Store) fill(batch []*writeReq) []*writeReq {
	var deadline time.Time
	for len(batch) < maxBatch {
		select {
		case r := <-s.w.reqs:
			batch = append(batch, r)
			continue
		default:
		}
		if s.w.lastBatch < 2 {
			return batch
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(gatherWait)
		}
		wait := time.Until(deadline)
		if wait <= 0 {
			return batch
		}
		t := time.NewTimer(wait)
		select {
		case r := <-s.w.reqs:
			t.Stop()
			batch = append(batch, r)
		case <-t.C:
			return batch
		}
	}
	return batch
}

// commit runs batch in one transaction; when a request fails, each is
// run again in a transaction of its own.
func (s *Store) commit(batch []*writeReq) {
	if len(batch) > 1 {
		if errs, ok := s.runRetrying(batch); ok {
			for i, r := range batch {
				r.done <- errs[i]
			}
			return
		}
	}
	for _, r := range batch {
		errs, _ := s.runRetrying([]*writeReq{r})
		r.done <- errs[0]
	}
}

// maxConflictRetries is how often a batch that lost a deadlock or a
// serialization conflict (with another node) is run again.
const maxConflictRetries = 3

func (s *Store) runRetrying(batch []*writeReq) ([]error, bool) {
	for try := 0; ; try++ {
		errs, ok := s.runBatch(batch)
		if try < maxConflictRetries && conflicted(errs) {
			continue
		}
		return errs, ok
	}
}

// conflicted reports whether a run failed on a deadlock or a
// serialization failure, which another try may not meet.
func conflicted(errs []error) bool {
	for _, err := range errs {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001") {
			return true
		}
	}
	return false
}

// runBatch runs and commits batch; ok is false (nothing committed) when
// one of several requests failed.
func (s *Store) runBatch(batch []*writeReq) (errs []error, ok bool) {
	ctx := context.Background()
	errs = make([]error, len(batch))
	fail := func(err error) ([]error, bool) {
		for i := range errs {
			errs[i] = err
		}
		return errs, true
	}
	tx, err := s.begin(ctx)
	if err != nil {
		return fail(err)
	}
	t0 := time.Now()
	s.w.ev.reset()
	w := &wtx{tx: tx, ev: &s.w.ev}
	for i := 0; i < len(batch); {
		if batch[i].pipe == nil {
			if errs[i] = batch[i].fn(ctx, w); errs[i] != nil {
				s.rollback(tx)
				return errs, len(batch) == 1
			}
			i++
			continue
		}
		// A run of piped requests: one round trip for all of them.
		j := i
		b := &pgx.Batch{}
		for ; j < len(batch) && batch[j].pipe != nil; j++ {
			batch[j].pipe.queue(b)
		}
		br := tx.SendBatch(ctx, b)
		for k := i; k < j; k++ {
			if errs[k] = batch[k].pipe.read(br, w); errs[k] != nil {
				br.Close()
				s.rollback(tx)
				return errs, len(batch) == 1
			}
		}
		if err := br.Close(); err != nil {
			errs[j-1] = err
			s.rollback(tx)
			return errs, len(batch) == 1
		}
		i = j
	}
	if err := s.w.ev.flush(ctx, s, tx); err != nil {
		s.rollback(tx)
		if len(batch) > 1 {
			return errs, false // find out whose events failed
		}
		return fail(err)
	}
	t1 := time.Now()
	err = tx.Commit(ctx)
	s.w.execNS.Add(int64(t1.Sub(t0)))
	s.w.commitNS.Add(int64(time.Since(t1)))
	if err != nil {
		// The outcome is unknown if the connection broke during the commit.
		s.dropWriterConn()
		return fail(fmt.Errorf("postgres store: commit: %w", err))
	}
	s.w.lastBatch = len(batch)
	s.w.commits.Add(1)
	s.w.requests.Add(uint64(len(batch)))
	if fn := s.w.sink.Load(); fn != nil && len(s.w.ev.evs) > 0 {
		(*fn)(s.w.ev.handOff())
	}
	return errs, true
}

func (s *Store) rollback(tx pgx.Tx) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tx.Rollback(ctx); err != nil && !errors.Is(err, pgx.ErrTxClosed) {
		s.dropWriterConn()
	}
}

// begin starts the writer's transaction. A connection found broken
// (the server restarted, the backend was terminated) is replaced once:
// nothing has been written on it yet, so the batch need not fail.
func (s *Store) begin(ctx context.Context) (pgx.Tx, error) {
	for try := 0; ; try++ {
		if err := s.writerConn(ctx); err != nil {
			return nil, err
		}
		tx, err := s.w.conn.Begin(ctx)
		if err == nil {
			return tx, nil
		}
		s.dropWriterConn()
		if try == 1 {
			return nil, fmt.Errorf("postgres store: begin: %w", err)
		}
	}
}

// connectWriter opens a writer connection. Its commits must be durable
// when they return (callers acknowledge mail then): a synchronous_commit
// turned off for the server, database or role is turned back on for this
// session. Stronger settings (remote_write, remote_apply) are kept.
func (s *Store) connectWriter(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, s.w.cfg)
	if err != nil {
		return nil, err
	}
	var sc string
	if err := conn.QueryRow(ctx, `SHOW synchronous_commit`).Scan(&sc); err != nil {
		conn.Close(ctx)
		return nil, fmt.Errorf("read synchronous_commit: %w", err)
	}
	if sc == "off" {
		if _, err := conn.Exec(ctx, `SET synchronous_commit = on`); err != nil {
			conn.Close(ctx)
			return nil, fmt.Errorf("turn synchronous_commit on: %w", err)
		}
		s.log.Warn("postgres store: synchronous_commit is off for this database; posthorn's writer turns it on for its own sessions (accepted mail must be durable)")
	}
	return conn, nil
}

// writerConn (re)connects the writer when its connection was lost.
func (s *Store) writerConn(ctx context.Context) error {
	if s.w.conn != nil && !s.w.conn.IsClosed() {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := s.connectWriter(ctx)
	if err != nil {
		return fmt.Errorf("postgres store: reconnect the writer: %w", err)
	}
	s.w.conn = conn
	return nil
}

func (s *Store) dropWriterConn() {
	if s.w.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		s.w.conn.Close(ctx)
		cancel()
		s.w.conn = nil
	}
}

// ms stores times as Unix milliseconds; the zero time is 0.
func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}
