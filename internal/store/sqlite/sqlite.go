// Package sqlite is posthorn's embedded store: one SQLite database in WAL
// mode with synchronous=FULL under the data directory.
//
// All writes go through one writer goroutine that runs every pending write
// request in a single transaction (each inside its own savepoint, so one
// failing request does not undo the others) and commits once: group commit.
// A caller's write returns only after that commit, so it is fsync'd, while
// concurrent callers share one fsync. Reads use a separate pool of
// connections and never wait for the writer (WAL readers see the last
// committed state).
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"time"

	_ "github.com/mattn/go-sqlite3" // database/sql driver "sqlite3"

	"github.com/posthorn/posthorn/internal/store"
)

// maxBatch bounds how many write requests share one transaction, so that
// one commit's latency stays small under heavy load.
const maxBatch = 512

type writeReq struct {
	fn   func(tx *sql.Tx, st *stmts) error
	done chan error
}

// Store implements store.Store on SQLite.
type Store struct {
	w     *sql.DB // exactly one connection: the writer
	r     *sql.DB // readers
	st    *stmts
	reqs  chan *writeReq
	quit  chan struct{}
	ended chan struct{}
}

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) the database at path and migrates it.
func Open(path string) (*Store, error) {
	q := url.Values{}
	q.Set("_journal_mode", "WAL")
	q.Set("_synchronous", "FULL")
	q.Set("_busy_timeout", "10000")
	q.Set("_txlock", "immediate")
	q.Set("_cache_size", "-32000")
	dsn := "file:" + path + "?" + q.Encode()
	w, err := sql.Open("sqlite3", dsn)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
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
	s := &Store{w: w, r: r, st: st, reqs: make(chan *writeReq, 4096), quit: make(chan struct{}), ended: make(chan struct{})}
	go s.writer()
	return s, nil
}

// Close stops the writer after the requests already queued and closes the
// database.
func (s *Store) Close() error {
	close(s.quit)
	<-s.ended
	s.st.close()
	err1 := s.r.Close()
	err2 := s.w.Close()
	return errors.Join(err1, err2)
}

var errClosed = errors.New("store is closed")

// write runs fn in the next group commit and waits until it is durable.
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx, st *stmts) error) error {
	req := &writeReq{fn: fn, done: make(chan error, 1)}
	select {
	case s.reqs <- req:
	case <-s.quit:
		return errClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	// Once queued the write will happen; wait for it even if ctx ends so
	// the caller never acts on an unknown outcome.
	return <-req.done
}

func (s *Store) writer() {
	defer close(s.ended)
	batch := make([]*writeReq, 0, maxBatch)
	for {
		var first *writeReq
		select {
		case first = <-s.reqs:
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
		batch = append(batch[:0], first)
	fill:
		for len(batch) < maxBatch {
			select {
			case r := <-s.reqs:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		s.commit(batch)
	}
}

// commit runs a batch in one transaction. Each request runs in a savepoint
// so its failure is its own; a failed commit fails them all.
func (s *Store) commit(batch []*writeReq) {
	errs := make([]error, len(batch))
	tx, err := s.w.Begin()
	if err != nil {
		for _, r := range batch {
			r.done <- fmt.Errorf("begin: %w", err)
		}
		return
	}
	single := len(batch) == 1
	for i, r := range batch {
		if single {
			errs[i] = r.fn(tx, s.st)
			continue
		}
		if _, err := tx.Exec("SAVEPOINT req"); err != nil {
			errs[i] = fmt.Errorf("savepoint: %w", err)
			continue
		}
		if errs[i] = r.fn(tx, s.st); errs[i] != nil {
			if _, err := tx.Exec("ROLLBACK TO req"); err != nil {
				errs[i] = errors.Join(errs[i], err)
			}
		}
		if _, err := tx.Exec("RELEASE req"); err != nil && errs[i] == nil {
			errs[i] = fmt.Errorf("release savepoint: %w", err)
		}
	}
	if single && errs[0] != nil {
		tx.Rollback()
		batch[0].done <- errs[0]
		return
	}
	if err := tx.Commit(); err != nil {
		for _, r := range batch {
			r.done <- fmt.Errorf("commit: %w", err)
		}
		return
	}
	for i, r := range batch {
		r.done <- errs[i]
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
