package sqlite

import (
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// Deliveries are found by recipient (rcpt_key) and by domain, and events
// by domain, through late indexes: WITHOUT ROWID tables of (key, id) in
// two levels. A new row's entry goes to the small "recent" table of its
// index in the same transaction as the row; the writer moves the recent
// entries into the large table in one sorted merge once there are
// lateMergeRows of them (or when it has been idle for lateIdle).
//
// Why: a B-tree keyed by something random (a recipient's hash, one of
// thousands of domains) takes each new entry on its own leaf page, so a
// commit of a few thousand recipients wrote a 4 KiB page per recipient
// per index to the WAL (and again at checkpoint), and the cost grew with
// the table: measured with BenchmarkInsertSpread at 1,000,000 recipients,
// the three such indexes (deliveries_rcpt, deliveries_domain,
// events_domain) were half of the store's CPU and three quarters of the
// bytes it wrote a recipient. The recent table stays small enough to stay
// in the cache, and a merge touches each leaf page of the large one once
// for many entries.
//
// A lookup reads both levels (a UNION ALL of two key ranges). An entry
// is in exactly one of them at any moment: the merge moves them in one
// transaction, so a reader's snapshot sees each entry once.
const (
	// lateMergeRows is how many unmerged deliveries make the writer merge
	// at once (between two batches of requests).
	lateMergeRows = 50_000
	// lateIdle is how long the writer waits with nothing to do before it
	// merges whatever is left, so that a quiet server's lookups scan no
	// tail at all.
	lateIdle = 2 * time.Second
	// lateDirectBelow: while a table's ids are below this, its entries go
	// straight into the large tables. Those are small then and in the
	// cache, where one insert costs less than the recent table's three
	// (insert, merge, delete): measured at 10 sessions × 10 recipients,
	// a store of a few thousand messages was ~10% slower through the
	// recent tables than with plain indexes.
	lateDirectBelow = 100_000
)

// lateIndexTables (a migration) replaces the indexes deliveries_rcpt,
// deliveries_domain and events_domain by late indexes, filled from the
// rows there are. The events' tables name their columns edomain and eid
// so that a join with events leaves "domain" and "id" unambiguous.
const lateIndexTables = `
	CREATE TABLE deliveries_by_rcpt (rcpt_key INTEGER NOT NULL, id INTEGER NOT NULL, PRIMARY KEY (rcpt_key, id)) WITHOUT ROWID;
	CREATE TABLE deliveries_by_rcpt_recent (rcpt_key INTEGER NOT NULL, id INTEGER NOT NULL, PRIMARY KEY (rcpt_key, id)) WITHOUT ROWID;
	CREATE TABLE deliveries_by_domain (domain TEXT NOT NULL, id INTEGER NOT NULL, PRIMARY KEY (domain, id)) WITHOUT ROWID;
	CREATE TABLE deliveries_by_domain_recent (domain TEXT NOT NULL, id INTEGER NOT NULL, PRIMARY KEY (domain, id)) WITHOUT ROWID;
	CREATE TABLE events_by_domain (edomain TEXT NOT NULL, eid INTEGER NOT NULL, PRIMARY KEY (edomain, eid)) WITHOUT ROWID;
	CREATE TABLE events_by_domain_recent (edomain TEXT NOT NULL, eid INTEGER NOT NULL, PRIMARY KEY (edomain, eid)) WITHOUT ROWID;
	INSERT INTO deliveries_by_rcpt (rcpt_key, id) SELECT rcpt_key, id FROM deliveries WHERE rcpt_key IS NOT NULL ORDER BY rcpt_key, id;
	INSERT INTO deliveries_by_domain (domain, id) SELECT domain, id FROM deliveries ORDER BY domain, id;
	INSERT INTO events_by_domain (edomain, eid) SELECT domain, id FROM events WHERE domain != '' ORDER BY domain, id;
	DROP INDEX deliveries_rcpt;
	DROP INDEX deliveries_domain;
	DROP INDEX events_domain;`

// Conditions on deliveries (alias d, or none: col is "d." or "") that
// find them by recipient key or by domain: the ids from both levels, one
// list of rowids (SQLite walks it in order, so a query ordered by id
// needs no sort); each takes the key twice.
func lateRcptCond(col string) string {
	return col + "id IN (SELECT id FROM deliveries_by_rcpt WHERE rcpt_key = ? UNION ALL SELECT id FROM deliveries_by_rcpt_recent WHERE rcpt_key = ?)"
}

func lateDomainCond(col string) string {
	return col + "id IN (SELECT id FROM deliveries_by_domain WHERE domain = ? UNION ALL SELECT id FROM deliveries_by_domain_recent WHERE domain = ?)"
}

// The late indexes: each large table and its recent one.
var lateTables = [...]string{"deliveries_by_rcpt", "deliveries_by_domain", "events_by_domain"}

// recentRange is the rows of one table a transaction inserted: their ids
// are consecutive (one writer; a failed transaction is rolled back whole),
// so lo..hi covers them all. Their entries go to the recent tables once,
// just before the commit (flushRecent): one statement for each late index
// a transaction instead of one for each insert.
type recentRange struct{ lo, hi int64 }

func (r *recentRange) add(lo, hi int64) {
	if r.lo == 0 || lo < r.lo {
		r.lo = lo
	}
	r.hi = max(r.hi, hi)
}

// lateFills add the entries of a transaction's rows (ids lo..hi of
// table base: 0 deliveries, 1 events) to a late index: into its recent
// table, and as [1] straight into the large one (flushRecent says which).
// Prepared once (prepareLate).
var lateFills = [...]struct {
	base int
	q    string
}{
	{0, `INSERT INTO deliveries_by_rcpt_recent (rcpt_key, id) SELECT rcpt_key, id FROM deliveries
		WHERE id BETWEEN ? AND ? AND rcpt_key IS NOT NULL ORDER BY rcpt_key, id`},
	{0, `INSERT INTO deliveries_by_domain_recent (domain, id) SELECT domain, id FROM deliveries
		WHERE id BETWEEN ? AND ? ORDER BY domain, id`},
	{1, `INSERT INTO events_by_domain_recent (edomain, eid) SELECT domain, id FROM events
		WHERE id BETWEEN ? AND ? AND domain != '' ORDER BY domain, id`},
}

var lateBases = [...]string{"deliveries", "events"}

func prepareLate(db *sql.DB) (out [len(lateFills)][2]*sql.Stmt, err error) {
	for i, f := range lateFills {
		for j, q := range []string{f.q, strings.Replace(f.q, "_recent", "", 1)} {
			if out[i][j], err = db.Prepare(q); err != nil {
				return out, fmt.Errorf("prepare late index of %s: %w", lateBases[f.base], err)
			}
		}
	}
	return out, nil
}

// flushRecent adds the entries of the rows the transaction inserted to
// the recent tables, and counts them; while the rows' ids are below
// direct, to the large tables (writer only).
func (st *stmts) flushRecent(tx *sql.Tx, direct int64) error {
	bases := [len(lateBases)]struct {
		r *recentRange
		n *int64
	}{{&st.recentDel, &st.recentDeliveries}, {&st.ev.recentEv, &st.ev.recent}}
	for i, f := range lateFills {
		r := bases[f.base].r
		if r.hi == 0 {
			continue
		}
		toLarge := 0
		if r.hi < direct {
			toLarge = 1
		}
		if _, err := tx.Stmt(st.lateFill[i][toLarge]).Exec(r.lo, r.hi); err != nil {
			return fmt.Errorf("late index of %s: %w", lateBases[f.base], err)
		}
	}
	for _, b := range bases {
		if b.r.hi != 0 && b.r.hi >= direct {
			*b.n += b.r.hi - b.r.lo + 1
		}
	}
	return nil
}

// lateState is the writer's count of recent entries (writer only).
type lateState struct {
	idle *time.Timer // idleAfter after the writer's last work

	rows      int64         // lateMergeRows (tests lower it)
	idleAfter time.Duration // lateIdle (tests change it)
	direct    int64         // lateDirectBelow (tests set 0)
}

// withLate sets the merge size and the idle wait, and sends every entry
// through the recent tables (tests).
func withLate(rows int64, idle time.Duration) Option {
	return func(s *Store) { s.late.rows, s.late.idleAfter, s.late.direct = rows, idle, 0 }
}

// loadLate counts the recent entries at open.
func (s *Store) loadLate() error {
	for _, t := range lateTables {
		var n int64
		if err := s.w.QueryRow(`SELECT count(*) FROM ` + t + `_recent`).Scan(&n); err != nil {
			return fmt.Errorf("late index %s: %w", t, err)
		}
		if t == "events_by_domain" {
			s.st.ev.recent = n
		} else {
			s.st.recentDeliveries = max(s.st.recentDeliveries, n)
		}
	}
	return nil
}

// lateBehind is about how many entries the fullest recent table holds
// (writer only): counted as rows are written, it may count a rolled-back
// transaction's too, which only brings a merge forward.
func (s *Store) lateBehind() int64 { return max(s.st.recentDeliveries, s.st.ev.recent) }

// mergeLate moves every recent entry into its large table, in one
// transaction of its own (writer only).
func (s *Store) mergeLate() {
	req := &writeReq{done: make(chan error, 1), fn: func(tx *sql.Tx, _ *stmts) error {
		for _, t := range lateTables {
			// The recent table is read in key order (its primary key):
			// the inserts walk the large one from left to right.
			if _, err := tx.Exec(`INSERT INTO ` + t + ` SELECT * FROM ` + t + `_recent`); err != nil {
				return fmt.Errorf("merge late index %s: %w", t, err)
			}
			if _, err := tx.Exec(`DELETE FROM ` + t + `_recent`); err != nil {
				return fmt.Errorf("merge late index %s: %w", t, err)
			}
		}
		return nil
	}}
	s.commit([]*writeReq{req})
	if err := <-req.done; err != nil {
		s.log.Error("late index merge failed; the recent entries stay where lookups find them", "err", err)
		return
	}
	s.st.recentDeliveries, s.st.ev.recent = 0, 0
}
