package postgres

// The event log's write side. Requests in a group commit add their events
// to the writer's evLog; just before the commit, flush
//   - takes IDs for all of them from the events sequence, in order (one
//     writer per node commits in order, so within a node IDs grow in
//     commit order), and inserts them with one statement;
//   - sums the report counters they add per rollup key (tenant x UTC day x
//     recipient domain x destination; tenant x day x tag) and upserts each
//     key once, keys sorted so that nodes lock rollup rows in one order;
//   - queues their webhook deliveries (queueWebhooks, same transaction).
// After the commit the events go to the sink (the live streams).

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/posthorn/posthorn/internal/store"
)

var _ store.EventLog = (*Store)(nil)

// evLog belongs to the writer goroutine.
type evLog struct {
	evs      []store.Event
	accepted []bool     // evs[i] is a delivery's acceptance
	accTags  [][]string // the message's tags, for acceptances
}

func (l *evLog) reset() {
	l.evs, l.accepted, l.accTags = l.evs[:0], l.accepted[:0], l.accTags[:0]
}

// add logs e; accepted says it is a delivery's first event, tags its
// message's tags (known to the caller then).
func (l *evLog) add(e store.Event, accepted bool, tags []string) {
	if e.Domain == "" {
		e.Domain = recipientDomain(e.Recipient)
	}
	l.evs = append(l.evs, e)
	l.accepted = append(l.accepted, accepted)
	l.accTags = append(l.accTags, tags)
}

// handOff gives the committed events away (to the sink) and starts a
// fresh slice for the next batch.
func (l *evLog) handOff() []store.Event {
	evs := l.evs
	l.evs = nil
	return evs
}

const insEventsSQL = `INSERT INTO events (id, at, type, tenant_id, message_id, delivery_id, recipient, attempt, mx,
	code, enhanced, text, detail, domain, destination)
	SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::text[],
		$8::bigint[], $9::text[], $10::bigint[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[])`

type dailyKey struct {
	tenant       string
	day          int64
	domain, dest string
}

type tagKey struct {
	tenant string
	day    int64
	tag    string
}

const counterCols = "accepted, delivered, deferred, bounced, soft_bounced, complaints, unsubscribed, suppressed, dead_lettered"

// upsertSQL adds rows given as arrays (keys, then the nine counters) to
// the counters of table.
func upsertSQL(table string, keyCols []string, keyTypes []string) string {
	var set, arrays []string
	for _, c := range strings.Split(counterCols, ", ") {
		set = append(set, c+" = "+table+"."+c+" + excluded."+c)
	}
	types := append(append([]string(nil), keyTypes...), slices.Repeat([]string{"bigint"}, 9)...)
	for i, t := range types {
		arrays = append(arrays, fmt.Sprintf("$%d::%s[]", i+1, t))
	}
	keys := strings.Join(keyCols, ", ")
	return `INSERT INTO ` + table + ` (` + keys + `, ` + counterCols + `) SELECT * FROM unnest(` + strings.Join(arrays, ", ") + `)
		ON CONFLICT (` + keys + `) DO UPDATE SET ` + strings.Join(set, ", ")
}

var (
	upDailySQL = upsertSQL("rollup_daily", []string{"tenant_id", "day", "domain", "destination"}, []string{"text", "bigint", "text", "text"})
	upTagSQL   = upsertSQL("rollup_tags", []string{"tenant_id", "day", "tag"}, []string{"text", "bigint", "text"})
)

// counterArrays holds the counters of many rollup rows, column by column.
type counterArrays [9][]int64

func (a *counterArrays) add(c *store.Counters) {
	for i, v := range []int64{c.Accepted, c.Delivered, c.Deferred, c.Bounced, c.SoftBounced, c.Complaints, c.Unsubscribed, c.Suppressed, c.DeadLettered} {
		a[i] = append(a[i], v)
	}
}

func (a *counterArrays) args() []any {
	out := make([]any, 9)
	for i := range a {
		out[i] = a[i]
	}
	return out
}

// flush writes the batch's events, their rollups and webhook rows.
func (l *evLog) flush(ctx context.Context, s *Store, tx pgx.Tx) error {
	n := len(l.evs)
	if n == 0 {
		return nil
	}
	rows, err := tx.Query(ctx, `SELECT nextval('events_id_seq') FROM generate_series(1, $1)`, n)
	if err != nil {
		return fmt.Errorf("event ids: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return fmt.Errorf("event ids: %w", err)
	}
	slices.Sort(ids)
	var (
		id, at, delivery, attempt, code                                      = make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
		typ, tenant, msg, rcpt, mx, enh, text, detail, domain, dest []string = make([]string, n), make([]string, n), make([]string, n), make([]string, n),
			make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	)
	for i := range l.evs {
		e := &l.evs[i]
		e.ID = ids[i]
		id[i], at[i], delivery[i], attempt[i], code[i] = e.ID, ms(e.At), e.DeliveryID, int64(e.Attempt), int64(e.Reply.Code)
		typ[i], tenant[i], msg[i], rcpt[i], mx[i] = e.Type, e.TenantID, e.MessageID, e.Recipient, e.MX
		enh[i], text[i], detail[i], domain[i], dest[i] = e.Reply.Enhanced, e.Reply.Text, e.Detail, e.Domain, e.Destination
	}
	b := &pgx.Batch{}
	b.Queue(insEventsSQL, id, at, typ, tenant, msg, delivery, rcpt, attempt, mx, code, enh, text, detail, domain, dest)
	if err := l.queueRollups(ctx, tx, b); err != nil {
		return err
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("insert events and rollups: %w", err)
	}
	if err := s.queueWebhooks(ctx, tx, l.evs); err != nil {
		return fmt.Errorf("queue webhooks: %w", err)
	}
	return nil
}

// queueRollups adds to b the upserts of the counters the events add.
func (l *evLog) queueRollups(ctx context.Context, tx pgx.Tx, b *pgx.Batch) error {
	daily := map[dailyKey]*store.Counters{}
	tags := map[tagKey]*store.Counters{}
	counts := make([]store.Counters, len(l.evs))
	counted := make([]bool, len(l.evs))
	var lookup []string // messages whose tags are not known yet
	for i, e := range l.evs {
		counts[i], counted[i] = store.CountEvent(e.Type, l.accepted[i])
		if counted[i] && !l.accepted[i] && e.MessageID != "" {
			lookup = append(lookup, e.MessageID)
		}
	}
	msgTags := map[string][]string{}
	if len(lookup) > 0 {
		slices.Sort(lookup)
		lookup = slices.Compact(lookup)
		rows, err := tx.Query(ctx, `SELECT id, tags FROM messages WHERE id = ANY($1)`, lookup)
		if err != nil {
			return fmt.Errorf("tags of messages: %w", err)
		}
		for rows.Next() {
			var id string
			var t []string
			if err := rows.Scan(&id, &t); err != nil {
				rows.Close()
				return fmt.Errorf("tags of messages: %w", err)
			}
			msgTags[id] = t
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("tags of messages: %w", err)
		}
	}
	for i, e := range l.evs {
		if !counted[i] {
			continue
		}
		c := counts[i]
		d := day(e.At)
		dk := dailyKey{e.TenantID, d, e.Domain, e.Destination}
		if p := daily[dk]; p != nil {
			p.Add(c)
		} else {
			daily[dk] = &c
		}
		t := l.accTags[i]
		if !l.accepted[i] {
			t = msgTags[e.MessageID]
		}
		for _, tag := range t {
			tk := tagKey{e.TenantID, d, tag}
			if p := tags[tk]; p != nil {
				p.Add(c)
			} else {
				cc := c
				tags[tk] = &cc
			}
		}
	}
	if len(daily) > 0 {
		keys := sortedKeys(daily, func(a, b dailyKey) int {
			return cmp.Or(strings.Compare(a.tenant, b.tenant), cmp.Compare(a.day, b.day), strings.Compare(a.domain, b.domain), strings.Compare(a.dest, b.dest))
		})
		var ten, dom, dst []string
		var days []int64
		var cs counterArrays
		for _, k := range keys {
			ten, days, dom, dst = append(ten, k.tenant), append(days, k.day), append(dom, k.domain), append(dst, k.dest)
			cs.add(daily[k])
		}
		b.Queue(upDailySQL, append([]any{ten, days, dom, dst}, cs.args()...)...)
	}
	if len(tags) > 0 {
		keys := sortedKeys(tags, func(a, b tagKey) int {
			return cmp.Or(strings.Compare(a.tenant, b.tenant), cmp.Compare(a.day, b.day), strings.Compare(a.tag, b.tag))
		})
		var ten, tg []string
		var days []int64
		var cs counterArrays
		for _, k := range keys {
			ten, days, tg = append(ten, k.tenant), append(days, k.day), append(tg, k.tag)
			cs.add(tags[k])
		}
		b.Queue(upTagSQL, append([]any{ten, days, tg}, cs.args()...)...)
	}
	return nil
}

func sortedKeys[K comparable, V any](m map[K]V, cmp func(a, b K) int) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, cmp)
	return keys
}

func recipientDomain(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return strings.ToLower(addr[i+1:])
	}
	return ""
}
