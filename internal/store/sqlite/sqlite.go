// Package sqlite is posthorn's embedded store: one SQLite database in WAL
// mode with synchronous=FULL under the data directory.
//
// All writes go through one writer goroutine that runs every pending write
// request in a single transaction (each inside its own savepoint, so one
// failing request does not undo the others) and commits once: group commit.
// A caller's write returns only after that commit, so it is fsync'd, while
// concurrent callers share one fsync. Reads use a separate pool of
// connections and never wait for the writer (WAL readers see the last
// committed state). The writer's connection writes each commit's WAL
// frames with one call before the fsync (walgather.go).
//
// States follow store's transition table: the lease, outcome, recovery
// and pending-load statements build their state lists from it, Transition
// and RecordOutcomes check requests against it before writing, and the
// deliveries table has CHECK constraints on state and lane (migration 3,
// rebuild.go), so not even a bug in this package stores an unknown state.
// After Close, every write fails with "store is closed" at once.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"sync/atomic"
	"time"

	_ "github.com/mattn/go-sqlite3" // database/sql driver "sqlite3"

	"github.com/posthorn/posthorn/internal/store"
)

// maxBatch bounds how many write requests share one transaction, so that
// one commit's latency stays small under heavy load.
const maxBatch = 512

type writeReq struct {
	// fn must be safe to run again after a rollback (reset what it fills in).
	fn   func(tx *sql.Tx, st *stmts) error
	done chan error
}

// Store implements store.Store on SQLite.
type Store struct {
	w        *sql.DB // exactly one connection: the writer
	r        *sql.DB // readers
	st       *stmts
	reqs     chan *writeReq
	low      chan *writeReq // background writes (retention): see writeLow
	quit     chan struct{}
	ended    chan struct{}
	path     string
	ckptDone chan struct{}
	log      *slog.Logger

	commits, requests atomic.Uint64 // group commit statistics
	lastBatch         int           // size of the previous batch (writer only)
	execNS, commitNS  atomic.Int64  // time spent running requests and committing

	byFolded lazyStmt // AddressSuppressions, on the readers (suppressions.go)

	walRestart int64 // WAL size that makes the checkpointer restart it (walRestartSize; tests lower it)

	late lateState // the late indexes' merge state (lateindex.go; writer only)
	// lowQuiet: how long the writer idles before a background write (tests shorten it).
	lowQuiet time.Duration
}

// WriterStats reports the writer's work so far (metrics; requests/commits
// is the group commit's batching factor).
func (s *Store) WriterStats() store.WriterStats {
	return store.WriterStats{Commits: s.commits.Load(), Requests: s.requests.Load(),
		Exec: time.Duration(s.execNS.Load()), Commit: time.Duration(s.commitNS.Load())}
}

var _ store.Store = (*Store)(nil)

// Option changes how Open sets up the store.
type Option func(*Store)

// WithLogger sets where the store reports background problems (failed
// checkpoints); the default discards them.
func WithLogger(l *slog.Logger) Option { return func(s *Store) { s.log = l } }

// Open opens (creating if needed) the database at path and migrates it.
// A new database file is created readable by its owner only; an existing
// empty (0-byte) one is refused rather than taken for a fresh install.
func Open(path string, opts ...Option) (*Store, error) {
	if err := prepareFile(path); err != nil {
		return nil, err
	}
	q := url.Values{}
	q.Set("_journal_mode", "WAL")
	q.Set("_synchronous", "FULL")
	q.Set("_busy_timeout", "10000")
	q.Set("_txlock", "immediate")
	q.Set("_cache_size", "-32000")
	// Only the writer goroutine uses this connection (database/sql never
	// shares a connection between goroutines either): SQLite's own
	// per-call connection mutex is pure cost.
	q.Set("_mutex", "no")
	q.Set("vfs", walGatherVFS) // the WAL's writes gathered (walgather.go)
	dsn := "file:" + path + "?" + q.Encode()
	w, err := sql.Open("sqlite3", dsn)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	// temp_store=MEMORY keeps the statement journals of multi-row writes
	// (multirow.go) in memory: on disk they would write each page twice.
	if _, err := w.Exec("PRAGMA wal_autocheckpoint=0; PRAGMA temp_store=MEMORY"); err != nil {
		w.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := migrate(w); err != nil {
		w.Close()
		return nil, fmt.Errorf("migrate %s: %w", path, err)
	}
	rq := url.Values{}
	rq.Set("_busy_timeout", "10000")
	rq.Set("_query_only", "1")
	rq.Set("_cache_size", "-16000")
	r, err := sql.Open("sqlite3", "file:"+path+"?"+rq.Encode())
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open %s for reading: %w", path, err)
	}
	r.SetMaxOpenConns(8)
	r.SetMaxIdleConns(8)
	st, err := prepare(w)
	if err != nil {
		w.Close()
		r.Close()
		return nil, err
	}
	s := &Store{path: path, w: w, r: r, st: st, reqs: make(chan *writeReq, 4096), low: make(chan *writeReq), quit: make(chan struct{}), ended: make(chan struct{}),
		ckptDone: make(chan struct{}), log: slog.New(slog.DiscardHandler), walRestart: walRestartSize,
		late: lateState{rows: lateMergeRows, idleAfter: lateIdle, direct: lateDirectBelow}}
	s.lowQuiet = lowQuiet
	for _, o := range opts {
		o(s)
	}
	if err := s.reloadSubscriptions(context.Background()); err != nil {
		w.Close()
		r.Close()
		return nil, err
	}
	if err := s.loadLate(); err != nil {
		w.Close()
		r.Close()
		return nil, err
	}
	s.late.idle = time.NewTimer(time.Hour)
	s.late.idle.Stop()
	go s.writer()
	go s.checkpointer()
	go trimmer(s.quit) // malloc.go
	return s, nil
}

// prepareFile creates the database file with mode 0600 before SQLite
// does (SQLite gives the -wal and -shm files the database file's mode, and
// would create it 0644: the password and API key hashes are in it), or
// checks an existing one: a 0-byte file is refused, since SQLite would
// silently start it as an empty database.
func prepareFile(path string) error {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return fmt.Errorf("create database %s: %w", path, err)
		}
		return f.Close()
	case err != nil:
		return fmt.Errorf("database %s: %w", path, err)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("database %s is not a regular file", path)
	case fi.Size() == 0:
		return fmt.Errorf("database %s is an empty (0-byte) file where a database was expected; "+
			"restore it from a backup (or, only if this data directory never held mail, delete the file to start afresh)", path)
	}
	// Tighten files that an earlier version created readable by others.
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if fi, err := os.Stat(p); err == nil && fi.Mode().Perm()&0o077 != 0 {
			if err := os.Chmod(p, 0o600); err != nil {
				return fmt.Errorf("database file %s: %w", p, err)
			}
		}
	}
	return nil
}

// checkpointer copies the WAL back into the database file in the
// background (the writer has automatic checkpoints turned off), so a
// commit never pays for a checkpoint. A passive checkpoint runs alongside
// readers and the writer; when the WAL has grown large, a restarting one
// lets the next writes reuse it from the start. Once writes have stopped
// for idleTruncate, a truncating checkpoint shrinks the WAL file to zero,
// so a burst of load does not leave a large WAL behind for good. Failures
// are logged and retried on the next tick.
func (s *Store) checkpointer() {
	defer close(s.ckptDone)
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	var (
		conn       *sql.Conn
		lastCommit = s.commits.Load()
		idleSince  = time.Now()
		truncated  = false // the WAL was truncated and nothing was written since
	)
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	for {
		select {
		case <-s.quit:
			return
		case <-t.C:
		}
		if conn == nil {
			c, err := s.r.Conn(context.Background())
			if err != nil {
				s.log.Error("wal checkpoint: connect", "err", err)
				continue
			}
			// This connection writes to the database file, unlike other
			// readers. A restarting or truncating checkpoint keeps new
			// writers out while it waits for readers (a long export, a
			// metrics scan): it gives up after checkpointBusy rather than
			// the readers' 10 s, so acceptance is never held up longer.
			if _, err := c.ExecContext(context.Background(), fmt.Sprintf("PRAGMA query_only=0; PRAGMA busy_timeout=%d", checkpointBusy.Milliseconds())); err != nil {
				s.log.Error("wal checkpoint: connect", "err", err)
				c.Close()
				continue
			}
			conn = c
		}
		if n := s.commits.Load(); n != lastCommit {
			lastCommit, idleSince, truncated = n, time.Now(), false
		}
		mode := "PASSIVE"
		switch {
		case !truncated && time.Since(idleSince) >= idleTruncate:
			mode = "TRUNCATE"
		case truncated:
			continue // nothing new to copy back
		default:
			if fi, err := os.Stat(s.path + "-wal"); err == nil && fi.Size() > s.walRestart {
				mode = "RESTART"
			}
		}
		var busy, logFrames, done int
		err := conn.QueryRowContext(context.Background(), "PRAGMA wal_checkpoint("+mode+")").Scan(&busy, &logFrames, &done)
		switch {
		case err != nil:
			s.log.Error("wal checkpoint failed; retrying", "mode", mode, "err", err)
			conn.Close() // a fresh connection for the retry
			conn = nil
		case busy != 0 && mode != "PASSIVE":
			s.log.Debug("wal checkpoint busy; retrying", "mode", mode)
		case mode == "TRUNCATE":
			truncated = true
		}
	}
}

const (
	checkpointEvery = 500 * time.Millisecond
	// idleTruncate is how long writes must have stopped before the WAL
	// file is truncated.
	idleTruncate = 2 * time.Second
)

// checkpointBusy is how long a checkpoint waits for readers (holding
// writers off meanwhile) before it gives up until the next tick.
const checkpointBusy = 100 * time.Millisecond

// walRestartSize is the WAL size above which the checkpointer restarts
// the WAL instead of only copying it back.
const walRestartSize = 128 << 20

// Close stops the writer after the requests already queued and closes the
// database.
func (s *Store) Close() error {
	close(s.quit)
	<-s.ended
	<-s.ckptDone
	s.st.close()
	err1 := s.r.Close()
	err2 := s.w.Close()
	return errors.Join(err1, err2)
}

var errClosed = errors.New("store is closed")

// write runs fn in the next group commit and waits until it is durable.
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx, st *stmts) error) error {
	return s.queue(ctx, s.reqs, fn)
}

// writeLow runs fn in a transaction of its own, taken only when no other
// write is waiting: background work (retention deletes) never makes an
// acceptance's commit carry its pages, and waits while writes keep coming.
// Keep fn short: a write arriving while it runs still waits for it.
func (s *Store) writeLow(ctx context.Context, fn func(tx *sql.Tx, st *stmts) error) error {
	return s.queue(ctx, s.low, fn)
}

func (s *Store) queue(ctx context.Context, ch chan *writeReq, fn func(tx *sql.Tx, st *stmts) error) error {
	req := &writeReq{fn: fn, done: make(chan error, 1)}
	// Checked first: with room in s.reqs, the select below would pick
	// between queueing and quitting at random.
	select {
	case <-s.quit:
		return errClosed
	default:
	}
	select {
	case ch <- req:
	case <-s.quit:
		return errClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	// Once queued the write will happen; wait for it even if ctx ends so
	// the caller never acts on an unknown outcome. A request queued while
	// Close raced with us may find the writer gone: it never ran.
	select {
	case err := <-req.done:
		return err
	case <-s.ended:
		select {
		case err := <-req.done: // answered by the writer's last drain
			return err
		default:
			return errClosed
		}
	}
}

func (s *Store) writer() {
	defer close(s.ended)
	batch := make([]*writeReq, 0, maxBatch)
	quiet := time.NewTimer(time.Hour)
	quiet.Stop()
writes:
	for {
		var first *writeReq
		select {
		case first = <-s.reqs:
		default:
		}
		if first == nil {
			var idle <-chan time.Time
			if s.lateBehind() > 0 {
				s.late.idle.Reset(s.late.idleAfter)
				idle = s.late.idle.C
			}
			// A background write goes only after s.lowQuiet with nothing
			// else to do: one that starts makes every write arriving
			// meanwhile wait for it, and under load a gap of a few
			// milliseconds is rare, so background work waits for a
			// quiet moment instead of adding to acceptance's tail.
			var low chan *writeReq
			quiet.Reset(s.lowQuiet)
			for first == nil {
				select {
				case first = <-s.reqs:
				case <-idle:
					s.mergeLate() // quiet: leave lookups no tail to scan
					continue writes
				case <-quiet.C:
					low = s.low
				case r := <-low:
					s.commit([]*writeReq{r}) // alone, when nothing else waits
					continue writes
				case <-s.quit:
					// Drain what was queued before Close.
					for {
						select {
						case r := <-s.reqs:
							s.commit([]*writeReq{r})
						default:
							return
						}
					}
				}
			}
		}
		batch = append(batch[:0], first)
		batch = s.fill(batch)
		s.commit(batch)
		if s.lateBehind() >= s.late.rows {
			s.mergeLate()
		}
	}
}

// lowQuiet is how long the writer must have had nothing to do before it
// takes a background write (retention, the metrics' save). At 50,000,000
// events a prune write of 50 events held the writer for 5 to 50 ms
// (pages read from disk), and when it ran whenever the queue was empty,
// acceptance p99 while pruning was 1.5-1.8 times that of the same
// database not pruning (docs/performance.md).
const lowQuiet = 5 * time.Millisecond

// gatherWait is how long the writer lingers for more requests when it
// has only a few: under load, a slightly later commit that carries many
// requests costs far less than many commits (each commit is an fsync, and
// on virtual disks an fsync costs CPU, not only time).
const gatherWait = 250 * time.Microsecond

// fill adds every request already waiting, lingering up to gatherWait
// while more keep arriving.
func (s *Store) fill(batch []*writeReq) []*writeReq {
	var deadline time.Time
	for len(batch) < maxBatch {
		select {
		case r := <-s.reqs:
			batch = append(batch, r)
			continue
		default:
		}
		if s.lastBatch < 2 {
			return batch // light load: commit now, no added latency
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
		case r := <-s.reqs:
			t.Stop()
			batch = append(batch, r)
		case <-t.C:
			return batch
		}
	}
	return batch
}

// commit runs a batch in one transaction and commits once. Requests are
// written to be re-runnable, so the common case needs no savepoints: if one
// request fails, the whole transaction is rolled back and each request is
// run again in its own transaction, so its failure stays its own.
func (s *Store) commit(batch []*writeReq) {
	if len(batch) > 1 {
		if errs, ok := s.runBatch(batch); ok {
			for i, r := range batch {
				r.done <- errs[i]
			}
			return
		}
	}
	for _, r := range batch {
		errs, _ := s.runBatch([]*writeReq{r})
		r.done <- errs[0]
	}
}

// runBatch runs and commits batch; ok is false (and nothing is committed)
// when one of several requests failed.
func (s *Store) runBatch(batch []*writeReq) (errs []error, ok bool) {
	errs = make([]error, len(batch))
	t0 := time.Now()
	tx, err := s.w.Begin()
	if err != nil {
		for i := range errs {
			errs[i] = fmt.Errorf("begin: %w", err)
		}
		return errs, true
	}
	s.st.ev.reset()
	s.st.recentDel = recentRange{} // lateindex.go
	for i, r := range batch {
		if errs[i] = r.fn(tx, s.st); errs[i] != nil {
			tx.Rollback()
			return errs, len(batch) == 1
		}
	}
	if err := s.st.flushRecent(tx, s.late.direct); err != nil {
		tx.Rollback()
		for i := range errs {
			errs[i] = err
		}
		return errs, true
	}
	if err := s.st.ev.flush(tx); err != nil {
		tx.Rollback()
		for i := range errs {
			errs[i] = err
		}
		return errs, true
	}
	s.lastBatch = len(batch)
	s.commits.Add(1)
	s.requests.Add(uint64(len(batch)))
	t1 := time.Now()
	s.execNS.Add(int64(t1.Sub(t0)))
	err = tx.Commit()
	s.commitNS.Add(int64(time.Since(t1)))
	if s.st.subs.added {
		s.st.subs.added = false
		if err == nil {
			s.st.subs.poke() // the webhook sender has new work
		}
	}
	if err != nil {
		for i := range errs {
			errs[i] = fmt.Errorf("commit: %w", err)
		}
	} else {
		s.st.ev.published()
	}
	return errs, true
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
