package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/posthorn/posthorn/internal/store"
)

// args collects query parameters and names them $1, $2, ...
type args []any

func (a *args) add(v any) string {
	*a = append(*a, v)
	return "$" + strconv.Itoa(len(*a))
}

const deliveryCols = `id, message_id, tenant_id, recipient, domain, lane, state, attempts, created_at,
	first_attempt_at, last_attempt_at, next_attempt_at, expires_at, last_code, last_enhanced, last_text,
	last_class, last_phase, last_mx, last_ip, provider, updated_at`

func prefixed(p, cols string) string {
	parts := strings.Split(cols, ",")
	for i, c := range parts {
		parts[i] = p + strings.TrimSpace(c)
	}
	return strings.Join(parts, ", ")
}

// deliveryWithMessage are the delivery's columns (as d) and its message's
// sender and size (as m).
var deliveryWithMessage = prefixed("d.", deliveryCols) + ", m.sender, m.size"

func scanDelivery(r pgx.Row, extra ...any) (store.Delivery, error) {
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

// scanDeliveries reads rows of deliveryWithMessage.
func scanDeliveries(rows pgx.Rows) ([]store.Delivery, error) {
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

// LoadPending implements store.Store: rows in no particular order, so
// the planner may read them off the pending states' partial index
// without sorting them.
func (s *Store) LoadPending(ctx context.Context, fn func(*store.Delivery) error) error {
	rows, err := s.pool.Query(ctx, `SELECT `+deliveryCols+` FROM deliveries
		WHERE state IN (`+store.SQLList(store.SchedulerStates())+`)`)
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
	if err := rows.Err(); err != nil {
		return fmt.Errorf("load pending deliveries: %w", err)
	}
	return nil
}

func deliveryQuery(f store.DeliveryFilter) (string, args) {
	var conds []string
	var a args
	if f.TenantID != "" {
		conds = append(conds, "d.tenant_id = "+a.add(f.TenantID))
	}
	if len(f.States) > 0 {
		st := make([]string, len(f.States))
		for i, x := range f.States {
			st[i] = string(x)
		}
		conds = append(conds, "d.state = ANY("+a.add(st)+"::text[])")
	}
	if f.Domain != "" {
		conds = append(conds, "d.domain = "+a.add(strings.ToLower(f.Domain)))
	}
	if f.Recipient != "" {
		if strings.Contains(f.Recipient, "@") {
			conds = append(conds, "d.recipient = "+a.add(f.Recipient))
		} else {
			conds = append(conds, "strpos(d.recipient, "+a.add(f.Recipient)+") > 0")
		}
	}
	if f.MessageID != "" {
		conds = append(conds, "d.message_id = "+a.add(f.MessageID))
	}
	if !f.OlderThan.IsZero() {
		conds = append(conds, "d.created_at < "+a.add(ms(f.OlderThan)))
	}
	if !f.Since.IsZero() {
		conds = append(conds, "d.created_at >= "+a.add(ms(f.Since)))
	}
	if f.Class != "" {
		conds = append(conds, "d.last_class = "+a.add(f.Class))
	}
	if f.Code != 0 {
		conds = append(conds, "d.last_code = "+a.add(f.Code))
	}
	if f.Provider != "" {
		conds = append(conds, "d.provider = "+a.add(f.Provider))
	}
	if f.Tag != "" {
		conds = append(conds, "m.tags @> ARRAY["+a.add(f.Tag)+"::text]")
	}
	if f.AfterID > 0 && !f.Newest {
		conds = append(conds, "d.id > "+a.add(f.AfterID))
	}
	if f.BeforeID > 0 {
		conds = append(conds, "d.id < "+a.add(f.BeforeID))
	}
	q := `SELECT ` + deliveryWithMessage + ` FROM deliveries d JOIN messages m ON m.id = d.message_id`
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
	return q, a
}

// ListDeliveries implements store.Store.
func (s *Store) ListDeliveries(ctx context.Context, f store.DeliveryFilter) ([]store.Delivery, error) {
	q, a := deliveryQuery(f)
	rows, err := s.pool.Query(ctx, q, a...)
	if err != nil {
		return nil, fmt.Errorf("list deliveries: %w", err)
	}
	out, err := scanDeliveries(rows)
	if err != nil {
		return nil, fmt.Errorf("list deliveries: %w", err)
	}
	return out, nil
}

// MessageDeliveries implements store.Store.
func (s *Store) MessageDeliveries(ctx context.Context, messageID string) ([]store.Delivery, error) {
	return s.ListDeliveries(ctx, store.DeliveryFilter{MessageID: messageID})
}

// CountDeliveries implements store.Store.
func (s *Store) CountDeliveries(ctx context.Context, tenantID string) (map[store.State]int, error) {
	q := "SELECT state, count(*) FROM deliveries"
	var a args
	if tenantID != "" {
		q += " WHERE tenant_id = " + a.add(tenantID)
	}
	rows, err := s.pool.Query(ctx, q+" GROUP BY state", a...)
	if err != nil {
		return nil, fmt.Errorf("count deliveries: %w", err)
	}
	defer rows.Close()
	out := map[store.State]int{}
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, fmt.Errorf("count deliveries: %w", err)
		}
		out[store.State(st)] = n
	}
	return out, rows.Err()
}

// GetMessage implements store.Store.
func (s *Store) GetMessage(ctx context.Context, tenantID, id string, withBody bool) (*store.Message, error) {
	body := "''::bytea, ''::bytea"
	if withBody {
		body = "body, dkim_signature"
	}
	var a args
	q := `SELECT id, tenant_id, sender, lane, source, smtp_user, client_ip, size, message_id_hdr, subject,
		created_at, send_at, smtputf8, eightbit, tags, metadata, sandbox, body_pruned_at, dkim_domain,
		length(dkim_signature) = 0, ` + body + ` FROM messages WHERE id = ` + a.add(id)
	if tenantID != "" {
		q += " AND tenant_id = " + a.add(tenantID)
	}
	var m store.Message
	var lane, meta string
	var created, sendAt, pruned int64
	var unsigned bool
	var sig []byte
	err := s.pool.QueryRow(ctx, q, a...).Scan(&m.ID, &m.TenantID, &m.Sender, &lane, &m.Source, &m.SMTPUser,
		&m.ClientIP, &m.Size, &m.MessageID, &m.Subject, &created, &sendAt, &m.UTF8, &m.EightBitMIM, &m.Tags, &meta,
		&m.Sandbox, &pruned, &m.DKIMDomain, &unsigned, &m.Body, &sig)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get message %s: %w", id, err)
	}
	m.Lane, m.CreatedAt, m.SendAt, m.BodyPrunedAt = store.Lane(lane), fromMS(created), fromMS(sendAt), fromMS(pruned)
	if len(m.Tags) == 0 {
		m.Tags = nil
	}
	if meta != "" {
		if err := json.Unmarshal([]byte(meta), &m.Metadata); err != nil {
			return nil, fmt.Errorf("get message %s: metadata: %w", id, err)
		}
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
	rows, err := s.pool.Query(ctx, `SELECT id, delivery_id, n, started_at, duration_us, mx, ip, tls, code,
		enhanced, text, class, phase, error, tls_version, tls_cipher, tls_policy, tls_result, source_ip
		FROM attempts WHERE message_id = $1 ORDER BY id`, messageID)
	if err != nil {
		return nil, fmt.Errorf("attempts of %s: %w", messageID, err)
	}
	defer rows.Close()
	var out []store.Attempt
	for rows.Next() {
		var a store.Attempt
		var started, dur int64
		if err := rows.Scan(&a.ID, &a.DeliveryID, &a.N, &started, &dur, &a.MX, &a.IP, &a.TLS, &a.Reply.Code,
			&a.Reply.Enhanced, &a.Reply.Text, &a.Class, &a.Phase, &a.Error,
			&a.TLSDetail.Version, &a.TLSDetail.Cipher, &a.TLSDetail.Policy, &a.TLSDetail.Result, &a.SourceIP); err != nil {
			return nil, fmt.Errorf("attempts of %s: %w", messageID, err)
		}
		a.StartedAt = fromMS(started)
		a.Duration = time.Duration(dur) * time.Microsecond
		out = append(out, a)
	}
	return out, rows.Err()
}
