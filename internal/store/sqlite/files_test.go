package sqlite

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/store/storetest"
)

// TestFilesOwnerOnly: the database and its -wal and -shm files hold
// password and API key hashes; they are created 0600 whatever the umask,
// and an existing world-readable database is tightened.
func TestFilesOwnerOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "posthorn.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	checkModes := func() {
		t.Helper()
		for _, p := range []string{path, path + "-wal", path + "-shm"} {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("%s: mode %v, want 0600", filepath.Base(p), fi.Mode().Perm())
			}
		}
	}
	checkModes()
	s.Close()
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		os.Chmod(p, 0o644)
	}
	if s, err = Open(path); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	checkModes()
}

// TestEmptyDatabaseRefused: a 0-byte database file is an error, not a
// fresh install.
func TestEmptyDatabaseRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "posthorn.db")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Open(path)
	if err == nil {
		s.Close()
		t.Fatal("a 0-byte database file was opened as a fresh database")
	}
	if !strings.Contains(err.Error(), "empty (0-byte)") {
		t.Fatalf("error %q does not say the file is empty", err)
	}
}

// TestWALShrinksWhenIdle: after a burst of writes stops, the WAL file is
// truncated (it used to stay at its largest size for good).
func TestWALShrinksWhenIdle(t *testing.T) {
	path := filepath.Join(t.TempDir(), "posthorn.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	body := make([]byte, 64<<10)
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 40; i++ {
				nm := storetest.NewTestMessage(fmt.Sprintf("m%d-%d", w, i), "a@one.test")
				nm.Message.Body = body
				if err := s.InsertMessages(context.Background(), []*store.NewMessage{nm}); err != nil {
					t.Error(err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	walSize := func() int64 {
		fi, err := os.Stat(path + "-wal")
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	peak := walSize()
	if peak < 1<<20 {
		t.Fatalf("WAL only %d bytes after the load; the test needs a bigger one", peak)
	}
	deadline := time.Now().Add(15 * time.Second)
	for walSize() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("WAL still %d bytes (peak %d) 15s after the load stopped", walSize(), peak)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Still a working store afterwards.
	if err := s.InsertMessages(context.Background(), []*store.NewMessage{storetest.NewTestMessage("after", "a@one.test")}); err != nil {
		t.Fatal(err)
	}
}

// TestCheckpointDoesNotStallWrites: a restarting checkpoint waiting for a
// long reader keeps writers out while it waits; it gives up quickly, so
// acceptance goes on (it used to wait out the readers' 10 s busy timeout,
// and a write behind it failed with "database is locked").
func TestCheckpointDoesNotStallWrites(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "posthorn.db"), withWALRestart(0))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if err := s.InsertMessages(ctx, []*store.NewMessage{storetest.NewTestMessage("first", "a@one.test")}); err != nil {
		t.Fatal(err)
	}
	// A reader holding an old snapshot for the whole test.
	tx, err := s.r.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRow(`SELECT count(*) FROM messages`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	var worst time.Duration
	for i := range 15 {
		t0 := time.Now()
		if err := s.InsertMessages(ctx, []*store.NewMessage{storetest.NewTestMessage(fmt.Sprint("m", i), "a@one.test")}); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		worst = max(worst, time.Since(t0))
		time.Sleep(100 * time.Millisecond) // let the checkpointer tick between writes
	}
	if worst > 2*time.Second {
		t.Fatalf("a write waited %v behind the checkpoint", worst)
	}
}

// withWALRestart makes the checkpointer restart the WAL above size bytes.
func withWALRestart(size int64) Option { return func(s *Store) { s.walRestart = size } }
