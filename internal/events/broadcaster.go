package events

import (
	"sync"

	"github.com/posthorn/posthorn/internal/store"
)

// subBuffer is how many commits a follower may be behind before it is
// cut loose.
const subBuffer = 256

// Broadcaster hands committed events to live followers.
type Broadcaster struct {
	mu     sync.Mutex
	subs   map[*Sub]struct{}
	closed bool
}

// NewBroadcaster returns a broadcaster with no followers.
func NewBroadcaster() *Broadcaster { return &Broadcaster{subs: map[*Sub]struct{}{}} }

// Sub is one follower. C carries the events that matched its filter, in
// commit order; it is closed when the follower lagged or the broadcaster
// closed.
type Sub struct {
	C      <-chan []store.Event
	c      chan []store.Event
	match  func(*store.Event) bool
	lagged bool // under Broadcaster.mu
	b      *Broadcaster
}

// Lagged reports whether C was closed because the follower fell behind
// (rather than because the server is stopping).
func (s *Sub) Lagged() bool {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	return s.lagged
}

// Close stops the subscription.
func (s *Sub) Close() {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	if _, ok := s.b.subs[s]; ok {
		delete(s.b.subs, s)
		close(s.c)
	}
}

// Subscribe follows the events match accepts (nil: all). After Close
// the channel of a new subscription is closed at once.
func (b *Broadcaster) Subscribe(match func(*store.Event) bool) *Sub {
	c := make(chan []store.Event, subBuffer)
	s := &Sub{C: c, c: c, match: match, b: b}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		close(c)
		return s
	}
	b.subs[s] = struct{}{}
	return s
}

// Publish hands one commit's events to every follower; it never blocks.
// evs must not be changed afterwards.
func (b *Broadcaster) Publish(evs []store.Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs {
		out := evs
		if s.match != nil {
			out = nil
			for i := range evs {
				if s.match(&evs[i]) {
					out = append(out, evs[i])
				}
			}
			if len(out) == 0 {
				continue
			}
		}
		select {
		case s.c <- out:
		default:
			s.lagged = true
			delete(b.subs, s)
			close(s.c)
		}
	}
}

// Close ends every subscription (the streams return) and refuses new ones.
func (b *Broadcaster) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for s := range b.subs {
		delete(b.subs, s)
		close(s.c)
	}
}
