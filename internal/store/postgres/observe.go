package postgres

// The read side of metrics and the queue summary (store.Observer).
//
// QueueShape reads the partial index deliveries_shape (state, lane,
// created_at over the pending states and dead_letter). The *After methods
// walk the append-only tables from a cursor by ID (messages by seq).
//
// IDs come from sequences, taken inside the INSERT of each row, and
// several nodes (or a node's writer and a tool) insert at once: a row may
// commit after a row with a larger ID, and a reader that had passed the
// larger ID would never count it. So the *After methods read only up to
// the table's settled ID: the highest ID no transaction still running
// may hold. Finding it needs no lock and makes no writer wait:
//   - read the sequence's last value L, then the transactions holding a
//     write lock on the table (pg_locks), in that order: a transaction
//     that took an ID up to L took it inside its INSERT, so it held the
//     lock before L was read and, unless it ended, is in that set;
//   - with no such transaction, L is settled at once (the case of a
//     quiet database, and of one node between commits);
//   - otherwise (L, set) is kept, and L counts as settled once a later
//     call finds none of that set still running.
// Under steady writing the horizon thus trails by one call (a metrics
// scrape), and no row is ever skipped.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/posthorn/posthorn/internal/store"
)

var _ store.Observer = (*Store)(nil)

// horizons holds, per table, how far its IDs are known settled and the
// last observation still waiting for its transactions to end.
type horizons struct {
	mu sync.Mutex
	m  map[string]*horizon
}

type horizon struct {
	settled  int64
	pendingL int64
	pending  []string // virtual transaction IDs that held the table's write lock
}

// settledID returns the highest ID of table's column col (a serial) that
// no running transaction may still commit below (see the notes above).
func (s *Store) settledID(ctx context.Context, table, col string) (int64, error) {
	b := &pgx.Batch{}
	b.Queue(`SELECT coalesce(pg_sequence_last_value(pg_get_serial_sequence($1, $2)::regclass), 0)`, table, col)
	b.Queue(`SELECT coalesce(array_agg(virtualtransaction::text), '{}') FROM pg_locks WHERE locktype = 'relation'
		AND relation = $1::regclass AND granted AND pid <> pg_backend_pid()
		AND mode IN ('RowExclusiveLock', 'ShareRowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock')`, table)
	br := s.pool.SendBatch(ctx, b)
	var last int64
	var running []string
	err := br.QueryRow().Scan(&last)
	if err == nil {
		err = br.QueryRow().Scan(&running)
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, fmt.Errorf("settled %s ids: %w", table, err)
	}
	h := &s.settled
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.m == nil {
		h.m = map[string]*horizon{}
	}
	t := h.m[table]
	if t == nil {
		t = &horizon{}
		h.m[table] = t
	}
	if t.pending != nil && !overlaps(t.pending, running) {
		t.settled, t.pending = max(t.settled, t.pendingL), nil
	}
	if len(running) == 0 {
		t.settled = max(t.settled, last)
	} else if t.pending == nil {
		t.pendingL, t.pending = last, running
	}
	return t.settled, nil
}

func overlaps(a, b []string) bool {
	for _, x := range a {
		if slices.Contains(b, x) {
			return true
		}
	}
	return false
}

// shapeStates are the states QueueShape counts (those deliveries_shape covers).
var shapeStates = append(append([]store.State(nil), store.PendingStates...), store.DeadLetter)

var queueShapeSQL = `SELECT state, lane, count(*), min(created_at) FROM deliveries
	WHERE state IN (` + store.SQLList(shapeStates) + `) GROUP BY state, lane`

// QueueShape implements store.Observer. The state list is written out so
// that the planner matches the partial index's predicate.
func (s *Store) QueueShape(ctx context.Context) ([]store.ShapeRow, error) {
	rows, _ := s.pool.Query(ctx, queueShapeSQL)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.ShapeRow, error) {
		var row store.ShapeRow
		var state, lane string
		var oldest int64
		err := r.Scan(&state, &lane, &row.Count, &oldest)
		row.State, row.Lane, row.Oldest = store.State(state), store.Lane(lane), fromMS(oldest)
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
	rows, err := s.pool.Query(ctx, `SELECT domain, max(provider), `+store.AgeBucketSQL(now, edges)+` AS b, count(*) FROM deliveries
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
		p.LastAttemptAt, p.LastFailure = fromMS(last), d.LastFailure()
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
	top, err := s.settledID(ctx, "attempts", "id")
	if err != nil {
		return nil, err
	}
	rows, _ := s.pool.Query(ctx, `SELECT a.id, a.class, coalesce(d.domain, ''), coalesce(d.provider, '')
		FROM attempts a LEFT JOIN deliveries d ON d.id = a.delivery_id WHERE a.id > $1 AND a.id <= $3 ORDER BY a.id LIMIT $2`,
		after, limit, top)
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
	settled, err := s.settledID(ctx, "events", "id")
	if err != nil {
		return nil, after, err
	}
	var top int64
	if err := s.pool.QueryRow(ctx, `SELECT coalesce(max(id), $1) FROM (SELECT id FROM events WHERE id > $1 AND id <= $3 ORDER BY id LIMIT $2) w`,
		after, limit, settled).Scan(&top); err != nil {
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
		e.At, e.Lane, e.CreatedAt = fromMS(at), store.Lane(lane), fromMS(created)
		return e, err
	})
	if err != nil {
		return nil, after, fmt.Errorf("events after %d: %w", after, err)
	}
	return out, top, nil
}

// MessagesAfter implements store.Observer; the cursor is messages.seq.
func (s *Store) MessagesAfter(ctx context.Context, after int64, limit int) ([]store.MessageRow, error) {
	top, err := s.settledID(ctx, "messages", "seq")
	if err != nil {
		return nil, err
	}
	rows, _ := s.pool.Query(ctx, `SELECT seq, source FROM messages WHERE seq > $1 AND seq <= $3 ORDER BY seq LIMIT $2`, after, limit, top)
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

// metricsStateSchema holds the metrics collector's saved counters: one
// row, replaced whole (by any node: every node counts the same tables).
const metricsStateSchema = `CREATE TABLE metrics_state (id integer PRIMARY KEY CHECK (id = 1), state bytea NOT NULL);`

// MetricsState implements store.Observer.
func (s *Store) MetricsState(ctx context.Context) ([]byte, error) {
	var b []byte
	err := s.pool.QueryRow(ctx, `SELECT state FROM metrics_state WHERE id = 1`).Scan(&b)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("metrics state: %w", err)
	}
	return b, nil
}

// SaveMetricsState implements store.Observer.
func (s *Store) SaveMetricsState(ctx context.Context, state []byte) error {
	if _, err := s.pool.Exec(ctx, `INSERT INTO metrics_state (id, state) VALUES (1, $1)
		ON CONFLICT (id) DO UPDATE SET state = excluded.state`, state); err != nil {
		return fmt.Errorf("save metrics state: %w", err)
	}
	return nil
}
