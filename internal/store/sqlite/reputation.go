package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/posthorn/posthorn/internal/store"
)

// reputationMigration records each attempt's source address and creates
// the DMARC aggregate report tables. A report is unique per reporting
// organisation and report ID, so a report sent twice is stored once.
const reputationMigration = `ALTER TABLE attempts ADD COLUMN source_ip TEXT NOT NULL DEFAULT '';
	CREATE TABLE dmarc_reports (
		id INTEGER PRIMARY KEY,
		org_name TEXT NOT NULL,
		email TEXT NOT NULL DEFAULT '',
		report_id TEXT NOT NULL,
		domain TEXT NOT NULL,
		policy TEXT NOT NULL DEFAULT '',
		begin_at INTEGER NOT NULL,
		end_at INTEGER NOT NULL,
		received_at INTEGER NOT NULL,
		UNIQUE (org_name, report_id)
	);
	CREATE TABLE dmarc_rows (
		report INTEGER NOT NULL REFERENCES dmarc_reports(id) ON DELETE CASCADE,
		header_from TEXT NOT NULL,
		source_ip TEXT NOT NULL,
		count INTEGER NOT NULL CHECK (count >= 0),
		disposition TEXT NOT NULL DEFAULT '',
		dkim TEXT NOT NULL DEFAULT '',
		spf TEXT NOT NULL DEFAULT '',
		envelope_from TEXT NOT NULL DEFAULT '',
		auth_results TEXT NOT NULL DEFAULT '',
		end_at INTEGER NOT NULL
	);
	CREATE INDEX dmarc_rows_domain ON dmarc_rows(header_from, end_at);`

// PutDMARCReport implements store.DMARC.
func (s *Store) PutDMARCReport(ctx context.Context, r *store.DMARCReport, rows []store.DMARCRow) (bool, error) {
	var dup bool
	err := s.write(ctx, func(tx *sql.Tx, _ *stmts) error {
		dup = false
		res, err := tx.Exec(`INSERT INTO dmarc_reports (org_name, email, report_id, domain, policy, begin_at, end_at, received_at)
			VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (org_name, report_id) DO NOTHING`,
			r.OrgName, r.Email, r.ReportID, r.Domain, r.Policy, ms(r.Begin), ms(r.End), ms(r.ReceivedAt))
		if err != nil {
			return fmt.Errorf("insert dmarc report: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			dup = true
			return nil
		}
		if r.ID, err = res.LastInsertId(); err != nil {
			return err
		}
		st, err := tx.Prepare(`INSERT INTO dmarc_rows (report, header_from, source_ip, count, disposition, dkim, spf,
			envelope_from, auth_results, end_at) VALUES (?,?,?,?,?,?,?,?,?,?)`)
		if err != nil {
			return err
		}
		defer st.Close()
		for _, w := range rows {
			if _, err := st.Exec(r.ID, w.HeaderFrom, w.SourceIP, w.Count, w.Disposition, w.DKIM, w.SPF, w.EnvFrom,
				w.AuthResults, ms(r.End)); err != nil {
				return fmt.Errorf("insert dmarc row: %w", err)
			}
		}
		return nil
	})
	return dup, err
}

// DMARCRows implements store.DMARC.
func (s *Store) DMARCRows(ctx context.Context, domain string, since time.Time) ([]store.DMARCRow, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT w.report, r.org_name, r.begin_at, r.end_at, w.source_ip, w.count, w.disposition,
		w.dkim, w.spf, w.header_from, w.envelope_from, w.auth_results
		FROM dmarc_rows w JOIN dmarc_reports r ON r.id = w.report
		WHERE w.header_from = ? AND w.end_at >= ? ORDER BY w.report, w.rowid`, domain, ms(since))
	if err != nil {
		return nil, fmt.Errorf("dmarc rows of %s: %w", domain, err)
	}
	defer rows.Close()
	var out []store.DMARCRow
	for rows.Next() {
		var w store.DMARCRow
		var begin, end int64
		if err := rows.Scan(&w.ReportID, &w.OrgName, &begin, &end, &w.SourceIP, &w.Count, &w.Disposition, &w.DKIM, &w.SPF,
			&w.HeaderFrom, &w.EnvFrom, &w.AuthResults); err != nil {
			return nil, err
		}
		w.Begin, w.End = fromMS(begin), fromMS(end)
		out = append(out, w)
	}
	return out, rows.Err()
}
