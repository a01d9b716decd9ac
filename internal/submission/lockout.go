package submission

import (
	"net/netip"
	"sync"
	"time"
)

// lockout limits AUTH attempts per client address and per username within
// a window. An attempt is reserved BEFORE the password is checked, so
// parallel attempts cannot all pass a check that is counted only after
// the (slow) password hash: at most max attempts per key are ever in
// flight or failed in one window. A successful login gives its own
// reservation back; it does not wipe the other failures, so a client
// holding one good account cannot use it to reset the count of the
// addresses or usernames it is guessing at.
//
// Attempts beyond the limit while some of it is only in flight (not
// failed) wait, up to wait, for those to finish instead of being refused:
// an application opening a pool of connections from one address logs in
// on all of them at once, and its logins all succeed. Guesses gain
// nothing from waiting: they are still checked at most max at a time and
// each failure keeps its count.
//
// Per username, so spreading guesses at one account over many addresses
// does not help; the price is that someone guessing can lock the real
// user out for the window (a temporary 454, not a permanent block).
type lockout struct {
	max    int
	window time.Duration
	wait   time.Duration // how long an attempt waits for one in flight to finish
	now    func() time.Time

	mu      sync.Mutex
	ips     map[netip.Addr]*failCount
	users   map[string]*failCount
	changed chan struct{} // closed (and replaced) when an attempt finishes
}

type failCount struct {
	n        int // failures plus attempts in flight
	inflight int
	since    time.Time
}

// full reports whether f leaves no room for another attempt now, and
// failed whether that is for good (its failures alone reach max).
func (f *failCount) full(max int) (full, failed bool) {
	if f == nil {
		return false, false
	}
	return f.n >= max, f.n-f.inflight >= max
}

// maxTracked bounds the memory a spray of addresses or names can take.
const maxTracked = 100000

func newLockout(max int, window time.Duration) *lockout {
	return &lockout{max: max, window: window, wait: 10 * time.Second, now: time.Now,
		ips: map[netip.Addr]*failCount{}, users: map[string]*failCount{}, changed: make(chan struct{})}
}

// blockReason says which limit refused an attempt.
type blockReason int

const (
	notBlocked blockReason = iota
	ipBlocked
	userBlocked
)

// reserve counts an attempt by ip for user before it is checked. When it
// is not blocked, the caller calls done once the check is over: with
// failed true a wrong password keeps its count, otherwise (a success, or
// a failure of our own) the reservation is given back.
func (l *lockout) reserve(ip netip.Addr, user string) (done func(failed bool), why blockReason) {
	if l.max <= 0 {
		return func(bool) {}, notBlocked
	}
	user = clip(user, 128) // bounds memory; longer names only share a count
	deadline := time.Now().Add(l.wait)
	l.mu.Lock()
	defer l.mu.Unlock()
	for {
		now := l.now()
		fi, fu := current(l.ips, ip, now, l.window), current(l.users, user, now, l.window)
		ipFull, ipFailed := fi.full(l.max)
		userFull, userFailed := fu.full(l.max)
		switch {
		case ipFailed:
			return nil, ipBlocked
		case userFailed:
			return nil, userBlocked
		}
		if !ipFull && !userFull {
			break
		}
		// Full only with attempts in flight: wait for one to finish.
		left := time.Until(deadline)
		if left <= 0 {
			if ipFull {
				return nil, ipBlocked
			}
			return nil, userBlocked
		}
		changed := l.changed
		l.mu.Unlock()
		t := time.NewTimer(left)
		select {
		case <-changed:
		case <-t.C:
		}
		t.Stop()
		l.mu.Lock()
	}
	now := l.now()
	fi, fu := add(l.ips, ip, now), add(l.users, user, now)
	return func(failed bool) {
		l.mu.Lock()
		defer l.mu.Unlock()
		fi.inflight--
		fu.inflight--
		if !failed {
			fi.n--
			fu.n--
		}
		close(l.changed)
		l.changed = make(chan struct{})
	}, notBlocked
}

// current returns k's count if it is still within its window.
func current[K comparable](m map[K]*failCount, k K, now time.Time, window time.Duration) *failCount {
	f := m[k]
	if f != nil && now.Sub(f.since) > window {
		delete(m, k)
		return nil
	}
	return f
}

func add[K comparable](m map[K]*failCount, k K, now time.Time) *failCount {
	f := m[k]
	if f == nil {
		if len(m) >= maxTracked {
			clear(m)
		}
		f = &failCount{since: now}
		m[k] = f
	}
	f.n++
	f.inflight++
	return f
}
