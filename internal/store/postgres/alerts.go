package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/posthorn/posthorn/internal/store"
)

const putAlertSQL = `INSERT INTO alerts (key, rule, kind, destination, firing, value, threshold, fired_at, resolved_at, action, action_state, detail)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
	ON CONFLICT (key) DO UPDATE SET rule = excluded.rule, kind = excluded.kind, destination = excluded.destination,
		firing = excluded.firing, value = excluded.value, threshold = excluded.threshold, fired_at = excluded.fired_at,
		resolved_at = excluded.resolved_at, action = excluded.action, action_state = excluded.action_state, detail = excluded.detail`

func putAlertArgs(a store.Alert) []any {
	return []any{a.Key, a.Rule, a.Kind, a.Destination, a.Firing, a.Value, a.Threshold, ms(a.FiredAt), ms(a.ResolvedAt),
		a.Action, a.ActionState, a.Detail}
}

// PutAlert implements store.Alerts: the state and its event in one group
// commit.
func (s *Store) PutAlert(ctx context.Context, a store.Alert, ev store.Event) error {
	return s.write(ctx, func(ctx context.Context, w *wtx) error {
		if _, err := w.tx.Exec(ctx, putAlertSQL, putAlertArgs(a)...); err != nil {
			return fmt.Errorf("store alert %s: %w", a.Key, err)
		}
		w.event(ev)
		return nil
	})
}

// UpdateAlert implements store.Alerts.
func (s *Store) UpdateAlert(ctx context.Context, a store.Alert) error {
	if _, err := s.pool.Exec(ctx, putAlertSQL, putAlertArgs(a)...); err != nil {
		return fmt.Errorf("store alert %s: %w", a.Key, err)
	}
	return nil
}

// ListAlerts implements store.Alerts.
func (s *Store) ListAlerts(ctx context.Context, since time.Time) ([]store.Alert, error) {
	rows, _ := s.pool.Query(ctx, `SELECT key, rule, kind, destination, firing, value, threshold, fired_at, resolved_at, action,
		action_state, detail FROM alerts WHERE firing OR resolved_at >= $1 ORDER BY fired_at DESC, key`, ms(since))
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Alert, error) {
		var a store.Alert
		var fired, resolved int64
		err := r.Scan(&a.Key, &a.Rule, &a.Kind, &a.Destination, &a.Firing, &a.Value, &a.Threshold, &fired, &resolved, &a.Action,
			&a.ActionState, &a.Detail)
		a.FiredAt, a.ResolvedAt = fromMS(fired), fromMS(resolved)
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("list alerts: %w", err)
	}
	if out == nil {
		out = []store.Alert{}
	}
	return out, nil
}

// LastEventID implements store.Alerts.
func (s *Store) LastEventID(ctx context.Context) (int64, error) {
	var id int64
	if err := s.pool.QueryRow(ctx, "SELECT coalesce(max(id), 0) FROM events").Scan(&id); err != nil {
		return 0, fmt.Errorf("last event id: %w", err)
	}
	return id, nil
}

// OldestQueued implements store.Alerts.
func (s *Store) OldestQueued(ctx context.Context) (time.Time, error) {
	var v *int64
	err := s.pool.QueryRow(ctx, `SELECT min(greatest(d.created_at, m.send_at)) FROM deliveries d JOIN messages m ON m.id = d.message_id
		WHERE d.state IN ('queued', 'deferred', 'sending')`).Scan(&v)
	if err != nil {
		return time.Time{}, fmt.Errorf("oldest queued delivery: %w", err)
	}
	if v == nil {
		return time.Time{}, nil
	}
	return fromMS(*v), nil
}
