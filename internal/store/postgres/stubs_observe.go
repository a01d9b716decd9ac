package postgres

// Stubs of the observer (store.Observer: queue shape, pending ages, exports) not written yet.
// Delete each stub as its real method lands.

import (
	"context"
	"time"

	"github.com/posthorn/posthorn/internal/store"
)

func (s *Store) QueueShape(ctx context.Context) ([]store.ShapeRow, error) {
	return nil, errNotImplemented
}

func (s *Store) PendingAges(ctx context.Context, now time.Time, edges []time.Duration, states []store.State) ([]store.DomainAges, error) {
	return nil, errNotImplemented
}

func (s *Store) PendingByDomain(ctx context.Context, tenantID string) ([]store.DomainQueue, error) {
	return nil, errNotImplemented
}

func (s *Store) AttemptsAfter(ctx context.Context, after int64, limit int) ([]store.AttemptRow, error) {
	return nil, errNotImplemented
}

func (s *Store) EventsAfter(ctx context.Context, after int64, types []string, limit int) ([]store.EventRow, int64, error) {
	return nil, 0, errNotImplemented
}

func (s *Store) MessagesAfter(ctx context.Context, after int64, limit int) ([]store.MessageRow, error) {
	return nil, errNotImplemented
}
