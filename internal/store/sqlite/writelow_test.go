package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"
)

// TestWriteLowYields: a background write (retention) waits while other
// writes are queued and never shares their commit, so an acceptance never
// carries a prune's pages or waits for them once it is queued.
func TestWriteLowYields(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	var mu sync.Mutex
	var ran []string
	commitOf := map[string]uint64{}
	record := func(name string) func(*sql.Tx, *stmts) error {
		return func(*sql.Tx, *stmts) error {
			mu.Lock()
			defer mu.Unlock()
			ran = append(ran, name)
			commitOf[name] = s.commits.Load() // the same for requests in one commit
			return nil
		}
	}
	// Hold the writer in a first write while the others queue up.
	started, hold := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.write(ctx, func(*sql.Tx, *stmts) error {
			close(started)
			<-hold
			return nil
		})
	}()
	<-started
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := s.writeLow(ctx, record("low")); err != nil {
			t.Error(err)
		}
	}()
	writes := []string{"w1", "w2", "w3", "w4", "w5"}
	for _, w := range writes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.write(ctx, record(w)); err != nil {
				t.Error(err)
			}
		}()
	}
	for len(s.reqs) < len(writes) { // all queued behind the held write
		runtime.Gosched()
	}
	close(hold)
	wg.Wait()
	if len(ran) != 6 || ran[5] != "low" {
		t.Fatalf("order %v: the background write ran before queued writes", ran)
	}
	for _, w := range writes {
		if commitOf[w] == commitOf["low"] {
			t.Fatalf("the background write shared commit %d with %s (order %v)", commitOf[w], w, ran)
		}
	}
}

// TestWriteLowWaitsForAQuietWriter: a background write does not start
// in a short gap between other writes, only once the writer has had
// nothing to do for lowQuiet (a prune that starts holds up every write
// that arrives while it runs).
func TestWriteLowWaitsForAQuietWriter(t *testing.T) {
	const quiet = 60 * time.Millisecond
	s, err := Open(filepath.Join(t.TempDir(), "db"), func(s *Store) { s.lowQuiet = quiet })
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	ran := make(chan time.Time, 1)
	go func() {
		if err := s.writeLow(ctx, func(*sql.Tx, *stmts) error { ran <- time.Now(); return nil }); err != nil {
			t.Error(err)
		}
	}()
	// Writes 10 ms apart for 300 ms: gaps far shorter than quiet.
	var last time.Time
	for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if err := s.write(ctx, func(*sql.Tx, *stmts) error { return nil }); err != nil {
			t.Fatal(err)
		}
		last = time.Now()
		select {
		case at := <-ran:
			t.Fatalf("the background write ran %s after a write, between writes 10 ms apart", at.Sub(last)+10*time.Millisecond)
		default:
		}
	}
	select {
	case at := <-ran:
		if gap := at.Sub(last); gap < quiet-5*time.Millisecond {
			t.Fatalf("the background write ran %s after the last write, want %s or more", gap, quiet)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the background write never ran once the writer was quiet")
	}
}
