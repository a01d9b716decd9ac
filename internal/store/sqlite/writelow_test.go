package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
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
