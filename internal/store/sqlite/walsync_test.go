package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/store/storetest"
)

// blockingSync replaces the store's fdatasync: each call reports itself on
// called and waits for a value on release (the error it returns), or for
// the test's end (so that a failed test still closes the store).
func blockingSync(t *testing.T, s *Store) (called chan struct{}, release chan error) {
	called, release = make(chan struct{}, 16), make(chan error)
	ended := make(chan struct{})
	t.Cleanup(func() { close(ended) }) // runs before the store's Close cleanup
	s.wal.sync = func(f *os.File) error {
		called <- struct{}{}
		select {
		case err := <-release:
			if err != nil {
				return err
			}
		case <-ended:
		}
		return fdatasync(f)
	}
	return called, release
}

func openForSync(t *testing.T) (*Store, string) {
	path := filepath.Join(t.TempDir(), "posthorn.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

// countDeliveries reads through a plain connection of its own (the
// default VFS, not the store's pools): it sees only what is in the WAL
// file, not in the writer's gathering buffer.
func countDeliveries(t *testing.T, path string) int {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?_query_only=1")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM deliveries").Scan(&n); err != nil {
		t.Fatalf("read from another connection: %v", err)
	}
	return n
}

func insertAsync(s *Store, id string) chan error {
	done := make(chan error, 1)
	go func() {
		done <- s.InsertMessages(context.Background(), []*store.NewMessage{storetest.NewTestMessage(id, "a@x.test")})
	}()
	return done
}

func notYet(t *testing.T, done chan error, what string) {
	t.Helper()
	select {
	case err := <-done:
		t.Fatalf("%s returned (%v) before the WAL fsync that covers it", what, err)
	case <-time.After(100 * time.Millisecond):
	}
}

// A write is answered only after the WAL fsync that covers its commit;
// the commit's frames are in the WAL file (not the writer's buffer) when
// that fsync starts; and the writer commits the next batch while the
// fsync runs (pipelined group commit, walsync.go).
func TestWriteAnsweredAfterWALSync(t *testing.T) {
	s, path := openForSync(t)
	called, release := blockingSync(t, s)

	first := insertAsync(s, "m1")
	<-called // the first commit's fsync has started, and waits
	notYet(t, first, "the first write")
	if n := countDeliveries(t, path); n != 1 {
		t.Fatalf("another connection sees %d deliveries while the fsync runs, want 1 (frames written before the fsync)", n)
	}

	second := insertAsync(s, "m2")
	deadline := time.Now().Add(5 * time.Second)
	for countDeliveries(t, path) != 2 {
		if time.Now().After(deadline) {
			t.Fatal("the writer did not commit the second write while the first fsync ran")
		}
		time.Sleep(10 * time.Millisecond)
	}
	notYet(t, second, "the second write")

	release <- nil // the first fsync returns
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	notYet(t, second, "the second write") // its commit came after the first fsync began
	<-called
	release <- nil
	if err := <-second; err != nil {
		t.Fatal(err)
	}
	if got := s.syncs.Load(); got != 2 {
		t.Fatalf("%d fsyncs, want 2", got)
	}
}

// A failed fsync fails the writes it was to cover, and every write after
// it: the kernel may have dropped the pages, so a later fsync that
// succeeds proves nothing. Reads still work.
func TestWALSyncFailureRefusesWrites(t *testing.T) {
	s, _ := openForSync(t)
	called, release := blockingSync(t, s)

	done := insertAsync(s, "m1")
	<-called
	release <- syscall.EIO
	if err := <-done; !errors.Is(err, syscall.EIO) {
		t.Fatalf("write covered by a failed fsync: got %v, want EIO", err)
	}
	if err := <-insertAsync(s, "m2"); !errors.Is(err, syscall.EIO) {
		t.Fatalf("write after a failed fsync: got %v, want EIO", err)
	}
	select {
	case <-called:
		t.Fatal("the store tried another fsync after one failed")
	default:
	}
	if _, err := s.MessageDeliveries(context.Background(), "m1"); err != nil {
		t.Fatalf("read after a failed fsync: %v", err)
	}
}
