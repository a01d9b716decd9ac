package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/posthorn/posthorn/internal/smtpproto"
	"github.com/posthorn/posthorn/internal/store"
)

// The event log's write side. Every event goes through evLog.write, on
// the writer goroutine, inside the group-commit transaction:
//   - the row is inserted (its ID kept for the live streams);
//   - the report counters it adds are summed in memory per rollup key
//     (tenant x UTC day x recipient domain x destination, and tenant x day
//     x tag), and flushed with one upsert per key just before the commit,
//     so a batch of 500 acceptances costs a handful of upserts, not 500;
//   - after the commit the events go to the sink (the live broadcaster).
// A batch that fails is rolled back and re-run; reset clears what the
// failed run gathered.

var _ store.EventLog = (*Store)(nil)

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

// evLog belongs to the writer goroutine (no locks), except sink.
type evLog struct {
	upDaily, upTag, selTags *sql.Stmt
	insMany                 *multiInsert // events, several rows a statement
	evs                     []store.Event
	daily                   map[dailyKey]*store.Counters
	tags                    map[tagKey]*store.Counters
	msgTags                 map[string][]string // tags looked up in this transaction
	handedOff               bool                // evs belongs to the sink now
	sink                    atomic.Pointer[func([]store.Event)]
	subs                    *subscriptions // webhook outbox rows (webhooks.go)
	recent                  int64          // entries in the recent late index table (lateindex.go)
	recentEv                recentRange    // events inserted by this transaction
}

const counterCols = "accepted, delivered, deferred, bounced, soft_bounced, complaints, unsubscribed, suppressed, dead_lettered"

func counterVals(c *store.Counters) []any {
	return []any{c.Accepted, c.Delivered, c.Deferred, c.Bounced, c.SoftBounced, c.Complaints, c.Unsubscribed, c.Suppressed, c.DeadLettered}
}

func upsertSQL(table, keyCols string, nkeys int) string {
	var set []string
	for _, c := range strings.Split(counterCols, ", ") {
		set = append(set, c+"="+c+"+excluded."+c)
	}
	return `INSERT INTO ` + table + ` (` + keyCols + `, ` + counterCols + `) VALUES (` + placeholders(nkeys+9) + `)
		ON CONFLICT (` + keyCols + `) DO UPDATE SET ` + strings.Join(set, ", ")
}

func newEvLog(db *sql.DB) (*evLog, error) {
	l := &evLog{daily: map[dailyKey]*store.Counters{}, tags: map[tagKey]*store.Counters{}, msgTags: map[string][]string{}}
	var err error
	if l.upDaily, err = db.Prepare(upsertSQL("rollup_daily", "tenant_id, day, domain, destination", 4)); err != nil {
		return nil, fmt.Errorf("prepare rollup upsert: %w", err)
	}
	if l.upTag, err = db.Prepare(upsertSQL("rollup_tags", "tenant_id, day, tag", 3)); err != nil {
		return nil, fmt.Errorf("prepare tag rollup upsert: %w", err)
	}
	if l.selTags, err = db.Prepare(`SELECT tags FROM messages WHERE id = ?`); err != nil {
		return nil, fmt.Errorf("prepare tags lookup: %w", err)
	}
	if l.insMany, err = prepareMulti(db, insEventHead, eventCols); err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	return l, nil
}

func (l *evLog) close() {
	for _, s := range []*sql.Stmt{l.upDaily, l.upTag, l.selTags} {
		if s != nil {
			s.Close()
		}
	}
	if l.insMany != nil {
		l.insMany.close()
	}
}

// reset starts a transaction afresh.
func (l *evLog) reset() {
	if l.handedOff {
		l.evs, l.handedOff = nil, false // the sink owns the last batch's slice
	} else {
		l.evs = l.evs[:0]
	}
	clear(l.daily)
	clear(l.tags)
	clear(l.msgTags)
	l.recentEv = recentRange{}
}

// accepted says an event is a delivery's first (its acceptance) and
// carries the message's tags, known to the caller.
type accepted struct{ tags []string }

// write inserts e with ie (the transaction's insert statement) and adds
// it to the rollups; acc is set for acceptance events.
func (l *evLog) write(tx *sql.Tx, ie *sql.Stmt, e store.Event, acc *accepted) error {
	if e.Domain == "" {
		e.Domain = recipientDomain(e.Recipient)
	}
	res, err := ie.Exec(ms(e.At), e.Type, e.TenantID, e.MessageID, e.DeliveryID, e.Recipient, e.Attempt, e.MX,
		e.Reply.Code, e.Reply.Enhanced, e.Reply.Text, e.Detail, e.Domain, e.Destination, eventRcptKey(&e))
	if err != nil {
		return fmt.Errorf("insert %s event: %w", e.Type, err)
	}
	if e.ID, err = res.LastInsertId(); err != nil {
		return err
	}
	l.recentEv.add(e.ID, e.ID) // lateindex.go
	return l.written(tx, e, acc)
}

// writeMany is write for several events, inserted with multi-row
// INSERTs; acc gives the acc argument of write for evs[i].
func (l *evLog) writeMany(tx *sql.Tx, evs []store.Event, acc func(i int) *accepted) error {
	args := make([]any, 0, len(evs)*eventCols)
	for i := range evs {
		e := &evs[i]
		if e.Domain == "" {
			e.Domain = recipientDomain(e.Recipient)
		}
		args = append(args, ms(e.At), e.Type, e.TenantID, e.MessageID, e.DeliveryID, e.Recipient, e.Attempt, e.MX,
			e.Reply.Code, e.Reply.Enhanced, e.Reply.Text, e.Detail, e.Domain, e.Destination, eventRcptKey(e))
	}
	ids := make([]int64, len(evs))
	if err := l.insMany.exec(tx, args, ids); err != nil {
		return fmt.Errorf("insert %d events: %w", len(evs), err)
	}
	l.recentEv.add(ids[0], ids[len(ids)-1]) // lateindex.go
	for i := range evs {
		evs[i].ID = ids[i]
		if err := l.written(tx, evs[i], acc(i)); err != nil {
			return err
		}
	}
	return nil
}

// written does the rest of write once e is in the table: its webhook
// outbox rows, the live streams and the rollups.
func (l *evLog) written(tx *sql.Tx, e store.Event, acc *accepted) error {
	var err error
	if err := l.subs.outbox(tx, e); err != nil {
		return err
	}
	l.evs = append(l.evs, e)
	c, ok := store.CountEvent(e.Type, acc != nil)
	if !ok {
		return nil
	}
	day := e.At.UTC().Unix() / 86400
	dk := dailyKey{e.TenantID, day, e.Domain, e.Destination}
	if p := l.daily[dk]; p != nil {
		p.Add(c)
	} else {
		cc := c
		l.daily[dk] = &cc
	}
	var tags []string
	if acc != nil {
		tags = acc.tags
	} else if e.MessageID != "" {
		if tags, err = l.messageTags(tx, e.MessageID); err != nil {
			return err
		}
	}
	for _, t := range tags {
		tk := tagKey{e.TenantID, day, t}
		if p := l.tags[tk]; p != nil {
			p.Add(c)
		} else {
			cc := c
			l.tags[tk] = &cc
		}
	}
	return nil
}

func (l *evLog) messageTags(tx *sql.Tx, id string) ([]string, error) {
	if t, ok := l.msgTags[id]; ok {
		return t, nil
	}
	var raw string
	err := tx.Stmt(l.selTags).QueryRow(id).Scan(&raw)
	if err != nil && err != sql.ErrNoRows {
		return nil, fmt.Errorf("tags of message %s: %w", id, err)
	}
	var tags []string
	if raw != "" {
		json.Unmarshal([]byte(raw), &tags)
	}
	l.msgTags[id] = tags
	return tags, nil
}

// flush upserts the transaction's rollup increments, one per key.
func (l *evLog) flush(tx *sql.Tx) error {
	if len(l.daily) > 0 {
		up := tx.Stmt(l.upDaily)
		for k, c := range l.daily {
			if _, err := up.Exec(append([]any{k.tenant, k.day, k.domain, k.dest}, counterVals(c)...)...); err != nil {
				return fmt.Errorf("update report rollups: %w", err)
			}
		}
	}
	if len(l.tags) > 0 {
		up := tx.Stmt(l.upTag)
		for k, c := range l.tags {
			if _, err := up.Exec(append([]any{k.tenant, k.day, k.tag}, counterVals(c)...)...); err != nil {
				return fmt.Errorf("update tag rollups: %w", err)
			}
		}
	}
	return nil
}

// published hands the committed events to the sink.
func (l *evLog) published() {
	if fn := l.sink.Load(); fn != nil && len(l.evs) > 0 {
		l.handedOff = true
		(*fn)(l.evs)
	}
}

func recipientDomain(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return strings.ToLower(addr[i+1:])
	}
	return ""
}

// SetEventSink implements store.EventLog.
func (s *Store) SetEventSink(fn func([]store.Event)) {
	if fn == nil {
		s.st.ev.sink.Store(nil)
		return
	}
	s.st.ev.sink.Store(&fn)
}

// eventsByType (a migration) indexes events by type alone, for queries of
// one type across tenants: at start the abuse guard reads every
// alert_fired and alert_resolved event, which without it was a scan of
// the whole table (minutes before the server listened, with 50,000,000
// events). Cheap to keep up: each type's entries are appended at the end
// of its range (a handful of hot pages), unlike the recipient's.
const eventsByType = `CREATE INDEX events_type ON events(type)`

// eventIndex picks the index a query of f walks. Every index on events
// ends in the rowid (id), so a walk along one equality comes out in ID
// order: a page is a short range scan, newest or oldest first, never a
// sort of everything that matches. Left to itself (no statistics) the
// planner would take the tenant's index for "tenant and anything" and
// sort. Preferred: the most selective equality there is. A recipient
// (without a message) is the exception: see recipientCond.
func eventIndex(f store.EventFilter) string {
	switch {
	case f.MessageID != "":
		return " INDEXED BY events_message"
	case f.Recipient != "":
		return "" // two indexes (recipientCond): none is forced
	case f.Domain != "":
		return "" // never here: byDomain (the late index)
	case f.TenantID != "" && f.Type != "":
		return " INDEXED BY events_tenant_type"
	case f.TenantID != "" && f.Tag == "":
		return " INDEXED BY events_tenant"
	case f.Type != "":
		return " INDEXED BY events_type"
	}
	return " NOT INDEXED" // the rowid itself, in ID order
}

// recipientCond finds a recipient's events without an index of events on
// the address (rcptkey.go): those of a delivery through the recipient's
// deliveries (the late index deliveries_by_rcpt, lateindex.go; then
// events_delivery), the few without one
// by their own rcpt_key (events_rcpt holds only those). The exact address
// confirms both. The matches come from many ranges, so a page sorts the
// recipient's matching events (one address's mail, not a tenant's log).
var recipientCond = `(delivery_id IN (SELECT id FROM deliveries WHERE ` + lateRcptCond("") + ` AND recipient = ?) OR rcpt_key = ?) AND recipient = ?`

// eventWhere builds the WHERE clause for f ("" when nothing filters),
// with the index it is to use in front.
func eventWhere(f store.EventFilter) (string, []any) {
	conds, args := eventConds(f)
	if len(conds) == 0 {
		return "", nil
	}
	return eventIndex(f) + " WHERE " + strings.Join(conds, " AND "), args
}

// eventConds is eventWhere's conditions and their arguments.
func eventConds(f store.EventFilter) ([]string, []any) {
	var conds []string
	var args []any
	add := func(c string, v ...any) { conds = append(conds, c); args = append(args, v...) }
	// A search by recipient (and no message) must not be walked along
	// another index's equality: "+col" keeps a term out of index choice.
	col := func(c string) string { return c }
	if f.MessageID == "" && f.Recipient != "" {
		col = func(c string) string { return "+" + c }
	}
	if f.TenantID != "" {
		add(col("tenant_id")+" = ?", f.TenantID)
	}
	if f.MessageID != "" {
		add("message_id = ?", f.MessageID)
	}
	if f.Recipient != "" {
		if f.MessageID != "" {
			add("recipient = ?", f.Recipient) // a message's few events
		} else {
			k := rcptKey(f.Recipient)
			add(recipientCond, k, k, f.Recipient, k, f.Recipient)
		}
	}
	if f.Type != "" {
		add(col("type")+" = ?", f.Type)
	}
	if f.Domain != "" {
		add(col("domain")+" = ?", strings.ToLower(f.Domain))
	}
	if f.Destination != "" {
		add("destination = ?", f.Destination)
	}
	if f.Tag != "" {
		b, _ := json.Marshal(f.Tag)
		sub := col("message_id") + ` IN (SELECT id FROM messages WHERE tags LIKE ? ESCAPE '\'`
		targs := []any{"%" + escapeLike(string(b)) + "%"}
		if f.TenantID != "" {
			sub += " AND tenant_id = ?"
			targs = append(targs, f.TenantID)
		}
		add(sub+")", targs...)
	}
	if !f.Since.IsZero() {
		add("at >= ?", ms(f.Since))
	}
	if !f.Until.IsZero() {
		add("at < ?", ms(f.Until))
	}
	if f.AfterID > 0 {
		add("id > ?", f.AfterID)
	}
	if f.BeforeID > 0 {
		add("id < ?", f.BeforeID)
	}
	return conds, args
}

// byDomain reports whether f finds its events through the late index of
// domains: a domain and neither a message nor a recipient (whose few
// events are found first and filtered by domain).
func byDomain(f store.EventFilter) bool {
	return f.Domain != "" && f.MessageID == "" && f.Recipient == ""
}

// eventSelect is the SELECT of cols from the events f matches, without
// ORDER BY. By domain (byDomain) it is two SELECTs in one, a walk along
// each level of the late index of domains in ID order (lateindex.go),
// joined to events by rowid: each comes out in ID order, so an ORDER BY
// id over the compound merges the two and stops at its LIMIT, as a walk
// of one index did.
func eventSelect(cols string, f store.EventFilter) (string, []any) {
	if !byDomain(f) {
		where, args := eventWhere(f)
		return "SELECT " + cols + " FROM events" + where, args
	}
	conds, args := eventConds(f)
	all := strings.Join(conds, " AND ")
	// The walk's own bounds on eid, so that a page starts where it
	// starts instead of skipping rows joined for nothing.
	bounds := ""
	bargs := []any{strings.ToLower(f.Domain)}
	if f.AfterID > 0 {
		bounds += " AND eid > ?"
		bargs = append(bargs, f.AfterID)
	}
	if f.BeforeID > 0 {
		bounds += " AND eid < ?"
		bargs = append(bargs, f.BeforeID)
	}
	// The walk's order is eid's: given as the id column, the merge knows
	// each part comes out sorted.
	if rest, ok := strings.CutPrefix(cols, "id"); ok && (rest == "" || rest[0] == ',') {
		cols = "eid AS id" + rest
	}
	arm := func(table string) string {
		return "SELECT " + cols + " FROM " + table + " CROSS JOIN events ON id = eid WHERE edomain = ?" + bounds + " AND " + all
	}
	var out []any
	for range 2 {
		out = append(append(out, bargs...), args...)
	}
	return arm("events_by_domain_recent") + " UNION ALL " + arm("events_by_domain"), out
}

// CountEvents implements store.EventLog.
func (s *Store) CountEvents(ctx context.Context, f store.EventFilter, max int) (int, error) {
	f.AfterID, f.BeforeID = 0, 0
	q, args := eventSelect("1", f)
	var n int
	err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM (`+q+fmt.Sprintf(" LIMIT %d)", max), args...).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count events: %w", err)
	}
	return n, nil
}

// Events implements store.Store.
func (s *Store) Events(ctx context.Context, f store.EventFilter) ([]store.Event, error) {
	q, args := eventSelect(`id, at, type, tenant_id, message_id, delivery_id, recipient, attempt, mx, code, enhanced, text, detail,
		domain, destination`, f)
	if f.Desc {
		q += " ORDER BY id DESC"
	} else {
		q += " ORDER BY id"
	}
	if f.Limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	defer rows.Close()
	var out []store.Event
	for rows.Next() {
		var e store.Event
		var at int64
		var r smtpproto.Reply
		if err := rows.Scan(&e.ID, &at, &e.Type, &e.TenantID, &e.MessageID, &e.DeliveryID, &e.Recipient, &e.Attempt,
			&e.MX, &r.Code, &r.Enhanced, &r.Text, &e.Detail, &e.Domain, &e.Destination); err != nil {
			return nil, err
		}
		e.At, e.Reply = fromMS(at), r
		out = append(out, e)
	}
	return out, rows.Err()
}

func escapeLike(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return r.Replace(s)
}

// PruneEvents implements store.EventLog. It looks only at the oldest
// 4*limit rows (by ID, which follows time give or take events written
// with an earlier time), so it never scans the table. It is a background
// write (writeLow): its own transaction, when the writer is quiet.
//
// The delete touches each pruned event's entry in every index of events,
// old pages no cache holds: read from disk by the one writer, they made a
// write of 50 events hold it for tens of milliseconds, and acceptance
// waited behind it (docs/performance.md). So a reader first walks the
// same entries (prunePrefetch), and the writer finds them in the OS's
// page cache.
func (s *Store) PruneEvents(ctx context.Context, cutoff time.Time, limit int) (int, error) {
	// Only the pruner deletes events, so the ids the reader picks are the
	// ones to delete: the writer gets them as a list.
	rows, err := s.r.QueryContext(ctx, prunePrefetch+`(SELECT id FROM (SELECT id, at FROM events ORDER BY id LIMIT ?) WHERE at < ? LIMIT ?)`,
		4*limit, ms(cutoff), limit)
	if err != nil {
		return 0, fmt.Errorf("prune events: read ahead: %w", err)
	}
	var ids []any
	for rows.Next() {
		var id, entries int64
		if err := rows.Scan(&id, &entries); err != nil {
			rows.Close()
			return 0, fmt.Errorf("prune events: read ahead: %w", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Close(); err != nil {
		return 0, fmt.Errorf("prune events: read ahead: %w", err)
	}
	if len(ids) == 0 {
		return 0, nil
	}
	list := placeholders(len(ids))
	var n int64
	err = s.writeLow(ctx, func(tx *sql.Tx, _ *stmts) error {
		// The late index's entries of the pruned events go with them.
		for _, t := range []string{"events_by_domain", "events_by_domain_recent"} {
			if _, err := tx.Exec(`DELETE FROM `+t+` WHERE (edomain, eid) IN
				(SELECT domain, id FROM events WHERE id IN (`+list+`) AND domain != '')`, ids...); err != nil {
				return fmt.Errorf("prune events: %w", err)
			}
		}
		res, err := tx.Exec(`DELETE FROM events WHERE id IN (`+list+`)`, ids...)
		if err != nil {
			return fmt.Errorf("prune events: %w", err)
		}
		n, _ = res.RowsAffected()
		return nil
	})
	return int(n), err
}

// prunePrefetch reads, for the events whose ids follow it in
// parentheses, their rows and their entries in each index of events (a
// point search in each): each event's id and its count of entries.
const prunePrefetch = `SELECT e.id,
	(SELECT count(*) FROM events AS t INDEXED BY events_tenant WHERE t.tenant_id = e.tenant_id AND t.id = e.id) +
	(SELECT count(*) FROM events AS t INDEXED BY events_tenant_type WHERE t.tenant_id = e.tenant_id AND t.type = e.type AND t.id = e.id) +
	(SELECT count(*) FROM events AS t INDEXED BY events_type WHERE t.type = e.type AND t.id = e.id) +
	(SELECT count(*) FROM events AS t INDEXED BY events_message WHERE t.message_id = e.message_id AND t.id = e.id) +
	(SELECT count(*) FROM events AS t INDEXED BY events_delivery WHERE t.delivery_id = e.delivery_id AND t.id = e.id) +
	(SELECT count(*) FROM events AS t INDEXED BY events_rcpt WHERE t.rcpt_key = e.rcpt_key AND t.rcpt_key IS NOT NULL AND t.id = e.id) +
	(SELECT count(*) FROM events_by_domain AS d WHERE d.edomain = e.domain AND d.eid = e.id) +
	(SELECT count(*) FROM events_by_domain_recent AS d WHERE d.edomain = e.domain AND d.eid = e.id)
	FROM events AS e WHERE e.id IN `

// PruneBodies implements store.EventLog. It walks messages in rowid
// order (acceptance order) from after (a cursor the caller keeps; 0
// starts over) and returns where it stopped.
func (s *Store) PruneBodies(ctx context.Context, cutoff time.Time, after int64, limit int) (n int, next int64, done bool, err error) {
	keep := store.SQLList(append(append([]store.State(nil), store.PendingStates...), store.DeadLetter))
	err = s.writeLow(ctx, func(tx *sql.Tx, _ *stmts) error {
		n, next, done = 0, after, false
		rows, err := tx.Query(`SELECT rowid, created_at FROM messages WHERE rowid > ? ORDER BY rowid LIMIT ?`, after, limit)
		if err != nil {
			return fmt.Errorf("prune bodies: %w", err)
		}
		hi, seen := after, 0
		for rows.Next() {
			var id, created int64
			if err := rows.Scan(&id, &created); err != nil {
				rows.Close()
				return err
			}
			if created >= ms(cutoff) {
				done = true
				break
			}
			hi = id
			seen++
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if seen < limit {
			done = true
		}
		if hi == after {
			return nil
		}
		res, err := tx.Exec(`UPDATE messages SET body = x'', body_pruned_at = ? WHERE rowid > ? AND rowid <= ? AND body_pruned_at = 0
			AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.message_id = messages.id AND d.state IN (`+keep+`))`,
			time.Now().UnixMilli(), after, hi)
		if err != nil {
			return fmt.Errorf("prune bodies: %w", err)
		}
		m, _ := res.RowsAffected()
		n, next = int(m), hi
		return nil
	})
	return n, next, done, err
}
