package postgres

// Stubs of the core part (queue, events, suppressions, observer) not written yet.
// Delete each stub as its real method lands.

import (
	"context"
	"time"

	"github.com/posthorn/posthorn/internal/store"
)

func (s *Store) InsertMessages(ctx context.Context, msgs []*store.NewMessage) error {
	return errNotImplemented
}

func (s *Store) SetDKIMSignatures(ctx context.Context, sigs []store.DKIMSignature) error {
	return errNotImplemented
}

func (s *Store) Lease(ctx context.Context, ids []int64, now, retryAt time.Time) ([]int64, error) {
	return nil, errNotImplemented
}

func (s *Store) RecordOutcomes(ctx context.Context, outs []store.Outcome) error {
	return errNotImplemented
}

func (s *Store) RecoverLeases(ctx context.Context, now time.Time) (int, error) {
	return 0, errNotImplemented
}

func (s *Store) RescueLeases(ctx context.Context, ids []int64, now time.Time) ([]store.Delivery, error) {
	return nil, errNotImplemented
}

func (s *Store) LoadPending(ctx context.Context, fn func(*store.Delivery) error) error {
	return errNotImplemented
}

func (s *Store) Transition(ctx context.Context, spec store.TransitionSpec) ([]store.Delivery, error) {
	return nil, errNotImplemented
}

func (s *Store) RecordEvent(ctx context.Context, e store.Event) error {
	return errNotImplemented
}

func (s *Store) PutSuppressions(ctx context.Context, ss []store.Suppression) error {
	return errNotImplemented
}

func (s *Store) DeleteSuppression(ctx context.Context, tenantID, kind, value string) (bool, error) {
	return false, errNotImplemented
}

func (s *Store) ListSuppressions(ctx context.Context, tenantID string) ([]store.Suppression, error) {
	return nil, errNotImplemented
}

func (s *Store) EachSuppression(ctx context.Context, tenantID string, fn func(store.Suppression) error) error {
	return errNotImplemented
}

func (s *Store) AddressSuppressions(ctx context.Context, tenantID, folded string) ([]store.Suppression, error) {
	return nil, errNotImplemented
}

func (s *Store) PurgeIdempotency(ctx context.Context, now time.Time) (int, error) {
	return 0, errNotImplemented
}

func (s *Store) ListDeliveries(ctx context.Context, f store.DeliveryFilter) ([]store.Delivery, error) {
	return nil, errNotImplemented
}

func (s *Store) CountDeliveries(ctx context.Context, tenantID string) (map[store.State]int, error) {
	return nil, errNotImplemented
}

func (s *Store) GetMessage(ctx context.Context, tenantID, id string, withBody bool) (*store.Message, error) {
	return nil, errNotImplemented
}

func (s *Store) MessageDeliveries(ctx context.Context, messageID string) ([]store.Delivery, error) {
	return nil, errNotImplemented
}

func (s *Store) Attempts(ctx context.Context, messageID string) ([]store.Attempt, error) {
	return nil, errNotImplemented
}

func (s *Store) Events(ctx context.Context, f store.EventFilter) ([]store.Event, error) {
	return nil, errNotImplemented
}

func (s *Store) Report(ctx context.Context, q store.ReportQuery) ([]store.ReportRow, error) {
	return nil, errNotImplemented
}

func (s *Store) PruneEvents(ctx context.Context, cutoff time.Time, limit int) (int, error) {
	return 0, errNotImplemented
}

func (s *Store) PruneBodies(ctx context.Context, cutoff time.Time, after int64, limit int) (n int, next int64, done bool, err error) {
	return 0, 0, false, errNotImplemented
}

func (s *Store) SetEventSink(fn func([]store.Event)) {

}

func (s *Store) CountEvents(ctx context.Context, f store.EventFilter, max int) (int, error) {
	return 0, errNotImplemented
}
