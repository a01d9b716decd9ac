package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/posthorn/posthorn/internal/store"
)

// The read side of metrics and the queue summary (store.Observer).
//
// QueueShape reads only the covering index deliveries_queue (state,
// next_attempt_at, id, lane, created_at over the pending states and
// dead_letter), so a scrape with a million pending deliveries counts
// index entries and never touches the table. The *After methods walk the
// append-only tables from a cursor by primary key; SQLite's single writer
// assigns row IDs in commit order, so a reader never sees a later commit
// with a smaller ID.

var _ store.Observer = (*Store)(nil)

// shapeIndex is migration 4. Its state list is written out: a released
// migration never changes. (Replaced by deliveries_queue: schema.go.)
var shapeIndex = sqlMigration(`CREATE INDEX deliveries_shape ON deliveries(state, lane, created_at)
	WHERE state IN ('scheduled','queued','sending','deferred','held','dead_letter')`)

// shapeLanes are the lanes QueueShape counts: all there are (the table's
// CHECK constraint allows no other).
var shapeLanes = []store.Lane{store.LaneHigh, store.LaneNormal, store.LaneLow}

// queueShapeSQL counts each state's deliveries per lane in one ordered
// pass over the index's state ranges: the index is ordered by state, then
// due time, not by lane, so a GROUP BY state, lane would sort them all.
func queueShapeSQL() string {
	var cols []string
	for _, l := range shapeLanes {
		cols = append(cols, fmt.Sprintf("sum(lane = '%s'), min(CASE WHEN lane = '%s' THEN created_at END)", l, l))
	}
	return `SELECT state, ` + strings.Join(cols, ", ") + ` FROM deliveries INDEXED BY deliveries_queue
		WHERE ` + queueIndexCond + ` GROUP BY state`
}

// QueueShape implements store.Observer.
func (s *Store) QueueShape(ctx context.Context) ([]store.ShapeRow, error) {
	rows, err := s.r.QueryContext(ctx, queueShapeSQL())
	if err != nil {
		return nil, fmt.Errorf("queue shape: %w", err)
	}
	defer rows.Close()
	var out []store.ShapeRow
	for rows.Next() {
		var state string
		counts := make([]int, len(shapeLanes))
		oldest := make([]sql.NullInt64, len(shapeLanes))
		dest := []any{&state}
		for i := range shapeLanes {
			dest = append(dest, &counts[i], &oldest[i])
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("queue shape: %w", err)
		}
		for i, l := range shapeLanes {
			if counts[i] > 0 {
				out = append(out, store.ShapeRow{State: store.State(state), Lane: l, Count: counts[i], Oldest: fromMS(oldest[i].Int64)})
			}
		}
	}
	return out, rows.Err()
}

// PendingAges implements store.Observer.
func (s *Store) PendingAges(ctx context.Context, now time.Time, edges []time.Duration, states []store.State) ([]store.DomainAges, error) {
	if len(states) == 0 {
		states = store.PendingStates
	}
	for _, st := range states {
		if !st.Valid() {
			return nil, fmt.Errorf("pending ages: unknown state %q", st)
		}
	}
	rows, err := s.r.QueryContext(ctx, `SELECT domain, max(provider), `+store.AgeBucketSQL(now, edges)+` AS b, count(*) FROM deliveries
		WHERE state IN (`+store.SQLList(states)+`) GROUP BY domain, b ORDER BY domain`)
	if err != nil {
		return nil, fmt.Errorf("pending ages: %w", err)
	}
	defer rows.Close()
	var out []store.DomainAges
	for rows.Next() {
		var domain, prov string
		var b, n int
		if err := rows.Scan(&domain, &prov, &b, &n); err != nil {
			return nil, fmt.Errorf("pending ages: %w", err)
		}
		if len(out) == 0 || out[len(out)-1].Domain != domain {
			out = append(out, store.DomainAges{Domain: domain, Buckets: make([]int, len(edges)+1)})
		}
		last := &out[len(out)-1]
		last.Buckets[b] += n
		if prov != "" {
			last.Provider = prov
		}
	}
	return out, rows.Err()
}

// PendingByDomain implements store.Observer. SQLite takes the bare
// columns of a max() aggregate from the row holding the maximum: the
// last attempted delivery's reply.
func (s *Store) PendingByDomain(ctx context.Context, tenantID string) ([]store.DomainQueue, error) {
	q := `SELECT domain, count(*), max(last_attempt_at), last_code, last_enhanced, last_text, last_class FROM deliveries
		WHERE state IN (` + store.SQLList(store.PendingStates) + `)`
	var args []any
	if tenantID != "" {
		q += " AND tenant_id = ?"
		args = append(args, tenantID)
	}
	rows, err := s.r.QueryContext(ctx, q+" GROUP BY domain ORDER BY domain", args...)
	if err != nil {
		return nil, fmt.Errorf("pending by domain: %w", err)
	}
	defer rows.Close()
	var out []store.DomainQueue
	for rows.Next() {
		var p store.DomainQueue
		var last int64
		var d store.Delivery
		if err := rows.Scan(&p.Domain, &p.Pending, &last, &d.LastReply.Code, &d.LastReply.Enhanced, &d.LastReply.Text, &p.LastClass); err != nil {
			return nil, fmt.Errorf("pending by domain: %w", err)
		}
		if d.LastReply.Code == 0 {
			d.LastError, d.LastReply.Text = d.LastReply.Text, "" // as scanDelivery reads it
		}
		p.LastAttemptAt, p.LastFailure = fromMS(last), d.LastFailure()
		if last == 0 {
			p.LastFailure = ""
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// AttemptsAfter implements store.Observer.
func (s *Store) AttemptsAfter(ctx context.Context, after int64, limit int) ([]store.AttemptRow, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT a.id, a.class, coalesce(d.domain, ''), coalesce(d.provider, '')
		FROM attempts a LEFT JOIN deliveries d ON d.id = a.delivery_id WHERE a.id > ? ORDER BY a.id LIMIT ?`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("attempts after %d: %w", after, err)
	}
	defer rows.Close()
	var out []store.AttemptRow
	for rows.Next() {
		var a store.AttemptRow
		if err := rows.Scan(&a.ID, &a.Class, &a.Domain, &a.Provider); err != nil {
			return nil, fmt.Errorf("attempts after %d: %w", after, err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// EventsAfter implements store.Observer.
func (s *Store) EventsAfter(ctx context.Context, after int64, types []string, limit int) ([]store.EventRow, int64, error) {
	// The cursor first: the highest event ID now, bounded to limit rows
	// ahead, so the typed query below reads a fixed window; with none
	// ahead, the highest ID there is (below after once retention emptied
	// the table, as SQLite then gives IDs from 1 again).
	var top int64
	if err := s.r.QueryRowContext(ctx, `SELECT coalesce((SELECT max(id) FROM (SELECT id FROM events WHERE id > ? ORDER BY id LIMIT ?)),
		(SELECT coalesce(max(id), 0) FROM events))`, after, limit).Scan(&top); err != nil {
		return nil, after, fmt.Errorf("events after %d: %w", after, err)
	}
	if top <= after || len(types) == 0 {
		return nil, top, nil
	}
	args := []any{after, top}
	for _, t := range types {
		args = append(args, t)
	}
	rows, err := s.r.QueryContext(ctx, `SELECT e.id, e.type, e.at, e.tenant_id, e.recipient, e.text, e.detail,
		coalesce(d.lane, ''), coalesce(d.created_at, 0)
		FROM events e LEFT JOIN deliveries d ON d.id = e.delivery_id AND e.delivery_id != 0
		WHERE e.id > ? AND e.id <= ? AND e.type IN (`+placeholders(len(types))+`) ORDER BY e.id`, args...)
	if err != nil {
		return nil, after, fmt.Errorf("events after %d: %w", after, err)
	}
	defer rows.Close()
	var out []store.EventRow
	for rows.Next() {
		var e store.EventRow
		var at, created int64
		var lane string
		if err := rows.Scan(&e.ID, &e.Type, &at, &e.TenantID, &e.Recipient, &e.Text, &e.Detail, &lane, &created); err != nil {
			return nil, after, fmt.Errorf("events after %d: %w", after, err)
		}
		e.At, e.Lane, e.CreatedAt = fromMS(at), store.Lane(lane), fromMS(created)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, after, err
	}
	return out, top, nil
}

// MessagesAfter implements store.Observer.
func (s *Store) MessagesAfter(ctx context.Context, after int64, limit int) ([]store.MessageRow, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT rowid, source FROM messages WHERE rowid > ? ORDER BY rowid LIMIT ?`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("messages after %d: %w", after, err)
	}
	defer rows.Close()
	var out []store.MessageRow
	for rows.Next() {
		var m store.MessageRow
		if err := rows.Scan(&m.Cursor, &m.Source); err != nil {
			return nil, fmt.Errorf("messages after %d: %w", after, err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// metricsStateMigration holds the metrics collector's saved counters: one
// row, replaced whole.
const metricsStateMigration = `CREATE TABLE metrics_state (id INTEGER PRIMARY KEY CHECK (id = 1), state BLOB NOT NULL)`

// MetricsState implements store.Observer.
func (s *Store) MetricsState(ctx context.Context) ([]byte, error) {
	var b []byte
	err := s.r.QueryRowContext(ctx, `SELECT state FROM metrics_state WHERE id = 1`).Scan(&b)
	if err == sql.ErrNoRows {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("metrics state: %w", err)
	}
	return b, nil
}

// SaveMetricsState implements store.Observer. It is background work: it
// waits for a moment without other writes (writeLow).
func (s *Store) SaveMetricsState(ctx context.Context, state []byte) error {
	err := s.writeLow(ctx, func(tx *sql.Tx, _ *stmts) error {
		_, err := tx.Exec(`INSERT INTO metrics_state (id, state) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET state = excluded.state`, state)
		return err
	})
	if err != nil {
		return fmt.Errorf("save metrics state: %w", err)
	}
	return nil
}
