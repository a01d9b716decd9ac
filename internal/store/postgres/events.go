package postgres

// The event log's write side. Requests in a group commit add their events
// to the writer's evLog; just before the commit, flush sends one pipeline
// that
//   - inserts them all with one statement, IDs from the events sequence in
//     order (one writer per node commits in order, so within a node IDs
//     grow in commit order);
//   - adds the report counters they make to the rollups (tenant x UTC day x
//     recipient domain x destination: summed here, one upsert row per key;
//     tenant x day x tag: summed on the server, which joins the messages'
//     tags), rows in key order so that nodes lock rollup rows in one order;
// and then queues their webhook deliveries (queueWebhooks, same
// transaction). After the commit the events go to the sink (live streams).

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
	accepted []bool // evs[i] is a delivery's acceptance
}

func (l *evLog) reset() {
	l.evs, l.accepted = l.evs[:0], l.accepted[:0]
}

// add logs e; accepted says it is a delivery's first event.
func (l *evLog) add(e store.Event, accepted bool) {
	if e.Domain == "" {
		e.Domain = recipientDomain(e.Recipient)
	}
	l.evs = append(l.evs, e)
	l.accepted = append(l.accepted, accepted)
}

// handOff gives the committed events away (to the sink) and starts a
// fresh slice for the next batch.
func (l *evLog) handOff() []store.Event {
	evs := l.evs
	l.evs = nil
	return evs
}

// insEventsSQL inserts the batch's events, IDs from the sequence. An
// INSERT ... SELECT from unnest inserts (and numbers, and returns) rows in
// the arrays' order; flush checks that the IDs it gets back grow.
const insEventsSQL = `INSERT INTO events (at, type, tenant_id, message_id, delivery_id, recipient, attempt, mx,
	code, enhanced, text, detail, domain, destination)
	SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[],
		$7::bigint[], $8::text[], $9::bigint[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[])
	RETURNING id`

type dailyKey struct {
	tenant       string
	day          int64
	domain, dest string
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

// flush writes the batch's events, their rollups and webhook rows: one
// round trip (a pipeline), plus what queueWebhooks needs.
func (l *evLog) flush(ctx context.Context, s *Store, tx pgx.Tx) error {
	n := len(l.evs)
	if n == 0 {
		return nil
	}
	var (
		at, delivery, attempt, code                                 = make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
		typ, tenant, msg, rcpt, mx, enh, text, detail, domain, dest = make([]string, n), make([]string, n), make([]string, n), make([]string, n),
			make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	)
	for i := range l.evs {
		e := &l.evs[i]
		at[i], delivery[i], attempt[i], code[i] = ms(e.At), e.DeliveryID, int64(e.Attempt), int64(e.Reply.Code)
		typ[i], tenant[i], msg[i], rcpt[i], mx[i] = e.Type, e.TenantID, e.MessageID, e.Recipient, e.MX
		enh[i], text[i], detail[i], domain[i], dest[i] = e.Reply.Enhanced, e.Reply.Text, e.Detail, e.Domain, e.Destination
	}
	b := &pgx.Batch{}
	b.Queue(insEventsSQL, at, typ, tenant, msg, delivery, rcpt, attempt, mx, code, enh, text, detail, domain, dest)
	l.queueRollups(b)
	br := tx.SendBatch(ctx, b)
	rows, err := br.Query()
	if err != nil {
		br.Close()
		return fmt.Errorf("insert events: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		br.Close()
		return fmt.Errorf("insert events: %w", err)
	}
	if err := br.Close(); err != nil {
		return fmt.Errorf("insert events and rollups: %w", err)
	}
	if len(ids) != n {
		return fmt.Errorf("insert events: %d ids for %d events", len(ids), n)
	}
	for i := range l.evs {
		if i > 0 && ids[i] <= ids[i-1] {
			return fmt.Errorf("insert events: ids out of order (%d after %d)", ids[i], ids[i-1])
		}
		l.evs[i].ID = ids[i]
	}
	if err := s.queueWebhooks(ctx, tx, l.evs); err != nil {
		return fmt.Errorf("queue webhooks: %w", err)
	}
	return nil
}

// upTagsSQL adds the counters of events (tenant, day, message, nine
// counters) to the rollups of their messages' tags, looked up on the
// server (a message inserted in this transaction included).
var upTagsSQL = func() string {
	var sums, set []string
	for i, c := range strings.Split(counterCols, ", ") {
		sums = append(sums, fmt.Sprintf("sum(e.c%d)", i))
		set = append(set, c+" = rollup_tags."+c+" + excluded."+c)
	}
	cols := make([]string, 9)
	arrays := make([]string, 9)
	for i := range cols {
		cols[i] = fmt.Sprintf("c%d", i)
		arrays[i] = fmt.Sprintf("$%d::bigint[]", i+4)
	}
	return `INSERT INTO rollup_tags (tenant_id, day, tag, ` + counterCols + `)
		SELECT e.tenant, e.day, t.tag, ` + strings.Join(sums, ", ") + `
		FROM unnest($1::text[], $2::bigint[], $3::text[], ` + strings.Join(arrays, ", ") + `) AS e(tenant, day, msg, ` + strings.Join(cols, ", ") + `)
		JOIN messages m ON m.id = e.msg CROSS JOIN LATERAL unnest(m.tags) AS t(tag)
		GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
		ON CONFLICT (tenant_id, day, tag) DO UPDATE SET ` + strings.Join(set, ", ")
}()

// queueRollups adds to b the upserts of the counters the events add: the
// daily rollups summed here, one row per key; the tag rollups per event,
// summed on the server, which knows the messages' tags.
func (l *evLog) queueRollups(b *pgx.Batch) {
	daily := map[dailyKey]*store.Counters{}
	var tagTen, tagMsg []string
	var tagDay []int64
	var tagCs counterArrays
	for i, e := range l.evs {
		c, ok := store.CountEvent(e.Type, l.accepted[i])
		if !ok {
			continue
		}
		d := day(e.At)
		dk := dailyKey{e.TenantID, d, e.Domain, e.Destination}
		if p := daily[dk]; p != nil {
			p.Add(c)
		} else {
			daily[dk] = &c
		}
		if e.MessageID != "" {
			tagTen, tagDay, tagMsg = append(tagTen, e.TenantID), append(tagDay, d), append(tagMsg, e.MessageID)
			tagCs.add(&c)
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
	if len(tagMsg) > 0 {
		b.Queue(upTagsSQL, append([]any{tagTen, tagDay, tagMsg}, tagCs.args()...)...)
	}
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
