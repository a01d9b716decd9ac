package sqlite

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/posthorn/posthorn/internal/store"
)

// rollupTables (a migration) holds the report counters: rollup_daily per
// tenant x UTC day x recipient domain x destination, rollup_tags per
// tenant x day x tag (a message with two tags counts in both). The
// destination is the provider an attempt went to; acceptance events have
// none (the provider is learnt at the first connection), so a report by
// destination maps each domain to the destination its attempts used.
const rollupTables = `
	CREATE TABLE rollup_daily (
		tenant_id TEXT NOT NULL, day INTEGER NOT NULL, domain TEXT NOT NULL, destination TEXT NOT NULL,
		accepted INTEGER NOT NULL DEFAULT 0, delivered INTEGER NOT NULL DEFAULT 0, deferred INTEGER NOT NULL DEFAULT 0,
		bounced INTEGER NOT NULL DEFAULT 0, soft_bounced INTEGER NOT NULL DEFAULT 0, complaints INTEGER NOT NULL DEFAULT 0,
		unsubscribed INTEGER NOT NULL DEFAULT 0, suppressed INTEGER NOT NULL DEFAULT 0, dead_lettered INTEGER NOT NULL DEFAULT 0,
		PRIMARY KEY (tenant_id, day, domain, destination)
	) WITHOUT ROWID;
	CREATE INDEX rollup_daily_day ON rollup_daily(day);
	CREATE TABLE rollup_tags (
		tenant_id TEXT NOT NULL, day INTEGER NOT NULL, tag TEXT NOT NULL,
		accepted INTEGER NOT NULL DEFAULT 0, delivered INTEGER NOT NULL DEFAULT 0, deferred INTEGER NOT NULL DEFAULT 0,
		bounced INTEGER NOT NULL DEFAULT 0, soft_bounced INTEGER NOT NULL DEFAULT 0, complaints INTEGER NOT NULL DEFAULT 0,
		unsubscribed INTEGER NOT NULL DEFAULT 0, suppressed INTEGER NOT NULL DEFAULT 0, dead_lettered INTEGER NOT NULL DEFAULT 0,
		PRIMARY KEY (tenant_id, day, tag)
	) WITHOUT ROWID;
	CREATE INDEX rollup_tags_day ON rollup_tags(day);`

// eventsColumns (the same migration) gives events the columns the
// activity log filters on, and messages the mark of a pruned body.
const eventsColumns = `
	ALTER TABLE events ADD COLUMN domain TEXT NOT NULL DEFAULT '';
	ALTER TABLE events ADD COLUMN destination TEXT NOT NULL DEFAULT '';
	UPDATE events SET domain = lower(substr(recipient, instr(recipient, '@') + 1)) WHERE instr(recipient, '@') > 0;
	CREATE INDEX events_recipient ON events(recipient);
	CREATE INDEX events_domain ON events(domain);
	CREATE INDEX events_tenant ON events(tenant_id);
	ALTER TABLE messages ADD COLUMN body_pruned_at INTEGER NOT NULL DEFAULT 0;`

// eventLogMigration adds what the activity log, its retention and the
// reports need. Reports count from this migration on (older events are
// not rolled up).
var eventLogMigration = sqlMigration(eventsColumns + rollupTables)

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
	sums := ""
	for i, c := range []string{"accepted", "delivered", "deferred", "bounced", "soft_bounced", "complaints", "unsubscribed", "suppressed", "dead_lettered"} {
		if i > 0 {
			sums += ", "
		}
		sums += "sum(" + c + ")"
	}
	where := "day >= ? AND day <= ?"
	args := []any{day(q.From), day(q.To)}
	if q.TenantID != "" {
		where += " AND tenant_id = ?"
		args = append(args, q.TenantID)
	}
	rows, err := s.r.QueryContext(ctx, "SELECT "+key+", "+sums+" FROM "+table+" WHERE "+where+" GROUP BY "+key, args...)
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
				return nil, err
			}
			out = append(out, store.ReportRow{Key: time.Unix(d*86400, 0).UTC().Format(time.DateOnly), Counters: c})
		case store.GroupByDestination:
			var x store.DomainDest
			if err := rows.Scan(append([]any{&x.Domain, &x.Dest}, cs...)...); err != nil {
				return nil, err
			}
			x.Counters = c
			dd = append(dd, x)
		default:
			var k string
			if err := rows.Scan(append([]any{&k}, cs...)...); err != nil {
				return nil, err
			}
			out = append(out, store.ReportRow{Key: k, Counters: c})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if q.GroupBy == store.GroupByDestination {
		out = store.ByDestination(dd)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}
