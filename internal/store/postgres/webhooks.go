package postgres

// Webhook endpoints and their outbox (store.Webhooks).
//
// Subscriptions are not cached: the SQLite store keeps them in memory,
// but here another node may add, disable or delete an endpoint at any
// time, and a cache would queue webhooks for an endpoint that is gone or
// miss a new one. queueWebhooks instead joins the batch's events against
// the enabled endpoints in one INSERT ... SELECT per group commit (an
// index lookup per tenant; nothing is written when no endpoint wants the
// events).
//
// The signal crosses nodes with LISTEN/NOTIFY: a transaction that queues
// webhooks also runs pg_notify on the channel webhookChannel, which
// PostgreSQL delivers only once it commits, to every node listening. The
// first WebhookSignal call starts a listener on a connection of its own
// (nodes that never send webhooks hold none) and returns once it listens;
// it reconnects when the connection drops. Each time it starts listening
// it pokes once: rows committed before (after the sender's last read) or
// while it was not listening were announced to nobody. The sender's
// polling of NextWebhookDue stays the safety net.
//
// Every node runs a webhook sender on the one outbox. DueWebhooks claims
// the rows it returns for this node (WithNode) until claimTTL after now:
// another node's DueWebhooks skips them (and, as a row waits for the
// older rows of its key, the rows after them), while this node reads them
// again (its sender knows what it has in flight). Recording the attempt
// ends the claim; the rows of a node that died are taken over when their
// claim expires.

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/posthorn/posthorn/internal/smtpproto"
	"github.com/posthorn/posthorn/internal/store"
)

// webhookChannel is the NOTIFY channel of committed outbox rows.
const webhookChannel = "posthorn_webhooks"

// queueWebhooksSQL adds one outbox row per event and enabled endpoint of
// its tenant subscribed to its type, in event order, and notifies the
// listeners when it added any.
const queueWebhooksSQL = `WITH ins AS (
	INSERT INTO webhook_outbox (endpoint_id, event_id, okey, created_at)
	SELECT w.id, e.id, e.okey, e.at
	FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::bigint[]) WITH ORDINALITY AS e (id, tenant_id, type, okey, at, n)
	JOIN webhook_endpoints w ON w.tenant_id = e.tenant_id AND w.disabled_at = 0 AND e.type = ANY (w.events)
	ORDER BY e.n, w.created_at, w.id
	RETURNING 1)
SELECT pg_notify('` + webhookChannel + `', '') FROM (SELECT 1 FROM ins LIMIT 1) AS added`

// queueWebhooks adds the webhook outbox rows for events just inserted in
// tx (their IDs filled in): the core event writer calls it in the same
// transaction, so an event and its webhook deliveries commit together.
func (s *Store) queueWebhooks(ctx context.Context, tx pgx.Tx, evs []store.Event) error {
	if len(evs) == 0 {
		return nil
	}
	ids, ats := make([]int64, len(evs)), make([]int64, len(evs))
	tenants, types, keys := make([]string, len(evs)), make([]string, len(evs)), make([]string, len(evs))
	for i, e := range evs {
		ids[i], tenants[i], types[i], keys[i], ats[i] = e.ID, e.TenantID, e.Type, e.MessageID, ms(e.At)
	}
	if _, err := tx.Exec(ctx, queueWebhooksSQL, ids, tenants, types, keys, ats); err != nil {
		return fmt.Errorf("insert webhook outbox rows: %w", err)
	}
	return nil
}

// notifyWebhooks tells every node's sender, at commit, that tx queued
// webhooks.
func notifyWebhooks(ctx context.Context, tx pgx.Tx) error {
	if _, err := tx.Exec(ctx, "SELECT pg_notify($1, '')", webhookChannel); err != nil {
		return fmt.Errorf("notify webhook senders: %w", err)
	}
	return nil
}

// webhookListener turns NOTIFYs on webhookChannel into pokes of signal.
type webhookListener struct {
	mu     sync.Mutex
	signal chan struct{}
	cancel context.CancelFunc
	ended  chan struct{}
}

func (l *webhookListener) poke() {
	select {
	case l.signal <- struct{}{}:
	default:
	}
}

// WebhookSignal implements store.Webhooks: poked after any node commits
// webhook outbox rows (see the notes at the top of this file).
func (s *Store) WebhookSignal() <-chan struct{} {
	l := &s.hooks
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.signal == nil {
		l.signal = make(chan struct{}, 1)
		ctx, cancel := context.WithCancel(context.Background())
		l.cancel, l.ended = cancel, make(chan struct{})
		listening := make(chan struct{})
		go s.listenWebhooks(ctx, listening)
		select {
		case <-listening:
		case <-time.After(10 * time.Second):
			s.log.Warn("webhook signal: not listening yet; the sender polls meanwhile")
		}
	}
	return l.signal
}

// stopWebhookListener ends the listener, if one was started; a later
// WebhookSignal (after Close) starts none.
func (s *Store) stopWebhookListener() {
	l := &s.hooks
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.signal == nil {
		l.signal = make(chan struct{}, 1)
	}
	if l.cancel != nil {
		l.cancel()
		<-l.ended
		l.cancel = nil
	}
}

func (s *Store) listenWebhooks(ctx context.Context, listening chan struct{}) {
	l := &s.hooks
	defer close(l.ended)
	cfg := s.pool.Config().ConnConfig
	first := true
	for backoff := 100 * time.Millisecond; ; backoff = min(2*backoff, 10*time.Second) {
		conn, err := pgx.ConnectConfig(ctx, cfg.Copy())
		if err == nil {
			if _, err = conn.Exec(ctx, "LISTEN "+webhookChannel); err != nil {
				conn.Close(context.Background())
			}
		}
		if err == nil {
			backoff = 100 * time.Millisecond
			// Rows committed before LISTEN (the sender's last read may
			// predate them) and notifications sent while not listening
			// are not announced: poke once.
			l.poke()
			if first {
				close(listening)
				first = false
			}
			for err == nil {
				if _, err = conn.WaitForNotification(ctx); err == nil {
					l.poke()
				}
			}
			conn.Close(context.Background())
		}
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("webhook signal: listen", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
	}
}

// CreateEndpoint implements store.Webhooks.
func (s *Store) CreateEndpoint(ctx context.Context, e store.WebhookEndpoint) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO webhook_endpoints (id, tenant_id, url, events, secret, created_at) VALUES ($1, $2, $3, $4, $5, $6)`,
		e.ID, e.TenantID, e.URL, textList(e.Events), e.Secret, ms(e.CreatedAt))
	if err != nil {
		return fmt.Errorf("create webhook endpoint: %w", asConflict(err))
	}
	return nil
}

const endpointCols = `id, tenant_id, url, events, created_at, disabled_at, failing_since,
	(SELECT count(*) FROM webhook_outbox o WHERE o.endpoint_id = webhook_endpoints.id AND o.state = 'pending')`

func scanEndpoint(row pgx.Row) (store.WebhookEndpoint, error) {
	var e store.WebhookEndpoint
	var created, disabled, failing int64
	err := row.Scan(&e.ID, &e.TenantID, &e.URL, &e.Events, &created, &disabled, &failing, &e.Pending)
	e.CreatedAt, e.DisabledAt, e.FailingSince = fromMS(created), fromMS(disabled), fromMS(failing)
	return e, err
}

// ListEndpoints implements store.Webhooks.
func (s *Store) ListEndpoints(ctx context.Context, tenantID string) ([]store.WebhookEndpoint, error) {
	rows, _ := s.pool.Query(ctx, "SELECT "+endpointCols+" FROM webhook_endpoints WHERE ($1 = '' OR tenant_id = $1) ORDER BY created_at, id", tenantID)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.WebhookEndpoint, error) { return scanEndpoint(r) })
	if err != nil {
		return nil, fmt.Errorf("list webhook endpoints: %w", err)
	}
	if out == nil {
		out = []store.WebhookEndpoint{}
	}
	return out, nil
}

// GetEndpoint implements store.Webhooks.
func (s *Store) GetEndpoint(ctx context.Context, tenantID, id string) (*store.WebhookEndpoint, error) {
	e, err := scanEndpoint(s.pool.QueryRow(ctx, "SELECT "+endpointCols+" FROM webhook_endpoints WHERE id = $1 AND ($2 = '' OR tenant_id = $2)",
		id, tenantID))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("webhook %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get webhook endpoint: %w", err)
	}
	return &e, nil
}

// endpointTx runs fn in a transaction on an endpoint of tenantID, locked
// (ErrNotFound when there is none), and passes its tenant.
func (s *Store) endpointTx(ctx context.Context, tenantID, id string, fn func(tx pgx.Tx, tenant string) error) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var tenant string
		err := tx.QueryRow(ctx, `SELECT tenant_id FROM webhook_endpoints WHERE id = $1 AND ($2 = '' OR tenant_id = $2) FOR UPDATE`,
			id, tenantID).Scan(&tenant)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("webhook %s: %w", id, store.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("webhook %s: %w", id, err)
		}
		return fn(tx, tenant)
	})
}

// DeleteEndpoint implements store.Webhooks.
func (s *Store) DeleteEndpoint(ctx context.Context, tenantID, id string) error {
	return s.endpointTx(ctx, tenantID, id, func(tx pgx.Tx, _ string) error {
		for _, q := range []string{"DELETE FROM webhook_outbox WHERE endpoint_id = $1", "DELETE FROM webhook_attempts WHERE endpoint_id = $1",
			"DELETE FROM webhook_endpoints WHERE id = $1"} {
			if _, err := tx.Exec(ctx, q, id); err != nil {
				return fmt.Errorf("delete webhook endpoint: %w", err)
			}
		}
		return nil
	})
}

// EnableEndpoint implements store.Webhooks.
func (s *Store) EnableEndpoint(ctx context.Context, tenantID, id string) error {
	return s.endpointTx(ctx, tenantID, id, func(tx pgx.Tx, _ string) error {
		if _, err := tx.Exec(ctx, "UPDATE webhook_endpoints SET disabled_at = 0, failing_since = 0 WHERE id = $1", id); err != nil {
			return fmt.Errorf("enable webhook endpoint: %w", err)
		}
		return nil
	})
}

// QueueTestWebhook implements store.Webhooks. The webhook_test event is
// inserted here, not logged through the event log: only this endpoint
// gets it, whatever the subscriptions (as in the SQLite store). It runs
// in the group commit, like every write of events.
func (s *Store) QueueTestWebhook(ctx context.Context, tenantID, id string, now time.Time) error {
	return s.write(ctx, func(ctx context.Context, w *wtx) error {
		tx := w.tx
		var tenant string
		err := tx.QueryRow(ctx, `SELECT tenant_id FROM webhook_endpoints WHERE id = $1 AND ($2 = '' OR tenant_id = $2)`, id, tenantID).Scan(&tenant)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("webhook %s: %w", id, store.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("webhook %s: %w", id, err)
		}
		var evID int64
		if err := tx.QueryRow(ctx, `INSERT INTO events (at, type, tenant_id, message_id, detail) VALUES ($1, $2, $3, '', $4) RETURNING id`,
			ms(now), store.EventWebhookTest, tenant, "test webhook for "+id).Scan(&evID); err != nil {
			return fmt.Errorf("insert test event: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO webhook_outbox (endpoint_id, event_id, okey, created_at) VALUES ($1, $2, '', $3)`,
			id, evID, ms(now)); err != nil {
			return fmt.Errorf("insert webhook outbox row: %w", err)
		}
		return notifyWebhooks(ctx, tx)
	})
}

// claimTTL is how long the rows DueWebhooks returns stay claimed by this
// node: longer than a request may take (the sender's timeout, 15 seconds
// by default), short enough that a dead node's webhooks do not wait long.
const claimTTL = 2 * time.Minute

// DueWebhooks implements store.Webhooks. A row is due when its time has
// come, no other node claims it, and no older pending row of the same
// endpoint and key exists: that is how one message's webhooks stay in
// order. Each enabled endpoint is read on its own (a lateral join), up to
// limit rows, so one endpoint's backlog never hides another's webhooks.
// The rows returned are claimed for this node; when two nodes claim at
// once, the row lock decides and the loser's UPDATE skips the row (its
// claim condition is checked again on the winner's version).
func (s *Store) DueWebhooks(ctx context.Context, now time.Time, limit int) ([]store.OutboxItem, error) {
	rows, _ := s.pool.Query(ctx, `WITH due AS (
			SELECT o.id FROM webhook_endpoints w
			CROSS JOIN LATERAL (SELECT o.id FROM webhook_outbox o
				WHERE o.endpoint_id = w.id AND o.state = 'pending' AND o.next_at <= $1
				AND (o.claimed_until <= $1 OR o.claimed_by = $3)
				AND NOT EXISTS (SELECT 1 FROM webhook_outbox p WHERE p.endpoint_id = o.endpoint_id AND p.okey = o.okey
					AND p.state = 'pending' AND p.id < o.id)
				ORDER BY o.id LIMIT $2) o
			WHERE w.disabled_at = 0),
		claimed AS (
			UPDATE webhook_outbox o SET claimed_by = $3, claimed_until = $4 FROM due
			WHERE o.id = due.id AND o.state = 'pending' AND (o.claimed_until <= $1 OR o.claimed_by = $3)
			RETURNING o.id, o.endpoint_id, o.attempts, o.okey, o.event_id)
		SELECT o.id, w.id, w.url, w.secret, o.attempts, w.failing_since, o.okey, o.event_id,
		e.id IS NULL, coalesce(e.at, 0), coalesce(e.type, ''), coalesce(e.tenant_id, ''), coalesce(e.message_id, ''),
		coalesce(e.delivery_id, 0), coalesce(e.recipient, ''), coalesce(e.attempt, 0), coalesce(e.mx, ''), coalesce(e.code, 0),
		coalesce(e.enhanced, ''), coalesce(e.text, ''), coalesce(e.detail, ''), coalesce(m.tags, '{}'), coalesce(m.metadata, ''),
		coalesce((SELECT a.class FROM attempts a WHERE a.message_id = e.message_id AND a.delivery_id = e.delivery_id AND a.n = e.attempt
			ORDER BY a.id DESC LIMIT 1), '')
		FROM claimed o
		JOIN webhook_endpoints w ON w.id = o.endpoint_id
		LEFT JOIN events e ON e.id = o.event_id
		LEFT JOIN messages m ON m.id = e.message_id AND e.message_id <> ''
		ORDER BY o.id`, ms(now), limit, s.node, ms(now.Add(claimTTL)))
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.OutboxItem, error) {
		var it store.OutboxItem
		var at, failing, code int64
		var attempt int
		var tags []string
		var meta string
		var reply smtpproto.Reply
		e := &it.Event
		if err := r.Scan(&it.ID, &it.EndpointID, &it.URL, &it.Secret, &it.Attempts, &failing, &it.Key, &e.ID, &it.Missing, &at, &e.Type,
			&e.TenantID, &e.MessageID, &e.DeliveryID, &e.Recipient, &attempt, &e.MX, &code, &reply.Enhanced, &reply.Text, &e.Detail,
			&tags, &meta, &it.Class); err != nil {
			return it, err
		}
		reply.Code = int(code)
		e.At, e.Attempt, e.Reply, it.FailingSince, it.Tags = fromMS(at), attempt, reply, fromMS(failing), listOrNil(tags)
		if meta != "" {
			json.Unmarshal([]byte(meta), &it.Metadata)
		}
		return it, nil
	})
	if err != nil {
		return nil, fmt.Errorf("due webhooks: %w", err)
	}
	slices.SortFunc(out, func(a, b store.OutboxItem) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// NextWebhookDue implements store.Webhooks; a row another node claims is
// due (to this node) when the claim expires.
func (s *Store) NextWebhookDue(ctx context.Context, now time.Time) (time.Time, error) {
	var next *int64
	err := s.pool.QueryRow(ctx, `SELECT min(due) FROM (SELECT CASE WHEN o.claimed_by <> $2 AND o.claimed_until > o.next_at
			THEN o.claimed_until ELSE o.next_at END AS due
		FROM webhook_outbox o JOIN webhook_endpoints w ON w.id = o.endpoint_id AND w.disabled_at = 0
		WHERE o.state = 'pending') d WHERE due > $1`, ms(now), s.node).Scan(&next)
	if err != nil {
		return time.Time{}, fmt.Errorf("next webhook: %w", err)
	}
	if next == nil {
		return time.Time{}, nil
	}
	return fromMS(*next), nil
}

// RecordWebhookAttempt implements store.Webhooks. It goes through the
// group-commit writer: disabling an endpoint logs webhook_disabled with
// the other events.
func (s *Store) RecordWebhookAttempt(ctx context.Context, r store.WebhookResult) error {
	return s.write(ctx, func(ctx context.Context, w *wtx) error {
		tx := w.tx
		if _, err := tx.Exec(ctx, `INSERT INTO webhook_attempts (endpoint_id, outbox_id, event_id, event_type, n, at, duration_us, status, ok,
			error, response) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`, r.EndpointID, r.OutboxID, r.EventID, r.EventType, r.N,
			ms(r.At), r.Duration.Microseconds(), r.Status, r.OK, r.Error, r.Response); err != nil {
			return fmt.Errorf("insert webhook attempt: %w", err)
		}
		var err error
		switch {
		case r.OK:
			_, err = tx.Exec(ctx, "DELETE FROM webhook_outbox WHERE id = $1", r.OutboxID)
			if err == nil {
				_, err = tx.Exec(ctx, "UPDATE webhook_endpoints SET failing_since = 0 WHERE id = $1 AND failing_since <> 0", r.EndpointID)
			}
		case r.GiveUp:
			_, err = tx.Exec(ctx, "UPDATE webhook_outbox SET state = 'failed', attempts = $1, claimed_by = '', claimed_until = 0 WHERE id = $2",
				r.N, r.OutboxID)
		default:
			_, err = tx.Exec(ctx, "UPDATE webhook_outbox SET attempts = $1, next_at = $2, claimed_by = '', claimed_until = 0 WHERE id = $3",
				r.N, ms(r.NextAt), r.OutboxID)
		}
		if err == nil && !r.OK {
			_, err = tx.Exec(ctx, "UPDATE webhook_endpoints SET failing_since = $1 WHERE id = $2 AND failing_since = 0", ms(r.At), r.EndpointID)
		}
		if err == nil {
			err = pruneWebhookHistory(ctx, tx, r.EndpointID, r.GiveUp)
		}
		if err != nil {
			return fmt.Errorf("record webhook attempt: %w", err)
		}
		if !r.Disable {
			return nil
		}
		var tenant string
		err = tx.QueryRow(ctx, "UPDATE webhook_endpoints SET disabled_at = $1 WHERE id = $2 AND disabled_at = 0 RETURNING tenant_id",
			ms(r.At), r.EndpointID).Scan(&tenant)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("disable webhook endpoint: %w", err)
		}
		w.event(store.Event{At: r.At, Type: store.EventWebhookDisabled, TenantID: tenant, Detail: r.Detail})
		return nil
	})
}

// keepWebhookHistory is how many attempts, and given-up webhooks, are
// kept per endpoint: the newest, so the tables stay bounded.
const keepWebhookHistory = 1000

// pruneWebhookHistory drops an endpoint's oldest attempts (and, after a
// give-up, its oldest given-up rows) beyond keepWebhookHistory.
func pruneWebhookHistory(ctx context.Context, tx pgx.Tx, endpoint string, gaveUp bool) error {
	if _, err := tx.Exec(ctx, `DELETE FROM webhook_attempts WHERE endpoint_id = $1 AND id <= (SELECT id FROM webhook_attempts
		WHERE endpoint_id = $1 ORDER BY id DESC LIMIT 1 OFFSET $2)`, endpoint, keepWebhookHistory); err != nil {
		return err
	}
	if !gaveUp {
		return nil
	}
	_, err := tx.Exec(ctx, `DELETE FROM webhook_outbox WHERE endpoint_id = $1 AND state = 'failed' AND id <= (SELECT id FROM webhook_outbox
		WHERE endpoint_id = $1 AND state = 'failed' ORDER BY id DESC LIMIT 1 OFFSET $2)`, endpoint, keepWebhookHistory)
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
	rows, _ := s.pool.Query(ctx, `SELECT id, endpoint_id, outbox_id, event_id, event_type, n, at, duration_us, status, ok, error, response
		FROM webhook_attempts WHERE endpoint_id = $1 ORDER BY id DESC LIMIT $2`, endpointID, limit)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.WebhookAttempt, error) {
		var a store.WebhookAttempt
		var outbox, at, dur int64
		err := r.Scan(&a.ID, &a.EndpointID, &outbox, &a.EventID, &a.EventType, &a.N, &at, &dur, &a.Status, &a.OK, &a.Error, &a.Response)
		a.WebhookID, a.At, a.Duration = store.WebhookID(outbox), fromMS(at), time.Duration(dur)*time.Microsecond
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("webhook attempts: %w", err)
	}
	if out == nil {
		out = []store.WebhookAttempt{}
	}
	return out, nil
}

// WebhookOutboxDepth implements store.Webhooks (pending rows).
func (s *Store) WebhookOutboxDepth(ctx context.Context) (int, error) {
	var n int
	if err := s.pool.QueryRow(ctx, "SELECT count(*) FROM webhook_outbox WHERE state = 'pending'").Scan(&n); err != nil {
		return 0, fmt.Errorf("count webhook outbox: %w", err)
	}
	return n, nil
}
