// Package postgres is posthorn's PostgreSQL store: the same store.Store as
// the embedded SQLite store, for deployments where several posthorn nodes
// share one queue (DESIGN.md section 8).
//
// Schema migrations run on Open under a session advisory lock, so several
// nodes starting at once migrate the database exactly once.
//
// Webhooks (webhooks.go): subscriptions are read from the database in the
// event writer's transaction, never cached per node; WebhookSignal is
// poked through LISTEN/NOTIFY, so every node's sender hears of any node's
// commit; each node's DueWebhooks claims the rows it hands out, so the
// senders of several nodes do not send one webhook at the same time.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/posthorn/posthorn/internal/store"
)

// Store implements store.Store on PostgreSQL.
type Store struct {
	hooks   webhookListener // WebhookSignal's listener (webhooks.go)
	settled horizons        // how far the observer may read (observe.go)

	pool *pgxpool.Pool
	log  *slog.Logger
	node string // this node's name in leases and heartbeats
	w    writer // the group-commit writer (writer.go)
}

var _ store.Store = (*Store)(nil)

// Option changes how Open sets up the store.
type Option func(*Store)

// WithLogger sets where the store reports background problems.
func WithLogger(l *slog.Logger) Option { return func(s *Store) { s.log = l } }

// WithNode names this node (leases, heartbeats); the default is "node".
func WithNode(name string) Option { return func(s *Store) { s.node = name } }

// Open connects to the database at url (postgres://user@host/db) and
// migrates it.
func Open(ctx context.Context, url string, opts ...Option) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres store: parse %q: %w", redact(url), err)
	}
	s := &Store{log: slog.New(slog.DiscardHandler), node: "node"}
	for _, o := range opts {
		o(s)
	}
	// Every session carries the node's name: rows it inserts into
	// deliveries belong to this node (the owner column's default; see
	// schema_cluster.go), so accepted mail needs no claim round trip.
	cfg.ConnConfig.RuntimeParams[nodeSetting] = s.node
	// Every write posthorn acknowledges must be durable, whatever the
	// database's default (the writer's own sessions check it too).
	cfg.ConnConfig.RuntimeParams["synchronous_commit"] = "on"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres store: connect: %w", err)
	}
	s.pool = pool
	if err := Migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	if err := s.startWriter(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// Close stops the writer after the requests already queued and closes
// the connection pool.
func (s *Store) Close() error {
	s.stopWebhookListener()
	err := s.stopWriter()
	s.pool.Close()
	return err
}

// Pool is the store's connection pool (for tests and tools).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

var errNotImplemented = errors.New("postgres store: not implemented yet")

// redact hides a password in a connection URL for error messages.
func redact(url string) string {
	cfg, err := pgx.ParseConfig(url)
	if err != nil || cfg.Password == "" {
		return url
	}
	return "postgres://" + cfg.User + ":***@" + cfg.Host + "/" + cfg.Database
}
