package postgres

// TEMPORARY until pg-core is merged: the group-commit writer's interface
// (s.write, wtx) as pg-core declares it. Deleted at the merge.

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/posthorn/posthorn/internal/store"
)

type wtx struct {
	tx  pgx.Tx
	evs []store.Event
}

func (w *wtx) event(e store.Event) { w.evs = append(w.evs, e) }

func (s *Store) write(ctx context.Context, fn func(ctx context.Context, w *wtx) error) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		w := &wtx{tx: tx}
		if err := fn(ctx, w); err != nil {
			return err
		}
		for i := range w.evs {
			e := &w.evs[i]
			if err := tx.QueryRow(ctx, `INSERT INTO events (at, type, tenant_id, message_id, detail) VALUES ($1, $2, $3, $4, $5) RETURNING id`,
				unixMS(e.At), e.Type, e.TenantID, e.MessageID, e.Detail).Scan(&e.ID); err != nil {
				return err
			}
		}
		return s.queueWebhooks(ctx, tx, w.evs)
	})
}
