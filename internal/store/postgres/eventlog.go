package postgres

// The event log's read side, retention and reports.

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/posthorn/posthorn/internal/store"
)

// eventWhere builds the WHERE clause for f ("" when nothing filters).
// Every index on events ends in id, so the planner walks the one of the
// most selective equality in ID order.
func eventWhere(f store.EventFilter, a *args) string {
	var conds []string
	add := func(c string) { conds = append(conds, c) }
	if f.TenantID != "" {
		add("tenant_id = " + a.add(f.TenantID))
	}
	if f.MessageID != "" {
		add("message_id = " + a.add(f.MessageID))
	}
	if f.Recipient != "" {
		add("recipient = " + a.add(f.Recipient))
	}
	if f.Type != "" {
		add("type = " + a.add(f.Type))
	}
	if f.Domain != "" {
		add("domain = " + a.add(strings.ToLower(f.Domain)))
	}
	if f.Destination != "" {
		add("destination = " + a.add(f.Destination))
	}
	if f.Tag != "" {
		sub := "message_id IN (SELECT id FROM messages WHERE tags @> ARRAY[" + a.add(f.Tag) + "::text]"
		if f.TenantID != "" {
			sub += " AND tenant_id = " + a.add(f.TenantID)
		}
		add(sub + ")")
	}
	if !f.Since.IsZero() {
		add("at >= " + a.add(ms(f.Since)))
	}
	if !f.Until.IsZero() {
		add("at < " + a.add(ms(f.Until)))
	}
	if f.AfterID > 0 {
		add("id > " + a.add(f.AfterID))
	}
	if f.BeforeID > 0 {
		add("id < " + a.add(f.BeforeID))
	}
	if len(conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(conds, " AND ")
}

// Events implements store.Store.
func (s *Store) Events(ctx context.Context, f store.EventFilter) ([]store.Event, error) {
	var a args
	q := `SELECT id, at, type, tenant_id, message_id, delivery_id, recipient, attempt, mx, code, enhanced, text, detail,
		domain, destination FROM events` + eventWhere(f, &a)
	if f.Desc {
		q += " ORDER BY id DESC"
	} else {
		q += " ORDER BY id"
	}
	if f.Limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	rows, err := s.pool.Query(ctx, q, a...)
	if err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	defer rows.Close()
	var out []store.Event
	for rows.Next() {
		var e store.Event
		var at int64
		if err := rows.Scan(&e.ID, &at, &e.Type, &e.TenantID, &e.MessageID, &e.DeliveryID, &e.Recipient, &e.Attempt,
			&e.MX, &e.Reply.Code, &e.Reply.Enhanced, &e.Reply.Text, &e.Detail, &e.Domain, &e.Destination); err != nil {
			return nil, fmt.Errorf("events: %w", err)
		}
		e.At = fromMS(at)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	return out, nil
}

// CountEvents implements store.EventLog.
func (s *Store) CountEvents(ctx context.Context, f store.EventFilter, max int) (int, error) {
	f.AfterID, f.BeforeID = 0, 0
	var a args
	q := `SELECT count(*) FROM (SELECT 1 FROM events` + eventWhere(f, &a) + fmt.Sprintf(" LIMIT %d) x", max)
	var n int
	if err := s.pool.QueryRow(ctx, q, a...).Scan(&n); err != nil {
		return 0, fmt.Errorf("count events: %w", err)
	}
	return n, nil
}

// PruneEvents implements store.EventLog, in its own transaction. It looks
// only at the oldest 4*limit rows by ID (IDs follow time, give or take
// events written with an earlier time), so it never scans the table.
func (s *Store) PruneEvents(ctx context.Context, cutoff time.Time, limit int) (int, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM events WHERE id IN
		(SELECT id FROM (SELECT id, at FROM events ORDER BY id LIMIT $1) o WHERE at < $2 LIMIT $3)`, 4*limit, ms(cutoff), limit)
	if err != nil {
		return 0, fmt.Errorf("prune events: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// PruneBodies implements store.EventLog, in its own transaction. It walks
// messages in acceptance order (seq) from after and returns where it
// stopped.
func (s *Store) PruneBodies(ctx context.Context, cutoff time.Time, after int64, limit int) (n int, next int64, done bool, err error) {
	keep := store.SQLList(append(append([]store.State(nil), store.PendingStates...), store.DeadLetter))
	rows, err := s.pool.Query(ctx, `SELECT seq, created_at FROM messages WHERE seq > $1 ORDER BY seq LIMIT $2`, after, limit)
	if err != nil {
		return 0, after, false, fmt.Errorf("prune bodies: %w", err)
	}
	hi, seen := after, 0
	for rows.Next() {
		var seq, created int64
		if err := rows.Scan(&seq, &created); err != nil {
			rows.Close()
			return 0, after, false, fmt.Errorf("prune bodies: %w", err)
		}
		if created >= ms(cutoff) {
			done = true
			break
		}
		hi = seq
		seen++
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, after, false, fmt.Errorf("prune bodies: %w", err)
	}
	if seen < limit {
		done = true
	}
	if hi == after {
		return 0, after, done, nil
	}
	tag, err := s.pool.Exec(ctx, `UPDATE messages SET body = ''::bytea, body_pruned_at = $1
		WHERE seq > $2 AND seq <= $3 AND body_pruned_at = 0
		AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.message_id = messages.id AND d.state IN (`+keep+`))`,
		time.Now().UnixMilli(), after, hi)
	if err != nil {
		return 0, after, false, fmt.Errorf("prune bodies: %w", err)
	}
	return int(tag.RowsAffected()), hi, done, nil
}

func day(t time.Time) int64 { return t.UTC().Unix() / 86400 }

// Report implements store.EventLog.
func (s *Store) Report(ctx context.Context, q store.ReportQuery) ([]store.ReportRow, error) {
	table, key := "rollup_daily", ""
	switch q.GroupBy {
	case store.GroupByDay:
		key = "day"
	case store.GroupByDomain:
		key = "domain"
	case store.GroupByDestination:
		key = "domain, destination"
	case store.GroupByTag:
		table, key = "rollup_tags", "tag"
	default:
		return nil, fmt.Errorf("report: unknown grouping %q", q.GroupBy)
	}
	var sums []string
	for _, c := range strings.Split(counterCols, ", ") {
		sums = append(sums, "sum("+c+")::bigint")
	}
	var a args
	where := "day >= " + a.add(day(q.From)) + " AND day <= " + a.add(day(q.To))
	if q.TenantID != "" {
		where += " AND tenant_id = " + a.add(q.TenantID)
	}
	rows, err := s.pool.Query(ctx, "SELECT "+key+", "+strings.Join(sums, ", ")+" FROM "+table+" WHERE "+where+" GROUP BY "+key, a...)
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	defer rows.Close()
	var out []store.ReportRow
	var dd []store.DomainDest
	for rows.Next() {
		var c store.Counters
		cs := []any{&c.Accepted, &c.Delivered, &c.Deferred, &c.Bounced, &c.SoftBounced, &c.Complaints, &c.Unsubscribed, &c.Suppressed, &c.DeadLettered}
		switch q.GroupBy {
		case store.GroupByDay:
			var d int64
			if err := rows.Scan(append([]any{&d}, cs...)...); err != nil {
				return nil, fmt.Errorf("report: %w", err)
			}
			out = append(out, store.ReportRow{Key: time.Unix(d*86400, 0).UTC().Format(time.DateOnly), Counters: c})
		case store.GroupByDestination:
			var x store.DomainDest
			if err := rows.Scan(append([]any{&x.Domain, &x.Dest}, cs...)...); err != nil {
				return nil, fmt.Errorf("report: %w", err)
			}
			x.Counters = c
			dd = append(dd, x)
		default:
			var k string
			if err := rows.Scan(append([]any{&k}, cs...)...); err != nil {
				return nil, fmt.Errorf("report: %w", err)
			}
			out = append(out, store.ReportRow{Key: k, Counters: c})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	if q.GroupBy == store.GroupByDestination {
		out = store.ByDestination(dd)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}
