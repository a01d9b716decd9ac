package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/posthorn/posthorn/internal/smtpproto"
	"github.com/posthorn/posthorn/internal/store"
)

// webhookSchema is the migration adding webhook endpoints, their outbox
// and attempts, and alert states. The outbox id is AUTOINCREMENT: it names
// the webhook (webhook-id) and must never be reused after a delete.
const webhookSchema = `CREATE TABLE webhook_endpoints (
		id TEXT PRIMARY KEY,
		tenant_id TEXT NOT NULL,
		url TEXT NOT NULL,
		events TEXT NOT NULL,
		secret TEXT NOT NULL,
		created_at INTEGER NOT NULL,
		disabled_at INTEGER NOT NULL DEFAULT 0,
		failing_since INTEGER NOT NULL DEFAULT 0
	);
	CREATE TABLE webhook_outbox (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		endpoint_id TEXT NOT NULL,
		event_id INTEGER NOT NULL,
		okey TEXT NOT NULL,
		state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'failed')),
		attempts INTEGER NOT NULL DEFAULT 0,
		next_at INTEGER NOT NULL DEFAULT 0,
		created_at INTEGER NOT NULL
	);
	CREATE INDEX webhook_outbox_key ON webhook_outbox(endpoint_id, okey, id) WHERE state = 'pending';
	CREATE INDEX webhook_outbox_due ON webhook_outbox(next_at) WHERE state = 'pending';
	CREATE INDEX webhook_outbox_endpoint ON webhook_outbox(endpoint_id, state, id);
	CREATE TABLE webhook_attempts (
		id INTEGER PRIMARY KEY,
		endpoint_id TEXT NOT NULL,
		outbox_id INTEGER NOT NULL,
		event_id INTEGER NOT NULL,
		event_type TEXT NOT NULL,
		n INTEGER NOT NULL,
		at INTEGER NOT NULL,
		duration_us INTEGER NOT NULL,
		status INTEGER NOT NULL DEFAULT 0,
		ok INTEGER NOT NULL DEFAULT 0,
		error TEXT NOT NULL DEFAULT '',
		response TEXT NOT NULL DEFAULT ''
	);
	CREATE INDEX webhook_attempts_endpoint ON webhook_attempts(endpoint_id, id);
	CREATE TABLE alerts (
		key TEXT PRIMARY KEY,
		rule TEXT NOT NULL,
		kind TEXT NOT NULL,
		destination TEXT NOT NULL DEFAULT '',
		firing INTEGER NOT NULL,
		value REAL NOT NULL,
		threshold REAL NOT NULL,
		fired_at INTEGER NOT NULL,
		resolved_at INTEGER NOT NULL DEFAULT 0,
		action TEXT NOT NULL DEFAULT '',
		action_state TEXT NOT NULL DEFAULT '',
		detail TEXT NOT NULL DEFAULT ''
	);`

// subscriptions maps tenant and event type to the enabled endpoints that
// want it. The writer reads it for every event (no query on the hot
// path); it is replaced whole after every endpoint change.
type subscriptions struct {
	m      atomic.Pointer[map[subKey][]string]
	reload sync.Mutex // one reload at a time, so an older one never lands last
	added  bool       // writer only: the batch added outbox rows
	signal chan struct{}
	ins    *sql.Stmt // inserts an outbox row, prepared on the writer
}

const insOutboxSQL = `INSERT INTO webhook_outbox (endpoint_id, event_id, okey, created_at) VALUES (?,?,?,?)`

type subKey struct{ tenant, typ string }

func newSubscriptions() *subscriptions {
	s := &subscriptions{signal: make(chan struct{}, 1)}
	s.m.Store(&map[subKey][]string{})
	return s
}

// poke tells the sender that outbox rows were committed.
func (s *subscriptions) poke() {
	select {
	case s.signal <- struct{}{}:
	default:
	}
}

// outbox adds the webhook outbox rows of one event just written in tx:
// one per enabled endpoint of its tenant that wants its type. The
// subscription map is read without a query (the hot path).
func (s *subscriptions) outbox(tx *sql.Tx, e store.Event) error {
	if s == nil {
		return nil
	}
	eps := (*s.m.Load())[subKey{e.TenantID, e.Type}]
	if len(eps) == 0 {
		return nil
	}
	ins := tx.Stmt(s.ins)
	for _, ep := range eps {
		if _, err := ins.Exec(ep, e.ID, e.MessageID, ms(e.At)); err != nil {
			return fmt.Errorf("insert webhook outbox row: %w", err)
		}
	}
	s.added = true
	return nil
}

func insertOutbox(tx *sql.Tx, endpoint string, eventID int64, key string, at int64) error {
	if _, err := tx.Exec(insOutboxSQL, endpoint, eventID, key, at); err != nil {
		return fmt.Errorf("insert webhook outbox row: %w", err)
	}
	return nil
}

// reloadSubscriptions rebuilds the subscription map from the endpoints
// table (committed state).
func (s *Store) reloadSubscriptions(ctx context.Context) error {
	s.st.subs.reload.Lock()
	defer s.st.subs.reload.Unlock()
	rows, err := s.r.QueryContext(ctx, `SELECT id, tenant_id, events FROM webhook_endpoints WHERE disabled_at = 0 ORDER BY created_at, id`)
	if err != nil {
		return fmt.Errorf("load webhook subscriptions: %w", err)
	}
	defer rows.Close()
	m := map[subKey][]string{}
	for rows.Next() {
		var id, tenant, evs string
		if err := rows.Scan(&id, &tenant, &evs); err != nil {
			return err
		}
		for _, t := range strings.Split(evs, ",") {
			k := subKey{tenant, t}
			m[k] = append(m[k], id)
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	s.st.subs.m.Store(&m)
	return nil
}

// WebhookSignal implements store.Webhooks.
func (s *Store) WebhookSignal() <-chan struct{} { return s.st.subs.signal }

// CreateEndpoint implements store.Webhooks.
func (s *Store) CreateEndpoint(ctx context.Context, e store.WebhookEndpoint) error {
	err := s.write(ctx, func(tx *sql.Tx, _ *stmts) error {
		_, err := tx.Exec(`INSERT INTO webhook_endpoints (id, tenant_id, url, events, secret, created_at) VALUES (?,?,?,?,?,?)`,
			e.ID, e.TenantID, e.URL, strings.Join(e.Events, ","), e.Secret, ms(e.CreatedAt))
		if err != nil {
			return fmt.Errorf("create webhook endpoint: %w", uniqueErr(err))
		}
		return nil
	})
	if err != nil {
		return err
	}
	return s.reloadSubscriptions(ctx)
}

const endpointCols = `id, tenant_id, url, events, created_at, disabled_at, failing_since,
	(SELECT count(*) FROM webhook_outbox o WHERE o.endpoint_id = webhook_endpoints.id AND o.state = 'pending')`

func scanEndpoint(sc interface{ Scan(...any) error }) (store.WebhookEndpoint, error) {
	var e store.WebhookEndpoint
	var evs string
	var created, disabled, failing int64
	if err := sc.Scan(&e.ID, &e.TenantID, &e.URL, &evs, &created, &disabled, &failing, &e.Pending); err != nil {
		return e, err
	}
	e.Events = strings.Split(evs, ",")
	e.CreatedAt, e.DisabledAt, e.FailingSince = fromMS(created), fromMS(disabled), fromMS(failing)
	return e, nil
}

// ListEndpoints implements store.Webhooks.
func (s *Store) ListEndpoints(ctx context.Context, tenantID string) ([]store.WebhookEndpoint, error) {
	q := "SELECT " + endpointCols + " FROM webhook_endpoints"
	var args []any
	if tenantID != "" {
		q += " WHERE tenant_id = ?"
		args = append(args, tenantID)
	}
	rows, err := s.r.QueryContext(ctx, q+" ORDER BY created_at, id", args...)
	if err != nil {
		return nil, fmt.Errorf("list webhook endpoints: %w", err)
	}
	defer rows.Close()
	out := []store.WebhookEndpoint{}
	for rows.Next() {
		e, err := scanEndpoint(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// GetEndpoint implements store.Webhooks.
func (s *Store) GetEndpoint(ctx context.Context, tenantID, id string) (*store.WebhookEndpoint, error) {
	e, err := scanEndpoint(s.r.QueryRowContext(ctx, "SELECT "+endpointCols+" FROM webhook_endpoints WHERE id = ? AND (? = '' OR tenant_id = ?)",
		id, tenantID, tenantID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("webhook %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get webhook endpoint: %w", err)
	}
	return &e, nil
}

// endpointWrite runs fn on an endpoint of tenantID (ErrNotFound when it is
// not there) and reloads the subscriptions after.
func (s *Store) endpointWrite(ctx context.Context, tenantID, id string, fn func(tx *sql.Tx) error) error {
	err := s.write(ctx, func(tx *sql.Tx, _ *stmts) error {
		var n int
		if err := tx.QueryRow(`SELECT count(*) FROM webhook_endpoints WHERE id = ? AND (? = '' OR tenant_id = ?)`, id, tenantID, tenantID).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("webhook %s: %w", id, store.ErrNotFound)
		}
		return fn(tx)
	})
	if err != nil {
		return err
	}
	return s.reloadSubscriptions(ctx)
}

// DeleteEndpoint implements store.Webhooks.
func (s *Store) DeleteEndpoint(ctx context.Context, tenantID, id string) error {
	return s.endpointWrite(ctx, tenantID, id, func(tx *sql.Tx) error {
		for _, q := range []string{"DELETE FROM webhook_outbox WHERE endpoint_id = ?", "DELETE FROM webhook_attempts WHERE endpoint_id = ?",
			"DELETE FROM webhook_endpoints WHERE id = ?"} {
			if _, err := tx.Exec(q, id); err != nil {
				return fmt.Errorf("delete webhook endpoint: %w", err)
			}
		}
		return nil
	})
}

// EnableEndpoint implements store.Webhooks.
func (s *Store) EnableEndpoint(ctx context.Context, tenantID, id string) error {
	return s.endpointWrite(ctx, tenantID, id, func(tx *sql.Tx) error {
		_, err := tx.Exec("UPDATE webhook_endpoints SET disabled_at = 0, failing_since = 0 WHERE id = ?", id)
		return err
	})
}

// QueueTestWebhook implements store.Webhooks.
func (s *Store) QueueTestWebhook(ctx context.Context, tenantID, id string, now time.Time) error {
	err := s.endpointWrite(ctx, tenantID, id, func(tx *sql.Tx) error {
		var tenant string
		if err := tx.QueryRow("SELECT tenant_id FROM webhook_endpoints WHERE id = ?", id).Scan(&tenant); err != nil {
			return err
		}
		// Written directly, not through the subscriptions: only this
		// endpoint gets it.
		res, err := tx.Exec(`INSERT INTO events (at, type, tenant_id, message_id, detail) VALUES (?,?,?,?,?)`,
			ms(now), store.EventWebhookTest, tenant, "", "test webhook for "+id)
		if err != nil {
			return fmt.Errorf("insert test event: %w", err)
		}
		evID, err := res.LastInsertId()
		if err != nil {
			return err
		}
		return insertOutbox(tx, id, evID, "", ms(now))
	})
	if err == nil {
		s.st.subs.poke()
	}
	return err
}

// DueWebhooks implements store.Webhooks. A row is due when its time has
// come and no older pending row of the same endpoint and key exists: that
// is how one message's webhooks stay in order. Each enabled endpoint is
// read on its own, up to limit rows, so one endpoint's backlog never
// hides another's webhooks.
func (s *Store) DueWebhooks(ctx context.Context, now time.Time, limit int) ([]store.OutboxItem, error) {
	eps, err := s.r.QueryContext(ctx, `SELECT id FROM webhook_endpoints WHERE disabled_at = 0 ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("due webhooks: %w", err)
	}
	var ids []string
	for eps.Next() {
		var id string
		if err := eps.Scan(&id); err != nil {
			eps.Close()
			return nil, err
		}
		ids = append(ids, id)
	}
	if err := eps.Close(); err != nil {
		return nil, err
	}
	var out []store.OutboxItem
	for _, id := range ids {
		items, err := s.dueWebhooks(ctx, id, now, limit)
		if err != nil {
			return nil, err
		}
		out = append(out, items...)
	}
	slices.SortFunc(out, func(a, b store.OutboxItem) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

func (s *Store) dueWebhooks(ctx context.Context, endpoint string, now time.Time, limit int) ([]store.OutboxItem, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT o.id, o.endpoint_id, w.url, w.secret, o.attempts, w.failing_since, o.okey, o.event_id,
		e.id IS NULL, COALESCE(e.at, 0), COALESCE(e.type, ''), COALESCE(e.tenant_id, ''), COALESCE(e.message_id, ''),
		COALESCE(e.delivery_id, 0), COALESCE(e.recipient, ''), COALESCE(e.attempt, 0), COALESCE(e.mx, ''), COALESCE(e.code, 0),
		COALESCE(e.enhanced, ''), COALESCE(e.text, ''), COALESCE(e.detail, ''), COALESCE(m.tags, ''), COALESCE(m.metadata, ''),
		COALESCE((SELECT a.class FROM attempts a WHERE a.message_id = e.message_id AND a.delivery_id = e.delivery_id AND a.n = e.attempt
			ORDER BY a.id DESC LIMIT 1), '')
		FROM webhook_outbox o
		JOIN webhook_endpoints w ON w.id = o.endpoint_id AND w.disabled_at = 0
		LEFT JOIN events e ON e.id = o.event_id
		LEFT JOIN messages m ON m.id = e.message_id AND e.message_id != ''
		WHERE o.endpoint_id = ? AND o.state = 'pending' AND o.next_at <= ?
		AND NOT EXISTS (SELECT 1 FROM webhook_outbox p WHERE p.endpoint_id = o.endpoint_id AND p.okey = o.okey
			AND p.state = 'pending' AND p.id < o.id)
		ORDER BY o.id LIMIT ?`, endpoint, ms(now), limit)
	if err != nil {
		return nil, fmt.Errorf("due webhooks: %w", err)
	}
	defer rows.Close()
	var out []store.OutboxItem
	for rows.Next() {
		var it store.OutboxItem
		var at, failing int64
		var eventID int64
		var r smtpproto.Reply
		var tags, meta string
		e := &it.Event
		if err := rows.Scan(&it.ID, &it.EndpointID, &it.URL, &it.Secret, &it.Attempts, &failing, &it.Key, &eventID, &it.Missing, &at, &e.Type,
			&e.TenantID, &e.MessageID, &e.DeliveryID, &e.Recipient, &e.Attempt, &e.MX, &r.Code, &r.Enhanced, &r.Text, &e.Detail,
			&tags, &meta, &it.Class); err != nil {
			return nil, err
		}
		e.ID, e.At, e.Reply, it.FailingSince = eventID, fromMS(at), r, fromMS(failing)
		if tags != "" {
			json.Unmarshal([]byte(tags), &it.Tags)
		}
		if meta != "" {
			json.Unmarshal([]byte(meta), &it.Metadata)
		}
		out = append(out, it)
	}
	return out, rows.Err()
}

// NextWebhookDue implements store.Webhooks.
func (s *Store) NextWebhookDue(ctx context.Context, now time.Time) (time.Time, error) {
	var next sql.NullInt64
	err := s.r.QueryRowContext(ctx, `SELECT min(o.next_at) FROM webhook_outbox o JOIN webhook_endpoints w ON w.id = o.endpoint_id
		AND w.disabled_at = 0 WHERE o.state = 'pending' AND o.next_at > ?`, ms(now)).Scan(&next)
	if err != nil {
		return time.Time{}, fmt.Errorf("next webhook: %w", err)
	}
	if !next.Valid {
		return time.Time{}, nil
	}
	return fromMS(next.Int64), nil
}

// RecordWebhookAttempt implements store.Webhooks.
func (s *Store) RecordWebhookAttempt(ctx context.Context, r store.WebhookResult) error {
	err := s.write(ctx, func(tx *sql.Tx, st *stmts) error {
		if _, err := tx.Exec(`INSERT INTO webhook_attempts (endpoint_id, outbox_id, event_id, event_type, n, at, duration_us, status, ok,
			error, response) VALUES (?,?,?,?,?,?,?,?,?,?,?)`, r.EndpointID, r.OutboxID, r.EventID, r.EventType, r.N, ms(r.At),
			r.Duration.Microseconds(), r.Status, b2i(r.OK), r.Error, r.Response); err != nil {
			return fmt.Errorf("insert webhook attempt: %w", err)
		}
		var err error
		switch {
		case r.OK:
			_, err = tx.Exec("DELETE FROM webhook_outbox WHERE id = ?", r.OutboxID)
			if err == nil {
				_, err = tx.Exec("UPDATE webhook_endpoints SET failing_since = 0 WHERE id = ?", r.EndpointID)
			}
		case r.GiveUp:
			_, err = tx.Exec("UPDATE webhook_outbox SET state = 'failed', attempts = ? WHERE id = ?", r.N, r.OutboxID)
		default:
			_, err = tx.Exec("UPDATE webhook_outbox SET attempts = ?, next_at = ? WHERE id = ?", r.N, ms(r.NextAt), r.OutboxID)
		}
		if err == nil && !r.OK {
			_, err = tx.Exec("UPDATE webhook_endpoints SET failing_since = ? WHERE id = ? AND failing_since = 0", ms(r.At), r.EndpointID)
		}
		if err == nil {
			err = pruneWebhookHistory(tx, r.EndpointID, r.GiveUp)
		}
		if err != nil {
			return fmt.Errorf("record webhook attempt: %w", err)
		}
		if !r.Disable {
			return nil
		}
		var tenant string
		if err := tx.QueryRow("UPDATE webhook_endpoints SET disabled_at = ? WHERE id = ? AND disabled_at = 0 RETURNING tenant_id",
			ms(r.At), r.EndpointID).Scan(&tenant); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return nil
			}
			return fmt.Errorf("disable webhook endpoint: %w", err)
		}
		return st.ev.write(tx, tx.Stmt(st.insEvent), store.Event{At: r.At, Type: store.EventWebhookDisabled, TenantID: tenant, Detail: r.Detail}, nil)
	})
	if err != nil {
		return err
	}
	if r.Disable {
		return s.reloadSubscriptions(ctx)
	}
	return nil
}

// keepWebhookHistory is how many attempts, and given-up webhooks, are
// kept per endpoint: the newest, so the tables stay bounded.
const keepWebhookHistory = 1000

// pruneWebhookHistory drops an endpoint's oldest attempts (and, after a
// give-up, its oldest given-up rows) beyond keepWebhookHistory. Both
// deletes walk an index from the newest row.
func pruneWebhookHistory(tx *sql.Tx, endpoint string, gaveUp bool) error {
	if _, err := tx.Exec(`DELETE FROM webhook_attempts WHERE endpoint_id = ? AND id <= (SELECT id FROM webhook_attempts
		WHERE endpoint_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)`, endpoint, endpoint, keepWebhookHistory); err != nil {
		return err
	}
	if !gaveUp {
		return nil
	}
	_, err := tx.Exec(`DELETE FROM webhook_outbox WHERE endpoint_id = ? AND state = 'failed' AND id <= (SELECT id FROM webhook_outbox
		WHERE endpoint_id = ? AND state = 'failed' ORDER BY id DESC LIMIT 1 OFFSET ?)`, endpoint, endpoint, keepWebhookHistory)
	return err
}

// WebhookAttempts implements store.Webhooks.
func (s *Store) WebhookAttempts(ctx context.Context, tenantID, endpointID string, limit int) ([]store.WebhookAttempt, error) {
	if _, err := s.GetEndpoint(ctx, tenantID, endpointID); err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.r.QueryContext(ctx, `SELECT id, endpoint_id, outbox_id, event_id, event_type, n, at, duration_us, status, ok, error, response
		FROM webhook_attempts WHERE endpoint_id = ? ORDER BY id DESC LIMIT ?`, endpointID, limit)
	if err != nil {
		return nil, fmt.Errorf("webhook attempts: %w", err)
	}
	defer rows.Close()
	out := []store.WebhookAttempt{}
	for rows.Next() {
		var a store.WebhookAttempt
		var outbox, at, dur int64
		var ok int
		if err := rows.Scan(&a.ID, &a.EndpointID, &outbox, &a.EventID, &a.EventType, &a.N, &at, &dur, &a.Status, &ok, &a.Error, &a.Response); err != nil {
			return nil, err
		}
		a.WebhookID, a.At, a.Duration, a.OK = store.WebhookID(outbox), fromMS(at), microseconds(dur), ok == 1
		out = append(out, a)
	}
	return out, rows.Err()
}

// WebhookOutboxDepth implements store.Webhooks; the partial index on
// pending rows (webhook_outbox_due) covers the count.
func (s *Store) WebhookOutboxDepth(ctx context.Context) (int, error) {
	var n int
	if err := s.r.QueryRowContext(ctx, "SELECT COUNT(*) FROM webhook_outbox WHERE state = 'pending'").Scan(&n); err != nil {
		return 0, fmt.Errorf("count webhook outbox: %w", err)
	}
	return n, nil
}
