package postgres

// The read side of metrics and the queue summary (store.Observer).
//
// QueueShape reads the partial index deliveries_shape (state, lane,
// created_at over the pending states and dead_letter). The *After methods
// walk the append-only tables from a cursor by ID (messages by seq). IDs
// are taken from sequences; the group-commit writer of each node takes
// them in commit order, so on one node a reader never sees a later commit
// with a smaller ID. Two nodes writing at once can commit out of ID
// order; a row committed behind a cursor is then not counted by a
// metrics reader that already passed it (metrics of a cluster are per
// node anyway).

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/posthorn/posthorn/internal/store"
)

var _ store.Observer = (*Store)(nil)

// stateNames are states as a text[] parameter.
func stateNames(states []store.State) []string {
	out := make([]string, len(states))
	for i, s := range states {
		out[i] = string(s)
	}
	return out
}

// shapeStates are the states QueueShape counts (those deliveries_shape covers).
var shapeStates = append(append([]store.State(nil), store.PendingStates...), store.DeadLetter)

// QueueShape implements store.Observer. The state list is written out so
// that the planner matches the partial index's predicate.
func (s *Store) QueueShape(ctx context.Context) ([]store.ShapeRow, error) {
	rows, _ := s.pool.Query(ctx, `SELECT state, lane, count(*), min(created_at) FROM deliveries
		WHERE state IN (`+store.SQLList(shapeStates)+`) GROUP BY state, lane`)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.ShapeRow, error) {
		var row store.ShapeRow
		var state, lane string
		var oldest int64
		err := r.Scan(&state, &lane, &row.Count, &oldest)
		row.State, row.Lane, row.Oldest = store.State(state), store.Lane(lane), timeMS(oldest)
		return row, err
	})
	if err != nil {
		return nil, fmt.Errorf("queue shape: %w", err)
	}
	return out, nil
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
	var cases strings.Builder
	cases.WriteString("CASE")
	for i, e := range edges {
		fmt.Fprintf(&cases, " WHEN created_at > %d THEN %d", unixMS(now.Add(-e)), i)
	}
	fmt.Fprintf(&cases, " ELSE %d END", len(edges))
	if len(edges) == 0 {
		cases.Reset() // one bucket; "CASE ELSE 0 END" is not SQL
		cases.WriteString("0")
	}
	rows, err := s.pool.Query(ctx, `SELECT domain, max(provider), `+cases.String()+` AS b, count(*) FROM deliveries
		WHERE state = ANY ($1) GROUP BY domain, b ORDER BY domain`, stateNames(states))
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
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pending ages: %w", err)
	}
	return out, nil
}

// PendingByDomain implements store.Observer: per domain, the count and
// the reply of the most recently attempted pending delivery.
func (s *Store) PendingByDomain(ctx context.Context, tenantID string) ([]store.DomainQueue, error) {
	rows, _ := s.pool.Query(ctx, `SELECT DISTINCT ON (domain) domain, count(*) OVER (PARTITION BY domain), last_attempt_at,
		last_code, last_enhanced, last_text, last_class
		FROM deliveries WHERE state IN (`+store.SQLList(store.PendingStates)+`) AND ($1 = '' OR tenant_id = $1)
		ORDER BY domain, last_attempt_at DESC, id DESC`, tenantID)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.DomainQueue, error) {
		var p store.DomainQueue
		var last int64
		var d store.Delivery
		if err := r.Scan(&p.Domain, &p.Pending, &last, &d.LastReply.Code, &d.LastReply.Enhanced, &d.LastReply.Text, &p.LastClass); err != nil {
			return p, err
		}
		if d.LastReply.Code == 0 {
			d.LastError, d.LastReply.Text = d.LastReply.Text, "" // a local error is kept in last_text
		}
		p.LastAttemptAt, p.LastFailure = timeMS(last), d.LastFailure()
		if last == 0 {
			p.LastFailure = ""
		}
		return p, nil
	})
	if err != nil {
		return nil, fmt.Errorf("pending by domain: %w", err)
	}
	return out, nil
}

// AttemptsAfter implements store.Observer.
func (s *Store) AttemptsAfter(ctx context.Context, after int64, limit int) ([]store.AttemptRow, error) {
	rows, _ := s.pool.Query(ctx, `SELECT a.id, a.class, coalesce(d.domain, ''), coalesce(d.provider, '')
		FROM attempts a LEFT JOIN deliveries d ON d.id = a.delivery_id WHERE a.id > $1 ORDER BY a.id LIMIT $2`, after, limit)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.AttemptRow, error) {
		var a store.AttemptRow
		err := r.Scan(&a.ID, &a.Class, &a.Domain, &a.Provider)
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("attempts after %d: %w", after, err)
	}
	return out, nil
}

// EventsAfter implements store.Observer.
func (s *Store) EventsAfter(ctx context.Context, after int64, types []string, limit int) ([]store.EventRow, int64, error) {
	// The cursor first: the highest event ID now, bounded to limit rows
	// ahead, so the typed query below reads a fixed window.
	var top int64
	if err := s.pool.QueryRow(ctx, `SELECT coalesce(max(id), $1) FROM (SELECT id FROM events WHERE id > $1 ORDER BY id LIMIT $2) w`,
		after, limit).Scan(&top); err != nil {
		return nil, after, fmt.Errorf("events after %d: %w", after, err)
	}
	if top <= after || len(types) == 0 {
		return nil, top, nil
	}
	rows, _ := s.pool.Query(ctx, `SELECT e.id, e.type, e.at, e.tenant_id, e.recipient, e.text, e.detail,
		coalesce(d.lane, ''), coalesce(d.created_at, 0)
		FROM events e LEFT JOIN deliveries d ON d.id = e.delivery_id AND e.delivery_id <> 0
		WHERE e.id > $1 AND e.id <= $2 AND e.type = ANY ($3) ORDER BY e.id`, after, top, types)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.EventRow, error) {
		var e store.EventRow
		var at, created int64
		var lane string
		err := r.Scan(&e.ID, &e.Type, &at, &e.TenantID, &e.Recipient, &e.Text, &e.Detail, &lane, &created)
		e.At, e.Lane, e.CreatedAt = timeMS(at), store.Lane(lane), timeMS(created)
		return e, err
	})
	if err != nil {
		return nil, after, fmt.Errorf("events after %d: %w", after, err)
	}
	return out, top, nil
}

// MessagesAfter implements store.Observer; the cursor is messages.seq.
func (s *Store) MessagesAfter(ctx context.Context, after int64, limit int) ([]store.MessageRow, error) {
	rows, _ := s.pool.Query(ctx, `SELECT seq, source FROM messages WHERE seq > $1 ORDER BY seq LIMIT $2`, after, limit)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.MessageRow, error) {
		var m store.MessageRow
		err := r.Scan(&m.Cursor, &m.Source)
		return m, err
	})
	if err != nil {
		return nil, fmt.Errorf("messages after %d: %w", after, err)
	}
	return out, nil
}
