package submission

import (
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestLockoutReservesBeforeChecking: of many attempts in flight at once,
// only max get through to a password check; successes give their
// reservation back; usernames are limited across addresses.
func TestLockoutReservesBeforeChecking(t *testing.T) {
	l := newLockout(10, time.Minute)
	l.wait = 50 * time.Millisecond // the 90 others wait for an attempt in flight to end; none does
	ip := netip.MustParseAddr("192.0.2.1")
	var passed atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if _, why := l.reserve(ip, fmt.Sprint("user", i)); why == notBlocked {
				passed.Add(1) // and the password turns out wrong: no undo
			}
		}(i)
	}
	wg.Wait()
	if passed.Load() != 10 {
		t.Fatalf("%d of 100 parallel attempts reached the password check, want 10", passed.Load())
	}
	if _, why := l.reserve(ip, "fresh"); why != ipBlocked {
		t.Fatalf("11th attempt: %v, want ipBlocked", why)
	}

	// Successes do not use up the limit.
	ok := netip.MustParseAddr("192.0.2.2")
	for i := 0; i < 50; i++ {
		done, why := l.reserve(ok, "good")
		if why != notBlocked {
			t.Fatalf("success %d blocked: %v", i, why)
		}
		done(false)
	}

	// One username, guessed from many addresses.
	for i := 0; i < 10; i++ {
		if _, why := l.reserve(netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), "victim"); why != notBlocked {
			t.Fatalf("guess %d: %v", i, why)
		}
	}
	if _, why := l.reserve(netip.MustParseAddr("203.0.113.9"), "victim"); why != userBlocked {
		t.Fatalf("victim from a fresh address: %v, want userBlocked", why)
	}

	// The window passes.
	l.now = func() time.Time { return time.Now().Add(2 * time.Minute) }
	if _, why := l.reserve(ip, "victim"); why != notBlocked {
		t.Fatalf("after the window: %v", why)
	}
}

// TestLockoutParallelSuccesses: an application logging in on a pool of
// connections from one address at once (more than max) is not refused:
// the logins beyond max wait for those in flight, and all succeed. Wrong
// passwords in parallel still reach the check at most max times.
func TestLockoutParallelSuccesses(t *testing.T) {
	l := newLockout(10, time.Minute)
	ip := netip.MustParseAddr("192.0.2.7")
	var refused atomic.Int64
	var wg sync.WaitGroup
	for range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			done, why := l.reserve(ip, "app")
			if why != notBlocked {
				refused.Add(1)
				return
			}
			time.Sleep(20 * time.Millisecond) // the password hash
			done(false)
		}()
	}
	wg.Wait()
	if refused.Load() != 0 {
		t.Fatalf("%d of 30 parallel good logins refused", refused.Load())
	}

	var checked atomic.Int64
	guesser := netip.MustParseAddr("192.0.2.8")
	for i := range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			done, why := l.reserve(guesser, fmt.Sprint("guess", i))
			if why != notBlocked {
				return
			}
			checked.Add(1)
			time.Sleep(5 * time.Millisecond)
			done(true)
		}()
	}
	wg.Wait()
	if checked.Load() != 10 {
		t.Fatalf("%d parallel wrong passwords were checked, want 10", checked.Load())
	}
}
