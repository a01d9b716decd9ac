package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/posthorn/posthorn/internal/store"
)

// dueSchema is the index PendingDue walks: the scheduler's pending
// deliveries in due order (see migrations in schema.go).
var dueSchema = `CREATE INDEX deliveries_due ON deliveries (next_attempt_at, id) WHERE state IN (` +
	store.SQLList(store.SchedulerStates()) + `);`

// PendingDue pages through the scheduler's deliveries in due order
// (next_attempt_at, then id), after the cursor and due by until.
func (s *Store) PendingDue(ctx context.Context, after store.DueCursor, until time.Time, limit int) ([]store.Delivery, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT `+deliveryCols+` FROM deliveries
		WHERE state IN (`+store.SQLList(store.SchedulerStates())+`)
		AND (next_attempt_at, id) > ($1, $2) AND next_attempt_at <= $3
		ORDER BY next_attempt_at, id LIMIT $4`, ms(after.Due), after.ID, ms(until), limit)
	if err != nil {
		return nil, fmt.Errorf("pending deliveries in due order: %w", err)
	}
	defer rows.Close()
	var out []store.Delivery
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pending deliveries in due order: %w", err)
	}
	return out, nil
}
