package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/posthorn/posthorn/internal/smtpproto"
	"github.com/posthorn/posthorn/internal/store"
)

// stmts are the hot-path statements, prepared once on the writer.
type stmts struct {
	// insEvent is used only through ev.write, which also adds the
	// rollups and the webhook outbox rows (events.go, webhooks.go).
	insMessage, insEvent, lease, outcome *sql.Stmt
	ev                                   *evLog // the event log's writes (events.go)
	insDeliveries, insAttempts           *multiInsert
	outcomeMany                          *multiStmt // outcomes of several deliveries a statement
	subs                                 *subscriptions
	recentDeliveries                     int64       // entries in the recent late index tables (lateindex.go)
	recentDel                            recentRange // deliveries inserted by this transaction
	lateFill                             [len(lateFills)][2]*sql.Stmt
}

// The writer's statements for one message, one lease and one outcome.
// The state lists come from the transition table, as OR chains (anyOf).
var (
	insMessageSQL = `INSERT INTO messages (id, tenant_id, sender, lane, source, smtp_user, client_ip, size,
		message_id_hdr, subject, created_at, send_at, smtputf8, eightbit, tags, metadata, body, sandbox, dkim_domain) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`
	leaseSQL = `UPDATE deliveries SET state=` + store.SQLList(store.Targets(store.OpLease)) + `, next_attempt_at=?, updated_at=?
		WHERE id=? AND ` + anyOf("state", store.FromStates(store.OpLease, store.Sending)...)
	outcomeSQL = `UPDATE deliveries SET state=?, attempts=attempts+1,
		first_attempt_at=CASE WHEN first_attempt_at=0 THEN ? ELSE first_attempt_at END,
		last_attempt_at=?, next_attempt_at=?, last_code=?, last_enhanced=?, last_text=?, last_class=?,
		last_phase=?, last_mx=?, last_ip=?, provider=CASE WHEN ?='' THEN provider ELSE ? END, updated_at=?
		WHERE id=? AND ` + anyOf("state", store.OpFrom(store.OpOutcome)...) + `
		RETURNING message_id, tenant_id, recipient, attempts`
)

func prepare(db *sql.DB) (*stmts, error) {
	st := stmts{subs: newSubscriptions()}
	var err error
	p := func(q string) *sql.Stmt {
		if err != nil {
			return nil
		}
		var s *sql.Stmt
		s, err = db.Prepare(q)
		if err != nil {
			err = fmt.Errorf("prepare %q: %w", strings.Fields(q)[0:3], err)
		}
		return s
	}
	st.insMessage = p(insMessageSQL)
	st.insEvent = p(insEventHead + "(" + placeholders(eventCols) + ")")
	st.lease = p(leaseSQL)
	st.outcome = p(outcomeSQL)
	st.subs.ins = p(insOutboxSQL) // webhooks.go
	if err != nil {
		return nil, err
	}
	if st.outcomeMany, err = prepareStmts(db, outcomeManySQL); err != nil {
		return nil, fmt.Errorf("outcomes: %w", err)
	}
	if st.insDeliveries, err = prepareMulti(db, insDeliveryHead, insDeliveryCols); err != nil {
		return nil, fmt.Errorf("deliveries: %w", err)
	}
	if st.insAttempts, err = prepareMulti(db, insAttemptHead, insAttemptCols); err != nil {
		return nil, fmt.Errorf("attempts: %w", err)
	}
	if st.ev, err = newEvLog(db); err != nil {
		return nil, err
	}
	st.ev.subs = st.subs // every event may have webhook outbox rows
	if st.lateFill, err = prepareLate(db); err != nil {
		st.close()
		return nil, err
	}
	return &st, nil
}

func (st *stmts) close() {
	for _, s := range []*sql.Stmt{st.insMessage, st.insEvent, st.lease, st.outcome, st.subs.ins} {
		if s != nil {
			s.Close()
		}
	}
	if st.ev != nil {
		st.ev.close()
	}
	for _, pair := range st.lateFill {
		for _, s := range pair {
			if s != nil {
				s.Close()
			}
		}
	}
	for _, m := range []*multiInsert{st.insDeliveries, st.insAttempts} {
		if m != nil {
			m.close()
		}
	}
	for _, m := range []*multiStmt{st.outcomeMany} {
		if m != nil {
			m.close()
		}
	}
}

// outcomeCols is how many values each row of outcomeManySQL takes.
const outcomeCols = 13

// outcomeManySQL records the outcomes of n deliveries (rows of
// outcomeCols values, as bound by RecordOutcomes) in one statement: what
// st.outcome does for one. A delivery must appear once in the rows (with
// two, UPDATE … FROM would apply one of them, either).
func outcomeManySQL(n int) string {
	rows := make([]string, n)
	for i := range rows {
		rows[i] = "(" + placeholders(outcomeCols) + ")"
	}
	return `WITH o(o_id, o_state, o_started, o_end, o_next, o_code, o_enhanced, o_text, o_class, o_phase, o_mx, o_ip, o_provider)
		AS (VALUES ` + strings.Join(rows, ",") + `)
		UPDATE deliveries SET state=o_state, attempts=attempts+1,
		first_attempt_at=CASE WHEN first_attempt_at=0 THEN o_started ELSE first_attempt_at END,
		last_attempt_at=o_end, next_attempt_at=o_next, last_code=o_code, last_enhanced=o_enhanced, last_text=o_text,
		last_class=o_class, last_phase=o_phase, last_mx=o_mx, last_ip=o_ip,
		provider=CASE WHEN o_provider='' THEN provider ELSE o_provider END, updated_at=o_end
		FROM o WHERE id=o_id AND ` + anyOf("state", store.OpFrom(store.OpOutcome)...) + `
		RETURNING id, message_id, tenant_id, recipient, attempts`
}

const (
	insDeliveryHead = `INSERT INTO deliveries (message_id, tenant_id, recipient, domain, lane, state, created_at,
		next_attempt_at, expires_at, updated_at, last_text, rcpt_key) VALUES `
	insDeliveryCols = 12
	insEventHead    = `INSERT INTO events (at, type, tenant_id, message_id, delivery_id, recipient, attempt, mx,
		code, enhanced, text, detail, domain, destination, rcpt_key) VALUES `
	eventCols      = 15
	insAttemptHead = `INSERT INTO attempts (delivery_id, message_id, n, started_at, duration_us, mx, ip, tls,
		code, enhanced, text, class, phase, error, tls_version, tls_cipher, tls_policy, tls_result, source_ip) VALUES `
	insAttemptCols = 19
)

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// InsertMessages implements store.Store. The deliveries of all messages
// and their acceptance events are written with multi-row INSERTs
// (multirow.go).
func (s *Store) InsertMessages(ctx context.Context, msgs []*store.NewMessage) error {
	return s.write(ctx, func(tx *sql.Tx, st *stmts) error {
		im := tx.Stmt(st.insMessage)
		var ds []*store.Delivery // of all messages, in order
		var of []*store.Message  // the message of each of ds
		for _, nm := range msgs {
			m := nm.Message
			nm.Existing = nil
			if k := nm.Idempotency; k != nil {
				existing, err := lookupIdempotency(tx, m.TenantID, k.Key, m.CreatedAt)
				if err != nil {
					return err
				}
				if existing != nil {
					nm.Existing = existing
					continue
				}
				if _, err := tx.Exec(`INSERT OR REPLACE INTO idempotency_keys (tenant_id, key, request_hash, message_id, response,
					created_at, expires_at) VALUES (?,?,?,?,?,?,?)`, m.TenantID, k.Key, k.RequestHash, m.ID, k.Response,
					ms(k.CreatedAt), ms(k.ExpiresAt)); err != nil {
					return fmt.Errorf("record idempotency key: %w", err)
				}
			}
			tags, meta := encodeTags(m.Tags), encodeMeta(m.Metadata)
			if _, err := im.Exec(m.ID, m.TenantID, m.Sender, string(m.Lane), m.Source, m.SMTPUser, m.ClientIP, m.Size,
				m.MessageID, m.Subject, ms(m.CreatedAt), ms(m.SendAt), b2i(m.UTF8), b2i(m.EightBitMIM), tags, meta, m.Body, b2i(m.Sandbox), m.DKIMDomain); err != nil {
				return fmt.Errorf("insert message %s: %w", m.ID, err)
			}
			for _, d := range nm.Deliveries {
				if err := store.CheckAccept(d); err != nil {
					return err
				}
				ds = append(ds, d)
				of = append(of, m)
			}
		}
		return insertDeliveries(tx, st, ds, of)
	})
}

// insertDeliveries writes deliveries (ds[i] of message of[i]) and their
// acceptance events, several rows a statement.
func insertDeliveries(tx *sql.Tx, st *stmts, ds []*store.Delivery, of []*store.Message) error {
	if len(ds) == 0 {
		return nil
	}
	args := make([]any, 0, len(ds)*insDeliveryCols)
	for i, d := range ds {
		m := of[i]
		args = append(args, m.ID, m.TenantID, d.Recipient, d.Domain, string(d.Lane), string(d.State),
			ms(d.CreatedAt), ms(d.NextAttemptAt), ms(d.ExpiresAt), ms(d.CreatedAt), d.LastError, rcptKey(d.Recipient))
	}
	ids := make([]int64, len(ds))
	if err := st.insDeliveries.exec(tx, args, ids); err != nil {
		return fmt.Errorf("insert deliveries: %w", err)
	}
	st.recentDel.add(ids[0], ids[len(ids)-1]) // lateindex.go
	evs := make([]store.Event, len(ds))
	for i, d := range ds {
		m := of[i]
		d.ID, d.MessageID, d.TenantID = ids[i], m.ID, m.TenantID
		evs[i] = store.Event{At: d.CreatedAt, Type: store.AcceptEvent(d.State), TenantID: m.TenantID, MessageID: m.ID,
			DeliveryID: d.ID, Recipient: d.Recipient, Domain: d.Domain, Detail: d.LastError}
	}
	return st.ev.writeMany(tx, evs, func(i int) *accepted { return &accepted{of[i].Tags} })
}

func lookupIdempotency(tx *sql.Tx, tenant, key string, now time.Time) (*store.IdempotencyRecord, error) {
	var r store.IdempotencyRecord
	var created, expires int64
	err := tx.QueryRow(`SELECT key, request_hash, message_id, response, created_at, expires_at FROM idempotency_keys
		WHERE tenant_id = ? AND key = ?`, tenant, key).Scan(&r.Key, &r.RequestHash, &r.MessageID, &r.Response, &created, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("look up idempotency key: %w", err)
	}
	r.CreatedAt, r.ExpiresAt = fromMS(created), fromMS(expires)
	if !now.Before(r.ExpiresAt) {
		return nil, nil // expired: the key may be used again
	}
	return &r, nil
}

// RecordEvent implements store.Store.
func (s *Store) RecordEvent(ctx context.Context, e store.Event) error {
	return s.write(ctx, func(tx *sql.Tx, st *stmts) error {
		return st.ev.write(tx, tx.Stmt(st.insEvent), e, nil)
	})
}

// PurgeIdempotency implements store.Store.
func (s *Store) PurgeIdempotency(ctx context.Context, now time.Time) (int, error) {
	var n int64
	err := s.write(ctx, func(tx *sql.Tx, _ *stmts) error {
		res, err := tx.Exec("DELETE FROM idempotency_keys WHERE expires_at <= ?", ms(now))
		if err != nil {
			return fmt.Errorf("purge idempotency keys: %w", err)
		}
		n, _ = res.RowsAffected()
		return nil
	})
	return int(n), err
}

func encodeTags(tags []string) string {
	if len(tags) == 0 {
		return ""
	}
	b, _ := json.Marshal(tags)
	return string(b)
}

func encodeMeta(m map[string]string) string {
	if len(m) == 0 {
		return ""
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// Lease implements store.Store. One statement a delivery: an UPDATE of
// several by an id list, returning those it took, was slower (0.39-0.44
// -> 0.57-0.63 s of profile samples for 30,000 leases in
// BenchmarkDeliveryCycle10): SQLite runs a single-row UPDATE by rowid in
// one pass, without temporary b-trees for the list and the returned rows.
func (s *Store) Lease(ctx context.Context, ids []int64, now, retryAt time.Time) ([]int64, error) {
	var leased []int64
	err := s.write(ctx, func(tx *sql.Tx, st *stmts) error {
		leased = leased[:0]
		l := tx.Stmt(st.lease)
		for _, id := range ids {
			res, err := l.Exec(ms(retryAt), ms(now), id)
			if err != nil {
				return fmt.Errorf("lease delivery %d: %w", id, err)
			}
			if n, _ := res.RowsAffected(); n == 1 {
				leased = append(leased, id)
			}
		}
		return nil
	})
	return leased, err
}

// RecordOutcomes implements store.Store. The deliveries are updated
// several a statement (outcomeManySQL) unless one appears twice; the
// attempts and events of all outcomes are written after the updates,
// with multi-row INSERTs (multirow.go).
func (s *Store) RecordOutcomes(ctx context.Context, outs []store.Outcome) error {
	if err := store.CheckOutcomes(outs); err != nil {
		return err
	}
	// A delivery given twice is updated once per statement (the first
	// outcome; the second is ignored, as it would be after the first).
	one := len(outs) < 2
	if !one {
		seen := make(map[int64]bool, len(outs))
		for _, o := range outs {
			if seen[o.DeliveryID] {
				one = true
				break
			}
			seen[o.DeliveryID] = true
		}
	}
	type updated struct {
		msgID, tenant, rcpt string
		n                   int
	}
	return s.write(ctx, func(tx *sql.Tx, st *stmts) error {
		got := make(map[int64]updated, len(outs))
		record := func(many *sql.Stmt, from, n int) error {
			if one || many == nil {
				for _, o := range outs[from : from+n] {
					var u updated
					err := tx.Stmt(st.outcome).QueryRow(string(o.State), ms(o.StartedAt), ms(o.StartedAt.Add(o.Duration)), ms(o.NextAt),
						o.Reply.Code, o.Reply.Enhanced, lastText(o), o.Class, o.Phase, o.MX, o.IP, o.Provider, o.Provider,
						ms(o.StartedAt.Add(o.Duration)), o.DeliveryID).Scan(&u.msgID, &u.tenant, &u.rcpt, &u.n)
					if errors.Is(err, sql.ErrNoRows) {
						continue // ignored
					}
					if err != nil {
						return fmt.Errorf("record outcome of delivery %d: %w", o.DeliveryID, err)
					}
					if _, dup := got[o.DeliveryID]; !dup {
						got[o.DeliveryID] = u
					}
				}
				return nil
			}
			args := make([]any, 0, n*outcomeCols)
			for _, o := range outs[from : from+n] {
				end := ms(o.StartedAt.Add(o.Duration))
				args = append(args, o.DeliveryID, string(o.State), ms(o.StartedAt), end, ms(o.NextAt),
					o.Reply.Code, o.Reply.Enhanced, lastText(o), o.Class, o.Phase, o.MX, o.IP, o.Provider)
			}
			rows, err := many.Query(args...)
			if err != nil {
				return fmt.Errorf("record %d outcomes: %w", n, err)
			}
			defer rows.Close()
			for rows.Next() {
				var id int64
				var u updated
				if err := rows.Scan(&id, &u.msgID, &u.tenant, &u.rcpt, &u.n); err != nil {
					return fmt.Errorf("record %d outcomes: %w", n, err)
				}
				got[id] = u
			}
			if err := rows.Err(); err != nil {
				return fmt.Errorf("record %d outcomes: %w", n, err)
			}
			return nil
		}
		var err error
		if one {
			err = record(nil, 0, len(outs))
		} else {
			err = st.outcomeMany.chunks(tx, len(outs), record)
		}
		if err != nil {
			return err
		}
		attempts := make([]any, 0, len(outs)*insAttemptCols)
		evs := make([]store.Event, 0, len(outs))
		for _, o := range outs {
			u, ok := got[o.DeliveryID]
			if !ok {
				ev, err := ignoredOutcome(tx, o)
				if err != nil {
					return err
				}
				if ev != nil {
					evs = append(evs, *ev)
				}
				continue
			}
			delete(got, o.DeliveryID) // a second outcome for it was ignored
			msgID, tenant, rcpt, n := u.msgID, u.tenant, u.rcpt, u.n
			end := o.StartedAt.Add(o.Duration)
			attempts = append(attempts, o.DeliveryID, msgID, n, ms(o.StartedAt), o.Duration.Microseconds(), o.MX, o.IP, b2i(o.TLS),
				o.Reply.Code, o.Reply.Enhanced, o.Reply.Text, o.Class, o.Phase, o.Error,
				o.TLSDetail.Version, o.TLSDetail.Cipher, o.TLSDetail.Policy, o.TLSDetail.Result, o.SourceIP)
			detail := o.Class
			if o.SourceIP != "" {
				detail += " source_ip=" + o.SourceIP // the source pool's address (webhooks see it)
			}
			dom := recipientDomain(rcpt)
			dest := cmp.Or(o.Provider, dom)
			evs = append(evs, store.Event{At: end, Type: o.Event, TenantID: tenant, MessageID: msgID,
				DeliveryID: o.DeliveryID, Recipient: rcpt, Attempt: n, MX: o.MX,
				Reply: smtpproto.Reply{Code: o.Reply.Code, Enhanced: o.Reply.Enhanced, Text: lastText(o)}, Detail: detail,
				Domain: dom, Destination: dest})
		}
		if err := st.insAttempts.exec(tx, attempts, make([]int64, len(attempts)/insAttemptCols)); err != nil {
			return fmt.Errorf("insert attempts: %w", err)
		}
		return st.ev.writeMany(tx, evs, func(int) *accepted { return nil })
	})
}

// lastText is what an outcome leaves as the delivery's last text (and
// its event's): the reply's, or the local error when there was no reply
// (read back as LastError).
func lastText(o store.Outcome) string {
	if o.Reply.Code == 0 {
		return o.Error
	}
	return o.Reply.Text
}

// ignoredOutcome is the event reporting an outcome for a delivery that
// has left sending (moved meanwhile, or an outcome recorded twice); an
// unknown delivery gets none (nil).
func ignoredOutcome(tx *sql.Tx, o store.Outcome) (*store.Event, error) {
	var state, msgID, tenant, rcpt string
	var n int
	err := tx.QueryRow(`SELECT state, message_id, tenant_id, recipient, attempts FROM deliveries WHERE id=?`, o.DeliveryID).
		Scan(&state, &msgID, &tenant, &rcpt, &n)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("look up delivery %d for its ignored outcome: %w", o.DeliveryID, err)
	}
	end := o.StartedAt.Add(o.Duration)
	detail := fmt.Sprintf("attempt result %s (%s) not recorded: the delivery was %s by then", o.State, o.Class, state)
	return &store.Event{At: end, Type: store.EventOutcomeIgnored, TenantID: tenant,
		MessageID: msgID, DeliveryID: o.DeliveryID, Recipient: rcpt, Attempt: n, MX: o.MX, Reply: o.Reply, Detail: detail}, nil
}

// RecoverLeases implements store.Store.
func (s *Store) RecoverLeases(ctx context.Context, now time.Time) (int, error) {
	var n int
	err := s.write(ctx, func(tx *sql.Tx, st *stmts) error {
		rows, err := tx.Query(`UPDATE deliveries SET state=`+store.SQLList(store.Targets(store.OpRecover))+`, updated_at=?
			WHERE `+queueIndexCond+` AND state IN (`+store.SQLList(store.FromStates(store.OpRecover, store.Queued))+`)
			RETURNING id, message_id, tenant_id, recipient`, ms(now))
		if err != nil {
			return fmt.Errorf("recover leases: %w", err)
		}
		type rec struct {
			id             int64
			msg, ten, rcpt string
		}
		var recs []rec
		for rows.Next() {
			var r rec
			if err := rows.Scan(&r.id, &r.msg, &r.ten, &r.rcpt); err != nil {
				rows.Close()
				return err
			}
			recs = append(recs, r)
		}
		if err := rows.Close(); err != nil {
			return err
		}
		ie := tx.Stmt(st.insEvent)
		for _, r := range recs {
			if err := st.ev.write(tx, ie, store.Event{At: now, Type: store.EventRecovered, TenantID: r.ten, MessageID: r.msg,
				DeliveryID: r.id, Recipient: r.rcpt, Detail: "was being sent when posthorn stopped; retried after its lease"}, nil); err != nil {
				return err
			}
		}
		n = len(recs)
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
	err := s.write(ctx, func(tx *sql.Tx, st *stmts) error {
		out = out[:0]
		args := []any{ms(now), ms(now)}
		for _, id := range ids {
			args = append(args, id)
		}
		rows, err := tx.Query(`UPDATE deliveries SET state='`+string(store.Queued)+`', updated_at=?
			WHERE state IN (`+store.SQLList(store.FromStates(store.OpRecover, store.Queued))+`) AND next_attempt_at <= ?
			AND id IN (`+placeholders(len(ids))+`) RETURNING `+deliveryCols, args...)
		if err != nil {
			return fmt.Errorf("rescue leases: %w", err)
		}
		for rows.Next() {
			d, err := scanDelivery(rows)
			if err != nil {
				rows.Close()
				return err
			}
			out = append(out, d)
		}
		if err := rows.Close(); err != nil {
			return err
		}
		ie := tx.Stmt(st.insEvent)
		for _, d := range out {
			if err := st.ev.write(tx, ie, store.Event{At: now, Type: store.EventRecovered, TenantID: d.TenantID, MessageID: d.MessageID,
				DeliveryID: d.ID, Recipient: d.Recipient, Attempt: d.Attempts,
				Detail: "left in sending after its lease ended (outcome not recorded); retried"}, nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Transition implements store.Store.
func (s *Store) Transition(ctx context.Context, spec store.TransitionSpec) ([]store.Delivery, error) {
	if err := store.PrepareTransition(&spec); err != nil {
		return nil, err
	}
	where, args, err := transitionWhere(spec)
	if err != nil {
		return nil, err
	}
	var out []store.Delivery
	err = s.write(ctx, func(tx *sql.Tx, st *stmts) error {
		out = out[:0]
		set := "state=?, updated_at=?"
		sargs := []any{string(spec.To), ms(spec.Now)}
		if !spec.NextAt.IsZero() {
			set += ", next_attempt_at=?"
			sargs = append(sargs, ms(spec.NextAt))
		}
		if !spec.ExpiresAt.IsZero() {
			set += ", expires_at=?"
			sargs = append(sargs, ms(spec.ExpiresAt))
		}
		rows, err := tx.Query("UPDATE deliveries SET "+set+" WHERE "+where+" RETURNING "+deliveryCols, append(sargs, args...)...)
		if err != nil {
			return fmt.Errorf("transition to %s: %w", spec.To, err)
		}
		for rows.Next() {
			d, err := scanDelivery(rows)
			if err != nil {
				rows.Close()
				return err
			}
			out = append(out, d)
		}
		if err := rows.Close(); err != nil {
			return err
		}
		ie := tx.Stmt(st.insEvent)
		for _, d := range out {
			if err := st.ev.write(tx, ie, store.Event{At: spec.Now, Type: spec.Event, TenantID: d.TenantID, MessageID: d.MessageID,
				DeliveryID: d.ID, Recipient: d.Recipient, Attempt: d.Attempts, Detail: spec.Detail, Domain: d.Domain,
				Destination: cmp.Or(d.Provider, d.Domain)}, nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// The RETURNING rows lack the message's sender and size; fill them in.
	if err := s.fillMessageFields(ctx, out); err != nil {
		return nil, err
	}
	return out, nil
}

func transitionWhere(spec store.TransitionSpec) (string, []any, error) {
	if !spec.To.Valid() || spec.Event == "" {
		return "", nil, fmt.Errorf("transition: bad target state %q or event %q", spec.To, spec.Event)
	}
	if len(spec.From) == 0 {
		return "", nil, errors.New("transition: no source states")
	}
	var conds []string
	var args []any
	conds = append(conds, "state IN ("+placeholders(len(spec.From))+")")
	for _, st := range spec.From {
		args = append(args, string(st))
	}
	selected := spec.All
	if len(spec.MessageIDs) > 0 {
		conds = append(conds, "message_id IN ("+placeholders(len(spec.MessageIDs))+")")
		for _, id := range spec.MessageIDs {
			args = append(args, id)
		}
		selected = true
	}
	if len(spec.DeliveryIDs) > 0 {
		conds = append(conds, "id IN ("+placeholders(len(spec.DeliveryIDs))+")")
		for _, id := range spec.DeliveryIDs {
			args = append(args, id)
		}
		selected = true
	}
	if spec.Domain != "" {
		conds = append(conds, lateDomainCond("")) // lateindex.go
		args = append(args, strings.ToLower(spec.Domain), strings.ToLower(spec.Domain))
		selected = true
	}
	if !selected {
		return "", nil, errors.New("transition: select deliveries by id or domain, or say all")
	}
	if spec.TenantID != "" {
		conds = append(conds, "tenant_id = ?")
		args = append(args, spec.TenantID)
	}
	return strings.Join(conds, " AND "), args, nil
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}
