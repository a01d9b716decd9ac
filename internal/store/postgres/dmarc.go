package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/posthorn/posthorn/internal/store"
)

// PutDMARCReport implements store.DMARC: a report already stored (same
// org and report ID) is a duplicate, even when two nodes store it at once
// (ON CONFLICT DO NOTHING waits for the other insert).
func (s *Store) PutDMARCReport(ctx context.Context, r *store.DMARCReport, rows []store.DMARCRow) (bool, error) {
	var dup bool
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var id int64
		err := tx.QueryRow(ctx, `INSERT INTO dmarc_reports (org_name, email, report_id, domain, policy, begin_at, end_at, received_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (org_name, report_id) DO NOTHING RETURNING id`,
			r.OrgName, r.Email, r.ReportID, r.Domain, r.Policy, ms(r.Begin), ms(r.End), ms(r.ReceivedAt)).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			dup = true
			return nil
		}
		if err != nil {
			return fmt.Errorf("insert dmarc report: %w", err)
		}
		dup, r.ID = false, id
		if len(rows) == 0 {
			return nil
		}
		_, err = tx.CopyFrom(ctx, pgx.Identifier{"dmarc_rows"},
			[]string{"report", "header_from", "source_ip", "count", "disposition", "dkim", "spf", "envelope_from", "auth_results", "end_at"},
			pgx.CopyFromSlice(len(rows), func(i int) ([]any, error) {
				w := rows[i]
				return []any{id, w.HeaderFrom, w.SourceIP, w.Count, w.Disposition, w.DKIM, w.SPF, w.EnvFrom, w.AuthResults, ms(r.End)}, nil
			}))
		if err != nil {
			return fmt.Errorf("insert dmarc rows: %w", err)
		}
		return nil
	})
	return dup, err
}

// DMARCRows implements store.DMARC.
func (s *Store) DMARCRows(ctx context.Context, domain string, since time.Time) ([]store.DMARCRow, error) {
	rows, _ := s.pool.Query(ctx, `SELECT w.report, r.org_name, r.begin_at, r.end_at, w.source_ip, w.count, w.disposition,
		w.dkim, w.spf, w.header_from, w.envelope_from, w.auth_results
		FROM dmarc_rows w JOIN dmarc_reports r ON r.id = w.report
		WHERE w.header_from = $1 AND w.end_at >= $2 ORDER BY w.report, w.id`, domain, ms(since))
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.DMARCRow, error) {
		var w store.DMARCRow
		var begin, end int64
		err := r.Scan(&w.ReportID, &w.OrgName, &begin, &end, &w.SourceIP, &w.Count, &w.Disposition, &w.DKIM, &w.SPF,
			&w.HeaderFrom, &w.EnvFrom, &w.AuthResults)
		w.Begin, w.End = fromMS(begin), fromMS(end)
		return w, err
	})
	if err != nil {
		return nil, fmt.Errorf("dmarc rows of %s: %w", domain, err)
	}
	return out, nil
}
