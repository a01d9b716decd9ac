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
// Per username, so spreading guesses at one account over many addresses
// does not help; the price is that someone guessing can lock the real
// user out for the window (a temporary 454, not a permanent block).
type lockout struct {
	max    int
	window time.Duration
	now    func() time.Time

	mu    sync.Mutex
	ips   map[netip.Addr]*failCount
	users map[string]*failCount
}

type failCount struct {
	n     int // failures plus attempts in flight
	since time.Time
}

// maxTracked bounds the memory a spray of addresses or names can take.
const maxTracked = 100000

func newLockout(max int, window time.Duration) *lockout {
	return &lockout{max: max, window: window, now: time.Now, ips: map[netip.Addr]*failCount{}, users: map[string]*failCount{}}
}

// blockReason says which limit refused an attempt.
type blockReason int

const (
	notBlocked blockReason = iota
	ipBlocked
	userBlocked
)

// reserve counts an attempt by ip for user before it is checked. When it
// is not blocked, the caller calls undo after a success (or a failure of
// its own); a failed login keeps the reservation as a counted failure.
func (l *lockout) reserve(ip netip.Addr, user string) (undo func(), why blockReason) {
	if l.max <= 0 {
		return func() {}, notBlocked
	}
	user = clip(user, 128) // bounds memory; longer names only share a count
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	fi, fu := current(l.ips, ip, now, l.window), current(l.users, user, now, l.window)
	switch {
	case fi != nil && fi.n >= l.max:
		return nil, ipBlocked
	case fu != nil && fu.n >= l.max:
		return nil, userBlocked
	}
	fi, fu = add(l.ips, ip, now), add(l.users, user, now)
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		fi.n--
		fu.n--
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
	return f
}
