package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/posthorn/posthorn/internal/store"
)

func putAlert(tx *sql.Tx, a store.Alert) error {
	_, err := tx.Exec(`INSERT OR REPLACE INTO alerts (key, rule, kind, destination, firing, value, threshold, fired_at, resolved_at,
		action, action_state, detail) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)`, a.Key, a.Rule, a.Kind, a.Destination, b2i(a.Firing), a.Value,
		a.Threshold, ms(a.FiredAt), ms(a.ResolvedAt), a.Action, a.ActionState, a.Detail)
	if err != nil {
		return fmt.Errorf("store alert %s: %w", a.Key, err)
	}
	return nil
}

// PutAlert implements store.Alerts.
func (s *Store) PutAlert(ctx context.Context, a store.Alert, ev store.Event) error {
	return s.write(ctx, func(tx *sql.Tx, st *stmts) error {
		if err := putAlert(tx, a); err != nil {
			return err
		}
		return st.ev.write(tx, tx.Stmt(st.insEvent), ev, nil)
	})
}

// UpdateAlert implements store.Alerts.
func (s *Store) UpdateAlert(ctx context.Context, a store.Alert) error {
	return s.write(ctx, func(tx *sql.Tx, _ *stmts) error { return putAlert(tx, a) })
}

// ListAlerts implements store.Alerts.
func (s *Store) ListAlerts(ctx context.Context, since time.Time) ([]store.Alert, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT key, rule, kind, destination, firing, value, threshold, fired_at, resolved_at, action,
		action_state, detail FROM alerts WHERE firing = 1 OR resolved_at >= ? ORDER BY fired_at DESC, key`, ms(since))
	if err != nil {
		return nil, fmt.Errorf("list alerts: %w", err)
	}
	defer rows.Close()
	out := []store.Alert{}
	for rows.Next() {
		var a store.Alert
		var firing int
		var fired, resolved int64
		if err := rows.Scan(&a.Key, &a.Rule, &a.Kind, &a.Destination, &firing, &a.Value, &a.Threshold, &fired, &resolved, &a.Action,
			&a.ActionState, &a.Detail); err != nil {
			return nil, err
		}
		a.Firing, a.FiredAt, a.ResolvedAt = firing == 1, fromMS(fired), fromMS(resolved)
		out = append(out, a)
	}
	return out, rows.Err()
}

// LastEventID implements store.Alerts.
func (s *Store) LastEventID(ctx context.Context) (int64, error) {
	var id sql.NullInt64
	if err := s.r.QueryRowContext(ctx, "SELECT max(id) FROM events").Scan(&id); err != nil {
		return 0, fmt.Errorf("last event id: %w", err)
	}
	return id.Int64, nil
}

// OldestQueued implements store.Alerts.
func (s *Store) OldestQueued(ctx context.Context) (time.Time, error) {
	var v sql.NullInt64
	err := s.r.QueryRowContext(ctx, `SELECT min(max(d.created_at, m.send_at)) FROM deliveries d JOIN messages m ON m.id = d.message_id
		WHERE d.state IN ('queued', 'deferred', 'sending')`).Scan(&v)
	if err != nil {
		return time.Time{}, fmt.Errorf("oldest queued delivery: %w", err)
	}
	if !v.Valid {
		return time.Time{}, nil
	}
	return fromMS(v.Int64), nil
}
