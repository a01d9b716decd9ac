package queue

import (
	"sync"

	"github.com/posthorn/posthorn/internal/store"
)

// Bodies keeps recently accepted messages in memory, up to a byte budget,
// so the first attempt (almost always within milliseconds of acceptance)
// does not read back from the store what was just written. Entries leave
// in arrival order when the budget is exceeded; a miss reads the store.
type Bodies struct {
	mu     sync.Mutex
	budget int
	used   int
	byID   map[string]*store.Message
	order  []string
	head   int
}

// NewBodies returns a cache holding at most budget bytes of bodies.
func NewBodies(budget int) *Bodies {
	return &Bodies{budget: budget, byID: map[string]*store.Message{}}
}

// Put remembers an accepted message (with its body).
func (b *Bodies) Put(m *store.Message) {
	if b == nil || len(m.Body) > b.budget/8 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.byID[m.ID] = m
	b.order = append(b.order, m.ID)
	b.used += len(m.Body)
	for b.used > b.budget && b.head < len(b.order) {
		id := b.order[b.head]
		b.order[b.head] = ""
		b.head++
		if old, ok := b.byID[id]; ok {
			b.used -= len(old.Body)
			delete(b.byID, id)
		}
	}
	if b.head > 4096 && b.head*2 > len(b.order) {
		b.order = append([]string(nil), b.order[b.head:]...)
		b.head = 0
	}
}

// Get returns the cached message, or nil.
func (b *Bodies) Get(id string) *store.Message {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.byID[id]
}
