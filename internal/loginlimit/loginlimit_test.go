package loginlimit

import (
	"sync"
	"testing"
	"time"
)

func TestLoginLimit(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := New(3, 10*time.Minute, nil)
	l.now = func() time.Time { return now }
	// Parallel attempts are counted before they are checked: only max pass.
	var wg sync.WaitGroup
	var mu sync.Mutex
	passed := 0
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, ok := l.Reserve("ip:a", "user:x"); ok {
				mu.Lock()
				passed++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if passed != 3 {
		t.Fatalf("%d attempts passed, want 3", passed)
	}
	// Another user from the same address is blocked too; the user from
	// another address as well.
	if _, ok := l.Reserve("ip:a", "user:y"); ok {
		t.Fatal("address over the limit passed")
	}
	if _, ok := l.Reserve("ip:b", "user:x"); ok {
		t.Fatal("user over the limit passed")
	}
	// A success gives its reservation back.
	undo, ok := l.Reserve("ip:c", "user:z")
	if !ok {
		t.Fatal("fresh address and user blocked")
	}
	undo()
	if c := l.m["ip:c"]; c.n != 0 {
		t.Fatalf("success kept its count: %d", c.n)
	}
	// The window ends.
	now = now.Add(11 * time.Minute)
	if _, ok := l.Reserve("ip:a", "user:x"); !ok {
		t.Fatal("still blocked after the window")
	}
}
