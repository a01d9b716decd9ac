package postgres

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/posthorn/posthorn/internal/smtpproto"
	"github.com/posthorn/posthorn/internal/store"
)

const insMessageSQL = `INSERT INTO messages (id, tenant_id, sender, lane, source, smtp_user, client_ip, size,
	message_id_hdr, subject, created_at, send_at, smtputf8, eightbit, tags, metadata, body, sandbox, dkim_domain)
	VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19)`

const insDeliverySQL = `INSERT INTO deliveries (message_id, tenant_id, recipient, domain, lane, state, created_at,
	next_attempt_at, expires_at, updated_at, last_text) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11) RETURNING id`

// InsertMessages implements store.Store. Without idempotency keys it is
// a piped request: its statements share the group commit's round trip.
// With keys, each key is claimed first (a round trip each), then the
// statements of the messages to insert go in one pipeline.
func (s *Store) InsertMessages(ctx context.Context, msgs []*store.NewMessage) error {
	keys := false
	for _, nm := range msgs {
		for _, d := range nm.Deliveries {
			if err := store.CheckAccept(d); err != nil {
				return err
			}
		}
		keys = keys || nm.Idempotency != nil
	}
	if !keys {
		return s.writePiped(ctx, func(b *pgx.Batch) {
			for _, nm := range msgs {
				queueInsert(b, nm)
			}
		}, func(br pgx.BatchResults, w *wtx) error {
			for _, nm := range msgs {
				nm.Existing = nil
				if err := readInsert(br, nm); err != nil {
					return err
				}
			}
			for _, nm := range msgs {
				logAccepted(w, nm)
			}
			return nil
		})
	}
	return s.write(ctx, func(ctx context.Context, w *wtx) error {
		b := &pgx.Batch{}
		var inserted []*store.NewMessage
		for _, nm := range msgs {
			nm.Existing = nil
			if k := nm.Idempotency; k != nil {
				existing, err := claimIdempotency(ctx, w.tx, nm.Message, k)
				if err != nil {
					return err
				}
				if existing != nil {
					nm.Existing = existing
					continue
				}
			}
			queueInsert(b, nm)
			inserted = append(inserted, nm)
		}
		if len(inserted) == 0 {
			return nil
		}
		br := w.tx.SendBatch(ctx, b)
		for _, nm := range inserted {
			if err := readInsert(br, nm); err != nil {
				br.Close()
				return err
			}
		}
		if err := br.Close(); err != nil {
			return fmt.Errorf("insert messages: %w", err)
		}
		for _, nm := range inserted {
			logAccepted(w, nm)
		}
		return nil
	})
}

// queueInsert adds the statements that insert nm and its deliveries.
func queueInsert(b *pgx.Batch, nm *store.NewMessage) {
	m := nm.Message
	tags := m.Tags
	if tags == nil {
		tags = []string{}
	}
	b.Queue(insMessageSQL, m.ID, m.TenantID, m.Sender, string(m.Lane), m.Source, m.SMTPUser, m.ClientIP, m.Size,
		m.MessageID, m.Subject, ms(m.CreatedAt), ms(m.SendAt), m.UTF8, m.EightBitMIM, tags, encodeMeta(m.Metadata),
		nonNil(m.Body), m.Sandbox, m.DKIMDomain)
	for _, d := range nm.Deliveries {
		b.Queue(insDeliverySQL, m.ID, m.TenantID, d.Recipient, d.Domain, string(d.Lane), string(d.State),
			ms(d.CreatedAt), ms(d.NextAttemptAt), ms(d.ExpiresAt), ms(d.CreatedAt), d.LastError)
	}
}

// readInsert takes the results of queueInsert's statements: the
// deliveries' IDs.
func readInsert(br pgx.BatchResults, nm *store.NewMessage) error {
	if _, err := br.Exec(); err != nil {
		return fmt.Errorf("insert message %s: %w", nm.Message.ID, err)
	}
	for _, d := range nm.Deliveries {
		if err := br.QueryRow().Scan(&d.ID); err != nil {
			return fmt.Errorf("insert delivery for %s: %w", nm.Message.ID, err)
		}
		d.MessageID, d.TenantID = nm.Message.ID, nm.Message.TenantID
	}
	return nil
}

// logAccepted logs the acceptance event of each of nm's deliveries.
func logAccepted(w *wtx, nm *store.NewMessage) {
	m := nm.Message
	for _, d := range nm.Deliveries {
		w.ev.add(store.Event{At: d.CreatedAt, Type: store.AcceptEvent(d.State), TenantID: m.TenantID, MessageID: m.ID,
			DeliveryID: d.ID, Recipient: d.Recipient, Domain: d.Domain, Detail: d.LastError}, true)
	}
}

// claimIdempotency records m's key unless it is taken and has not
// expired by the message's time; then it returns the stored record. The
// insert waits for another transaction holding the same key (another
// node's) to end, so two nodes never both take one key.
func claimIdempotency(ctx context.Context, tx pgx.Tx, m *store.Message, k *store.IdempotencyRecord) (*store.IdempotencyRecord, error) {
	tag, err := tx.Exec(ctx, `INSERT INTO idempotency_keys (tenant_id, key, request_hash, message_id, response, created_at, expires_at)
		VALUES ($1,$2,$3,$4,$5,$6,$7)
		ON CONFLICT (tenant_id, key) DO UPDATE SET request_hash = excluded.request_hash, message_id = excluded.message_id,
			response = excluded.response, created_at = excluded.created_at, expires_at = excluded.expires_at
		WHERE idempotency_keys.expires_at <= $8`,
		m.TenantID, k.Key, k.RequestHash, m.ID, nonNil(k.Response), ms(k.CreatedAt), ms(k.ExpiresAt), ms(m.CreatedAt))
	if err != nil {
		return nil, fmt.Errorf("record idempotency key: %w", err)
	}
	if tag.RowsAffected() == 1 {
		return nil, nil
	}
	var r store.IdempotencyRecord
	var created, expires int64
	err = tx.QueryRow(ctx, `SELECT key, request_hash, message_id, response, created_at, expires_at FROM idempotency_keys
		WHERE tenant_id = $1 AND key = $2`, m.TenantID, k.Key).Scan(&r.Key, &r.RequestHash, &r.MessageID, &r.Response, &created, &expires)
	if err != nil {
		return nil, fmt.Errorf("look up idempotency key: %w", err)
	}
	r.CreatedAt, r.ExpiresAt = fromMS(created), fromMS(expires)
	return &r, nil
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func encodeMeta(m map[string]string) string {
	if len(m) == 0 {
		return ""
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// RecordEvent implements store.Store.
func (s *Store) RecordEvent(ctx context.Context, e store.Event) error {
	return s.write(ctx, func(ctx context.Context, w *wtx) error {
		w.event(e)
		return nil
	})
}

// PurgeIdempotency implements store.Store (its own transaction).
func (s *Store) PurgeIdempotency(ctx context.Context, now time.Time) (int, error) {
	tag, err := s.pool.Exec(ctx, "DELETE FROM idempotency_keys WHERE expires_at <= $1", ms(now))
	if err != nil {
		return 0, fmt.Errorf("purge idempotency keys: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

var leaseSQL = `UPDATE deliveries SET state = ` + store.SQLList(store.Targets(store.OpLease)) + `,
	next_attempt_at = $1, updated_at = $2
	WHERE id = ANY($3) AND state IN (` + store.SQLList(store.FromStates(store.OpLease, store.Sending)) + `) RETURNING id`

// Lease implements store.Store (a piped request). The state lists come
// from the transition table.
func (s *Store) Lease(ctx context.Context, ids []int64, now, retryAt time.Time) ([]int64, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	var leased []int64
	err := s.writePiped(ctx, func(b *pgx.Batch) {
		b.Queue(leaseSQL, ms(retryAt), ms(now), ids)
	}, func(br pgx.BatchResults, w *wtx) error {
		rows, err := br.Query()
		if err != nil {
			return fmt.Errorf("lease deliveries: %w", err)
		}
		got, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return fmt.Errorf("lease deliveries: %w", err)
		}
		took := make(map[int64]bool, len(got))
		for _, id := range got {
			took[id] = true
		}
		leased = leased[:0]
		for _, id := range ids { // in the caller's order, each once
			if took[id] {
				leased = append(leased, id)
				delete(took, id)
			}
		}
		return nil
	})
	return leased, err
}

// outcomeSQL records one outcome in one statement: the delivery's change
// and its attempt row when it is still sending; otherwise it only reads
// the delivery (the statement's snapshot: as it was before the change, so
// the second part sees the row only when the first changed nothing).
var outcomeSQL = `WITH u AS (
		UPDATE deliveries SET state = $1, attempts = attempts + 1,
			first_attempt_at = CASE WHEN first_attempt_at = 0 THEN $2 ELSE first_attempt_at END,
			last_attempt_at = $3, next_attempt_at = $4, last_code = $5, last_enhanced = $6, last_text = $7, last_class = $8,
			last_phase = $9, last_mx = $10, last_ip = $11, provider = CASE WHEN $12 = '' THEN provider ELSE $12 END, updated_at = $3
		WHERE id = $13 AND state IN (` + store.SQLList(store.OpFrom(store.OpOutcome)) + `)
		RETURNING message_id, tenant_id, recipient, attempts),
	a AS (
		INSERT INTO attempts (delivery_id, message_id, n, started_at, duration_us, mx, ip, tls, code, enhanced, text, class, phase,
			error, tls_version, tls_cipher, tls_policy, tls_result, source_ip)
		SELECT $13, message_id, attempts, $2, $14::bigint, $10, $11, $15::boolean, $5, $6, $16::text, $8, $9,
			$17::text, $18::text, $19::text, $20::text, $21::text, $22::text FROM u)
	SELECT false, '', message_id, tenant_id, recipient, attempts FROM u
	UNION ALL
	SELECT true, state, message_id, tenant_id, recipient, attempts FROM deliveries WHERE id = $13 AND NOT EXISTS (SELECT 1 FROM u)`

// RecordOutcomes implements store.Store: one statement per outcome, a
// piped request.
func (s *Store) RecordOutcomes(ctx context.Context, outs []store.Outcome) error {
	if err := store.CheckOutcomes(outs); err != nil {
		return err
	}
	if len(outs) == 0 {
		return nil
	}
	type result struct {
		ignored             bool
		state               string // for ignored ones: the state it was in
		msgID, tenant, rcpt string
		n                   int
		unknown             bool // no such delivery
	}
	var res []result
	return s.writePiped(ctx, func(b *pgx.Batch) {
		for _, o := range outs {
			end := o.StartedAt.Add(o.Duration)
			lastText := o.Reply.Text
			if o.Reply.Code == 0 {
				lastText = o.Error // no reply: keep the local error (read back as LastError)
			}
			b.Queue(outcomeSQL, string(o.State), ms(o.StartedAt), ms(end), ms(o.NextAt), o.Reply.Code, o.Reply.Enhanced,
				lastText, o.Class, o.Phase, o.MX, o.IP, o.Provider, o.DeliveryID,
				o.Duration.Microseconds(), o.TLS, o.Reply.Text, o.Error,
				o.TLSDetail.Version, o.TLSDetail.Cipher, o.TLSDetail.Policy, o.TLSDetail.Result, o.SourceIP)
		}
	}, func(br pgx.BatchResults, w *wtx) error {
		res = make([]result, len(outs))
		for i, o := range outs {
			r := &res[i]
			err := br.QueryRow().Scan(&r.ignored, &r.state, &r.msgID, &r.tenant, &r.rcpt, &r.n)
			if errors.Is(err, pgx.ErrNoRows) {
				r.unknown = true
				continue
			}
			if err != nil {
				return fmt.Errorf("record outcome of delivery %d: %w", o.DeliveryID, err)
			}
		}
		for i, o := range outs {
			r := res[i]
			end := o.StartedAt.Add(o.Duration)
			switch {
			case r.unknown:
				// An unknown delivery leaves no trace.
			case r.ignored:
				detail := fmt.Sprintf("attempt result %s (%s) not recorded: the delivery was %s by then", o.State, o.Class, r.state)
				w.event(store.Event{At: end, Type: store.EventOutcomeIgnored, TenantID: r.tenant, MessageID: r.msgID,
					DeliveryID: o.DeliveryID, Recipient: r.rcpt, Attempt: r.n, MX: o.MX, Reply: o.Reply, Detail: detail})
			default:
				text := o.Reply.Text
				if o.Reply.Code == 0 {
					text = o.Error
				}
				detail := o.Class
				if o.SourceIP != "" {
					detail += " source_ip=" + o.SourceIP // the source pool's address (webhooks see it)
				}
				dom := recipientDomain(r.rcpt)
				w.event(store.Event{At: end, Type: o.Event, TenantID: r.tenant, MessageID: r.msgID,
					DeliveryID: o.DeliveryID, Recipient: r.rcpt, Attempt: r.n, MX: o.MX,
					Reply: smtpproto.Reply{Code: o.Reply.Code, Enhanced: o.Reply.Enhanced, Text: text}, Detail: detail,
					Domain: dom, Destination: cmp.Or(o.Provider, dom)})
			}
		}
		return nil
	})
}

// RecoverLeases implements store.Store.
func (s *Store) RecoverLeases(ctx context.Context, now time.Time) (int, error) {
	var n int
	err := s.write(ctx, func(ctx context.Context, w *wtx) error {
		rows, err := w.tx.Query(ctx, `UPDATE deliveries d SET state = `+store.SQLList(store.Targets(store.OpRecover))+`, updated_at = $1
			FROM messages m WHERE m.id = d.message_id
			AND d.state IN (`+store.SQLList(store.FromStates(store.OpRecover, store.Queued))+`)
			RETURNING `+deliveryWithMessage, ms(now))
		if err != nil {
			return fmt.Errorf("recover leases: %w", err)
		}
		ds, err := scanDeliveries(rows)
		if err != nil {
			return fmt.Errorf("recover leases: %w", err)
		}
		byID(ds)
		for _, d := range ds {
			w.event(store.Event{At: now, Type: store.EventRecovered, TenantID: d.TenantID, MessageID: d.MessageID,
				DeliveryID: d.ID, Recipient: d.Recipient, Detail: "was being sent when posthorn stopped; retried after its lease"})
		}
		n = len(ds)
		return nil
	})
	return n, err
}

// RescueLeases implements store.Store.
func (s *Store) RescueLeases(ctx context.Context, ids []int64, now time.Time) ([]store.Delivery, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	var out []store.Delivery
	err := s.write(ctx, func(ctx context.Context, w *wtx) error {
		rows, err := w.tx.Query(ctx, `UPDATE deliveries d SET state = `+store.SQLList(store.Targets(store.OpRecover))+`, updated_at = $1
			FROM messages m WHERE m.id = d.message_id
			AND d.state IN (`+store.SQLList(store.FromStates(store.OpRecover, store.Queued))+`) AND d.next_attempt_at <= $1
			AND d.id = ANY($2) RETURNING `+deliveryWithMessage, ms(now), ids)
		if err != nil {
			return fmt.Errorf("rescue leases: %w", err)
		}
		if out, err = scanDeliveries(rows); err != nil {
			return fmt.Errorf("rescue leases: %w", err)
		}
		byID(out)
		for _, d := range out {
			w.event(store.Event{At: now, Type: store.EventRecovered, TenantID: d.TenantID, MessageID: d.MessageID,
				DeliveryID: d.ID, Recipient: d.Recipient, Attempt: d.Attempts,
				Detail: "left in sending after its lease ended (outcome not recorded); retried"})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func byID(ds []store.Delivery) {
	slices.SortFunc(ds, func(a, b store.Delivery) int { return cmp.Compare(a.ID, b.ID) })
}

// Transition implements store.Store.
func (s *Store) Transition(ctx context.Context, spec store.TransitionSpec) ([]store.Delivery, error) {
	if err := store.PrepareTransition(&spec); err != nil {
		return nil, err
	}
	var a args
	set := "state = " + a.add(string(spec.To)) + ", updated_at = " + a.add(ms(spec.Now))
	if !spec.NextAt.IsZero() {
		set += ", next_attempt_at = " + a.add(ms(spec.NextAt))
	}
	if !spec.ExpiresAt.IsZero() {
		set += ", expires_at = " + a.add(ms(spec.ExpiresAt))
	}
	where, err := transitionWhere(spec, &a)
	if err != nil {
		return nil, err
	}
	var out []store.Delivery
	err = s.write(ctx, func(ctx context.Context, w *wtx) error {
		rows, err := w.tx.Query(ctx, "UPDATE deliveries d SET "+set+" FROM messages m WHERE m.id = d.message_id AND "+where+
			" RETURNING "+deliveryWithMessage, a...)
		if err != nil {
			return fmt.Errorf("transition to %s: %w", spec.To, err)
		}
		if out, err = scanDeliveries(rows); err != nil {
			return fmt.Errorf("transition to %s: %w", spec.To, err)
		}
		byID(out)
		for _, d := range out {
			w.event(store.Event{At: spec.Now, Type: spec.Event, TenantID: d.TenantID, MessageID: d.MessageID,
				DeliveryID: d.ID, Recipient: d.Recipient, Attempt: d.Attempts, Detail: spec.Detail, Domain: d.Domain,
				Destination: cmp.Or(d.Provider, d.Domain)})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func transitionWhere(spec store.TransitionSpec, a *args) (string, error) {
	if !spec.To.Valid() || spec.Event == "" {
		return "", fmt.Errorf("transition: bad target state %q or event %q", spec.To, spec.Event)
	}
	if len(spec.From) == 0 {
		return "", errors.New("transition: no source states")
	}
	from := make([]string, len(spec.From))
	for i, st := range spec.From {
		from[i] = string(st)
	}
	conds := []string{"d.state = ANY(" + a.add(from) + "::text[])"}
	selected := spec.All
	if len(spec.MessageIDs) > 0 {
		conds = append(conds, "d.message_id = ANY("+a.add(spec.MessageIDs)+"::text[])")
		selected = true
	}
	if len(spec.DeliveryIDs) > 0 {
		conds = append(conds, "d.id = ANY("+a.add(spec.DeliveryIDs)+"::bigint[])")
		selected = true
	}
	if spec.Domain != "" {
		conds = append(conds, "d.domain = "+a.add(strings.ToLower(spec.Domain)))
		selected = true
	}
	if !selected {
		return "", errors.New("transition: select deliveries by id or domain, or say all")
	}
	if spec.TenantID != "" {
		conds = append(conds, "d.tenant_id = "+a.add(spec.TenantID))
	}
	return strings.Join(conds, " AND "), nil
}
