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
	"time"

	"github.com/posthorn/posthorn/internal/store"
)

const deliveryCols = `id, message_id, tenant_id, recipient, domain, lane, state, attempts, created_at,
	first_attempt_at, last_attempt_at, next_attempt_at, expires_at, last_code, last_enhanced, last_text,
	last_class, last_phase, last_mx, last_ip, provider, updated_at`

type scanner interface{ Scan(...any) error }

func scanDelivery(r scanner, extra ...any) (store.Delivery, error) {
	var d store.Delivery
	var lane, state string
	var created, first, last, next, expires, updated int64
	dest := []any{&d.ID, &d.MessageID, &d.TenantID, &d.Recipient, &d.Domain, &lane, &state, &d.Attempts, &created,
		&first, &last, &next, &expires, &d.LastReply.Code, &d.LastReply.Enhanced, &d.LastReply.Text,
		&d.LastClass, &d.LastPhase, &d.LastMX, &d.LastIP, &d.Provider, &updated}
	if err := r.Scan(append(dest, extra...)...); err != nil {
		return d, fmt.Errorf("scan delivery: %w", err)
	}
	d.Lane, d.State = store.Lane(lane), store.State(state)
	if d.LastReply.Code == 0 {
		// With no reply, last_text holds the local error (RecordOutcomes).
		d.LastError, d.LastReply.Text = d.LastReply.Text, ""
	}
	d.CreatedAt, d.FirstAttemptAt, d.LastAttemptAt = fromMS(created), fromMS(first), fromMS(last)
	d.NextAttemptAt, d.ExpiresAt, d.UpdatedAt = fromMS(next), fromMS(expires), fromMS(updated)
	return d, nil
}

// LoadPending implements store.Store.
func (s *Store) LoadPending(ctx context.Context, fn func(*store.Delivery) error) error {
	rows, err := s.r.QueryContext(ctx, `SELECT `+deliveryCols+` FROM deliveries
		WHERE state IN (`+store.SQLList(store.SchedulerStates())+`) ORDER BY id`)
	if err != nil {
		return fmt.Errorf("load pending deliveries: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return err
		}
		if err := fn(&d); err != nil {
			return err
		}
	}
	return rows.Err()
}

// PendingDue implements store.Store. Each scheduler state is one range
// of the deliveries_queue index (state, next_attempt_at, id, ...), read
// in order; the ranges are merged here. The query repeats the index's own
// IN list so that SQLite may use the partial index.
func (s *Store) PendingDue(ctx context.Context, after store.DueCursor, until time.Time, limit int) ([]store.Delivery, error) {
	if limit <= 0 {
		return nil, nil
	}
	var all []store.Delivery
	for _, st := range store.SchedulerStates() {
		rows, err := s.r.QueryContext(ctx, pendingDueSQL(st), ms(after.Due), after.ID, ms(until), limit)
		if err != nil {
			return nil, fmt.Errorf("pending deliveries in due order: %w", err)
		}
		for rows.Next() {
			d, err := scanDelivery(rows)
			if err != nil {
				rows.Close()
				return nil, err
			}
			all = append(all, d)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("pending deliveries in due order: %w", err)
		}
	}
	slices.SortFunc(all, func(a, b store.Delivery) int {
		if c := a.NextAttemptAt.Compare(b.NextAttemptAt); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return all[:min(limit, len(all))], nil
}

// pendingDueSQL is PendingDue's query of one state's due range.
func pendingDueSQL(st store.State) string {
	return `SELECT ` + deliveryCols + ` FROM deliveries INDEXED BY deliveries_queue
		WHERE ` + queueIndexCond + ` AND state = '` + string(st) + `'
		AND (next_attempt_at, id) > (?, ?) AND next_attempt_at <= ?
		ORDER BY next_attempt_at, id LIMIT ?`
}

// onlySending reports whether states is just sending: deliveries in
// flight, always few, so reading them through the partial index (then
// sorting) beats a scan of every row in ID order, even with a limit. (For
// the other pending states, numerous, the scan that stops at the limit is
// the better plan for listings.)
func onlySending(states []store.State) bool {
	for _, st := range states {
		if st != store.Sending {
			return false
		}
	}
	return true
}

func deliveryQuery(f store.DeliveryFilter) (string, []any) {
	var conds []string
	var args []any
	if f.TenantID != "" {
		conds = append(conds, "d.tenant_id = ?")
		args = append(args, f.TenantID)
	}
	if len(f.States) > 0 {
		if onlySending(f.States) {
			// Repeating the index's own condition lets SQLite use it.
			conds = append(conds, anyOf("d.state", queueIndexStates...))
		}
		conds = append(conds, "d.state IN ("+placeholders(len(f.States))+")")
		for _, st := range f.States {
			args = append(args, string(st))
		}
	}
	if f.Domain != "" {
		conds = append(conds, lateDomainCond("d.")) // lateindex.go
		args = append(args, strings.ToLower(f.Domain), strings.ToLower(f.Domain))
	}
	if f.Recipient != "" {
		if strings.Contains(f.Recipient, "@") {
			conds = append(conds, lateRcptCond("d.")+" AND d.recipient = ?") // rcptkey.go, lateindex.go
			args = append(args, rcptKey(f.Recipient), rcptKey(f.Recipient), f.Recipient)
		} else {
			conds = append(conds, "instr(d.recipient, ?) > 0")
			args = append(args, f.Recipient)
		}
	}
	if f.MessageID != "" {
		conds = append(conds, "d.message_id = ?")
		args = append(args, f.MessageID)
	}
	if !f.OlderThan.IsZero() {
		conds = append(conds, "d.created_at < ?")
		args = append(args, ms(f.OlderThan))
	}
	if !f.Since.IsZero() {
		conds = append(conds, "d.created_at >= ?")
		args = append(args, ms(f.Since))
	}
	if f.Class != "" {
		conds = append(conds, "d.last_class = ?")
		args = append(args, f.Class)
	}
	if f.Code != 0 {
		conds = append(conds, "d.last_code = ?")
		args = append(args, f.Code)
	}
	if f.Provider != "" {
		conds = append(conds, "d.provider = ?")
		args = append(args, f.Provider)
	}
	if f.Tag != "" {
		tag, _ := json.Marshal(f.Tag)
		conds = append(conds, "instr(m.tags, ?) > 0")
		args = append(args, string(tag))
	}
	if f.AfterID > 0 && !f.Newest {
		conds = append(conds, "d.id > ?")
		args = append(args, f.AfterID)
	}
	if f.BeforeID > 0 {
		conds = append(conds, "d.id < ?")
		args = append(args, f.BeforeID)
	}
	q := `SELECT ` + prefixed("d.", deliveryCols) + `, m.sender, m.size FROM deliveries d JOIN messages m ON m.id = d.message_id`
	if len(conds) > 0 {
		q += " WHERE " + strings.Join(conds, " AND ")
	}
	q += " ORDER BY d.id"
	if f.Newest {
		q += " DESC"
	}
	if f.Limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	return q, args
}

func prefixed(p, cols string) string {
	parts := strings.Split(cols, ",")
	for i, c := range parts {
		parts[i] = p + strings.TrimSpace(c)
	}
	return strings.Join(parts, ", ")
}

// ListDeliveries implements store.Store.
func (s *Store) ListDeliveries(ctx context.Context, f store.DeliveryFilter) ([]store.Delivery, error) {
	q, args := deliveryQuery(f)
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list deliveries: %w", err)
	}
	defer rows.Close()
	var out []store.Delivery
	for rows.Next() {
		var sender string
		var size int
		d, err := scanDelivery(rows, &sender, &size)
		if err != nil {
			return nil, err
		}
		d.Sender, d.Size = sender, size
		out = append(out, d)
	}
	return out, rows.Err()
}

// MessageDeliveries implements store.Store.
func (s *Store) MessageDeliveries(ctx context.Context, messageID string) ([]store.Delivery, error) {
	return s.ListDeliveries(ctx, store.DeliveryFilter{MessageID: messageID})
}

// CountDeliveries implements store.Store.
func (s *Store) CountDeliveries(ctx context.Context, tenantID string) (map[store.State]int, error) {
	q := "SELECT state, count(*) FROM deliveries"
	var args []any
	if tenantID != "" {
		q += " WHERE tenant_id = ?"
		args = append(args, tenantID)
	}
	rows, err := s.r.QueryContext(ctx, q+" GROUP BY state", args...)
	if err != nil {
		return nil, fmt.Errorf("count deliveries: %w", err)
	}
	defer rows.Close()
	out := map[store.State]int{}
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, err
		}
		out[store.State(st)] = n
	}
	return out, rows.Err()
}

// fillMessageFields adds each delivery's sender and size from its message.
func (s *Store) fillMessageFields(ctx context.Context, ds []store.Delivery) error {
	cache := map[string][2]any{}
	for i := range ds {
		v, ok := cache[ds[i].MessageID]
		if !ok {
			var sender string
			var size int
			err := s.r.QueryRowContext(ctx, "SELECT sender, size FROM messages WHERE id = ?", ds[i].MessageID).Scan(&sender, &size)
			if err != nil {
				return fmt.Errorf("message %s: %w", ds[i].MessageID, err)
			}
			v = [2]any{sender, size}
			cache[ds[i].MessageID] = v
		}
		ds[i].Sender, ds[i].Size = v[0].(string), v[1].(int)
	}
	return nil
}

// GetMessage implements store.Store.
func (s *Store) GetMessage(ctx context.Context, tenantID, id string, withBody bool) (*store.Message, error) {
	body := "x'', x''"
	if withBody {
		body = "body, dkim_signature"
	}
	q := `SELECT id, tenant_id, sender, lane, source, smtp_user, client_ip, size, message_id_hdr, subject,
		created_at, send_at, smtputf8, eightbit, tags, metadata, sandbox, body_pruned_at, dkim_domain, length(dkim_signature) = 0, ` + body + ` FROM messages WHERE id = ?`
	args := []any{id}
	if tenantID != "" {
		q += " AND tenant_id = ?"
		args = append(args, tenantID)
	}
	var m store.Message
	var lane string
	var created, sendAt, pruned int64
	var utf8, eight, sandbox int
	var tags, meta string
	var unsigned bool
	var sig []byte
	err := s.r.QueryRowContext(ctx, q, args...).Scan(&m.ID, &m.TenantID, &m.Sender, &lane, &m.Source, &m.SMTPUser,
		&m.ClientIP, &m.Size, &m.MessageID, &m.Subject, &created, &sendAt, &utf8, &eight, &tags, &meta, &sandbox, &pruned,
		&m.DKIMDomain, &unsigned, &m.Body, &sig)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get message %s: %w", id, err)
	}
	m.Lane, m.CreatedAt, m.SendAt, m.BodyPrunedAt = store.Lane(lane), fromMS(created), fromMS(sendAt), fromMS(pruned)
	m.UTF8, m.EightBitMIM, m.Sandbox = utf8 == 1, eight == 1, sandbox == 1
	if tags != "" {
		json.Unmarshal([]byte(tags), &m.Tags)
	}
	if meta != "" {
		json.Unmarshal([]byte(meta), &m.Metadata)
	}
	m.DKIMPending = m.DKIMDomain != "" && unsigned
	if !withBody {
		m.Body = nil
	} else if len(sig) > 0 {
		m.Body = append(sig, m.Body...) // what is sent: the signature first
	}
	return &m, nil
}

// Attempts implements store.Store.
func (s *Store) Attempts(ctx context.Context, messageID string) ([]store.Attempt, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, delivery_id, n, started_at, duration_us, mx, ip, tls, code,
		enhanced, text, class, phase, error, tls_version, tls_cipher, tls_policy, tls_result, source_ip
		FROM attempts WHERE message_id = ? ORDER BY id`, messageID)
	if err != nil {
		return nil, fmt.Errorf("attempts of %s: %w", messageID, err)
	}
	defer rows.Close()
	var out []store.Attempt
	for rows.Next() {
		var a store.Attempt
		var started, dur int64
		var tls int
		if err := rows.Scan(&a.ID, &a.DeliveryID, &a.N, &started, &dur, &a.MX, &a.IP, &tls, &a.Reply.Code,
			&a.Reply.Enhanced, &a.Reply.Text, &a.Class, &a.Phase, &a.Error,
			&a.TLSDetail.Version, &a.TLSDetail.Cipher, &a.TLSDetail.Policy, &a.TLSDetail.Result, &a.SourceIP); err != nil {
			return nil, err
		}
		a.StartedAt, a.TLS = fromMS(started), tls == 1
		a.Duration = microseconds(dur)
		out = append(out, a)
	}
	return out, rows.Err()
}
