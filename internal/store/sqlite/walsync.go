package sqlite

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"

	"github.com/posthorn/posthorn/internal/store"
)

// Pipelined group commit. The writer's connection runs with
// synchronous=NORMAL: SQLite writes each commit's WAL frames (and, when
// the WAL restarts, syncs its new header, so a torn later commit can never
// be mistaken for a good one) but does not fsync the commit. The writer
// hands each committed batch to the syncer goroutine and starts on the
// next one at once; the syncer fsyncs the WAL file and only then answers
// the batch's callers. One fsync covers every commit written before it, so
// while one fsync is in flight the writer commits the next batch, and the
// fsync after it answers both. A caller's write still returns only when
// its commit is on disk: the promise of docs/durability.md is kept, and
// the writer no longer idles for the length of each fsync.
//
// Answers go out in commit order, failures included: a request that saw
// an earlier batch's rows (an idempotency key already taken) is never
// answered before that batch is durable.

// committed is a batch the writer has run, waiting for the syncer.
type committed struct {
	reqs    []*writeReq
	errs    []error
	durable bool          // something was committed: answer after an fsync
	evs     []store.Event // events to hand to the sink once durable
	poke    bool          // webhook outbox rows were added
}

// syncer answers committed batches in order, fsyncing the WAL once for
// every group of batches that arrived while the previous fsync ran.
func (s *Store) syncer() {
	defer close(s.syncDone)
	var group []*committed
	for c := range s.acks {
		group = append(group[:0], c)
	more:
		for {
			select {
			case c, ok := <-s.acks:
				if !ok {
					break more
				}
				group = append(group, c)
			default:
				break more
			}
		}
		var err error
		for _, c := range group {
			if c.durable {
				err = s.syncWAL()
				break
			}
		}
		for _, c := range group {
			s.answer(c, err)
		}
	}
}

// syncWAL makes every commit written so far durable. After one failed
// fsync the store refuses every write (the kernel may have dropped the
// dirty pages, and a later fsync could report success without them).
func (s *Store) syncWAL() error {
	if p := s.syncErr.Load(); p != nil {
		return *p
	}
	s.syncs.Add(1)
	err := s.wal.syncNow()
	if err != nil {
		err = fmt.Errorf("fsync of the WAL failed, the store refuses writes until restarted: %w", err)
		s.syncErr.Store(&err)
		s.log.Error("store: WAL fsync failed; refusing writes", "err", err)
	}
	return err
}

func (s *Store) answer(c *committed, syncErr error) {
	if c.durable && syncErr == nil {
		if c.poke {
			s.st.subs.poke() // the webhook sender has new work
		}
		if fn := s.st.ev.sink.Load(); fn != nil && len(c.evs) > 0 {
			(*fn)(c.evs)
		}
	}
	for i, r := range c.reqs {
		err := c.errs[i]
		if c.durable && err == nil && syncErr != nil {
			err = syncErr
		}
		r.done <- err
	}
}

// walFile is the syncer's own handle on the WAL file. Linux's fdatasync
// flushes the file's data whichever descriptor wrote it. SQLite deletes
// the WAL only when its last connection closes, after copying the WAL into
// the database and syncing that, so a handle to a deleted file (no links
// left) is dropped and the path opened again; if no WAL is there, what it
// held is in the database file already.
type walFile struct {
	path string
	f    *os.File
	sync func(f *os.File) error // fdatasync; tests replace it
}

func (w *walFile) syncNow() error {
	if w.f != nil {
		var st syscall.Stat_t
		if err := syscall.Fstat(int(w.f.Fd()), &st); err != nil || st.Nlink == 0 {
			w.f.Close()
			w.f = nil
		}
	}
	if w.f == nil {
		f, err := os.Open(w.path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("open WAL: %w", err)
		}
		w.f = f
	}
	if err := w.sync(w.f); err != nil {
		return fmt.Errorf("fdatasync %s: %w", w.path, err)
	}
	return nil
}

func (w *walFile) close() {
	if w.f != nil {
		w.f.Close()
		w.f = nil
	}
}

func fdatasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			return err
		}
	}
}
