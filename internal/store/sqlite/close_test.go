package sqlite

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/store"
)

// A write sent after the writer has stopped must fail at once instead of
// waiting for a commit that will never come.
func TestWriteAfterCloseFails(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "posthorn.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		// Several writes: with a free slot in the request channel, a
		// select between "queue it" and "closed" picks either at random.
		for i := 0; i < 50; i++ {
			if err := s.RecordEvent(context.Background(), store.Event{Type: store.EventThrottle}); !errors.Is(err, errClosed) {
				done <- fmt.Errorf("write %d after Close: got %v, want %v", i, err, errClosed)
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("write after Close still waiting after 10s")
	}
}

// Writes racing with Close each end: committed, or refused as closed.
func TestWritesRacingCloseEnd(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "posthorn.db"))
	if err != nil {
		t.Fatal(err)
	}
	const writers = 8
	results := make(chan error, writers)
	for w := 0; w < writers; w++ {
		go func() {
			for {
				err := s.RecordEvent(context.Background(), store.Event{Type: store.EventThrottle})
				if err != nil {
					results <- err
					return
				}
			}
		}()
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	timeout := time.After(10 * time.Second)
	for w := 0; w < writers; w++ {
		select {
		case err := <-results:
			if !errors.Is(err, errClosed) {
				t.Fatalf("write racing Close: %v, want %v", err, errClosed)
			}
		case <-timeout:
			t.Fatalf("%d writers still waiting 10s after Close", writers-w)
		}
	}
}
