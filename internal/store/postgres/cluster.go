package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/posthorn/posthorn/internal/store"
)

// Cluster is this node's membership of a cluster of posthorn nodes that
// share one PostgreSQL store (DESIGN.md section 8). It implements the
// scheduler's queue.Cluster:
//
//   - Each pending delivery has an owner: the node whose scheduler holds
//     it. The node that accepts a message owns its deliveries from the
//     insert on; other work (a dead node's, or work released at a
//     restart) is unowned and taken by Claim, in batches, with FOR UPDATE
//     SKIP LOCKED, so two nodes never claim the same delivery.
//   - A node's leases last as long as its heartbeat: every Heartbeat it
//     updates its row in nodes, and a node not heard from for DeadAfter
//     (or stopped) is dead. Every live node reaps dead nodes: it returns
//     their deliveries stuck in sending to the queue once those leases
//     ended (RescueLeases, a recovered event each) and sets the owner of
//     their pending deliveries to NULL. No per-row lease renewal: one
//     heartbeat row per node covers everything it holds.
//   - Work that becomes unowned is announced on the posthorn_work channel
//     (NOTIFY); idle nodes LISTEN and claim at once. Wake also fires on a
//     slow fallback poll in the scheduler.
//   - A destination's connection budget is shared through session
//     advisory locks, one per connection slot (posthorn_take_slot), taken
//     on one dedicated connection per node: a node that dies loses its
//     session and so its slots, at once.
//   - A rate_limited cut is published in destination_throttles; every
//     node reads the others' cuts (Throttles) and applies them.
type Cluster struct {
	st   *Store
	node string
	log  *slog.Logger
	cfg  ClusterConfig
	wake chan struct{}

	lockMu   sync.Mutex
	lockConn *pgx.Conn               // holds this node's connection slots
	held     map[int32]map[int32]int // slot key -> slot -> 1

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// ClusterConfig tunes membership.
type ClusterConfig struct {
	Heartbeat time.Duration // how often a node says it is alive (default 2s)
	DeadAfter time.Duration // silence after which it is dead (default 10s)
	Version   string        // shown in posthorn nodes
}

// workChannel is the NOTIFY channel announcing unowned work.
const workChannel = "posthorn_work"

// dbNow is the database's clock in Unix milliseconds: heartbeats are
// written and judged by one clock, whatever the nodes' clocks say.
const dbNow = `(extract(epoch from clock_timestamp())*1000)::bigint`

// NewCluster returns st's node's membership; Join starts it.
func NewCluster(st *Store, cfg ClusterConfig) *Cluster {
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 2 * time.Second
	}
	if cfg.DeadAfter <= 0 {
		cfg.DeadAfter = 5 * cfg.Heartbeat
	}
	return &Cluster{st: st, node: st.node, log: st.log, cfg: cfg, wake: make(chan struct{}, 1), held: map[int32]map[int32]int{}}
}

// Name is this node's name.
func (c *Cluster) Name() string { return c.node }

// Wake is signalled when unowned work may be waiting (a NOTIFY).
func (c *Cluster) Wake() <-chan struct{} { return c.wake }

func (c *Cluster) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

var pendingStates = `('scheduled','queued','deferred')`

// Join registers this node (refusing a name a live node of another
// process uses), returns what an earlier run of it held to the cluster,
// and starts the heartbeat, the reaper and the listener.
func (c *Cluster) Join(ctx context.Context) error {
	host, _ := os.Hostname()
	deadline := time.Now().Add(c.cfg.DeadAfter + c.cfg.Heartbeat)
	for {
		var oldHost string
		var oldPID int
		var alive bool
		err := c.st.pool.QueryRow(ctx, `SELECT host, pid, stopped_at = 0 AND heartbeat_at >= `+dbNow+` - $2 FROM nodes WHERE name = $1`,
			c.node, c.cfg.DeadAfter.Milliseconds()).Scan(&oldHost, &oldPID, &alive)
		if errors.Is(err, pgx.ErrNoRows) || (err == nil && (!alive || (oldHost == host && !processAlive(oldPID)))) {
			break
		}
		if err != nil {
			return fmt.Errorf("cluster: join: %w", err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cluster: node name %q is in use by a live node (pid %d on %s); give each node its own node_name", c.node, oldPID, oldHost)
		}
		select {
		case <-time.After(c.cfg.Heartbeat):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	_, err := c.st.pool.Exec(ctx, `INSERT INTO nodes (name, host, pid, version, started_at, heartbeat_at) VALUES ($1, $2, $3, $4, `+dbNow+`, `+dbNow+`)
		ON CONFLICT (name) DO UPDATE SET host = $2, pid = $3, version = $4, started_at = `+dbNow+`, heartbeat_at = `+dbNow+`, stopped_at = 0`,
		c.node, host, os.Getpid(), c.cfg.Version)
	if err != nil {
		return fmt.Errorf("cluster: join: %w", err)
	}
	// What an earlier run held and had not started sending goes back to
	// the cluster (this run claims its share again); what it was sending
	// stays leased until the lease ends, then OwnStuck finds it.
	if _, err := c.release(ctx); err != nil {
		return fmt.Errorf("cluster: join: %w", err)
	}
	lctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	c.wg.Add(2)
	go c.heartbeatLoop(lctx)
	go c.listenLoop(lctx)
	return nil
}

func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// release gives up this node's pending deliveries that are not being
// sent, and tells the other nodes.
func (c *Cluster) release(ctx context.Context) (int64, error) {
	tag, err := c.st.pool.Exec(ctx, `UPDATE deliveries SET owner = NULL WHERE owner = $1 AND state IN `+pendingStates, c.node)
	if err != nil {
		return 0, err
	}
	if tag.RowsAffected() > 0 {
		c.notify(ctx)
	}
	return tag.RowsAffected(), nil
}

func (c *Cluster) notify(ctx context.Context) {
	if _, err := c.st.pool.Exec(ctx, `SELECT pg_notify($1, '')`, workChannel); err != nil {
		c.log.Error("cluster: notify", "err", err)
	}
}

// Leave ends this node's membership after its scheduler stopped: its
// pending deliveries go back to the cluster, its row says it stopped and
// its connection slots are released.
func (c *Cluster) Leave(ctx context.Context) error {
	if c.cancel != nil {
		c.cancel()
	}
	c.wg.Wait()
	c.lockMu.Lock()
	if c.lockConn != nil {
		c.lockConn.Close(ctx)
		c.lockConn = nil
		clear(c.held)
	}
	c.lockMu.Unlock()
	_, err := c.release(ctx)
	if err == nil {
		_, err = c.st.pool.Exec(ctx, `UPDATE nodes SET stopped_at = `+dbNow+` WHERE name = $1`, c.node)
	}
	if err != nil {
		return fmt.Errorf("cluster: leave: %w", err)
	}
	return nil
}

func (c *Cluster) heartbeatLoop(ctx context.Context) {
	defer c.wg.Done()
	t := time.NewTicker(c.cfg.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := c.st.pool.Exec(ctx, `UPDATE nodes SET heartbeat_at = `+dbNow+` WHERE name = $1`, c.node); err != nil && ctx.Err() == nil {
			c.log.Error("cluster: heartbeat", "err", err)
			continue
		}
		if err := c.reap(ctx, time.Now()); err != nil && ctx.Err() == nil {
			c.log.Error("cluster: take over dead nodes' deliveries", "err", err)
		}
	}
}

// reap returns dead nodes' work to the cluster: deliveries they were
// sending whose lease ended go back to the queue (as after a crash), and
// their pending deliveries lose their owner.
func (c *Cluster) reap(ctx context.Context, now time.Time) error {
	rows, err := c.st.pool.Query(ctx, `SELECT name FROM nodes WHERE name <> $1 AND (stopped_at > 0 OR heartbeat_at < `+dbNow+` - $2)`,
		c.node, c.cfg.DeadAfter.Milliseconds())
	if err != nil {
		return err
	}
	dead, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(dead) == 0 {
		return err
	}
	rows, err = c.st.pool.Query(ctx, `SELECT id FROM deliveries WHERE owner = ANY($1) AND state = 'sending' AND next_attempt_at <= $2 LIMIT 10000`,
		dead, now.UnixMilli())
	if err != nil {
		return err
	}
	stuck, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return err
	}
	if len(stuck) > 0 {
		back, err := c.st.RescueLeases(ctx, stuck, now)
		if err != nil {
			return fmt.Errorf("rescue: %w", err)
		}
		if len(back) > 0 {
			c.log.Warn("cluster: returned deliveries a dead node was sending to the queue", "count", len(back))
		}
	}
	tag, err := c.st.pool.Exec(ctx, `UPDATE deliveries SET owner = NULL WHERE owner = ANY($1) AND state IN `+pendingStates, dead)
	if err != nil {
		return err
	}
	if n := tag.RowsAffected(); n > 0 {
		c.log.Warn("cluster: released a dead or stopped node's deliveries", "count", n, "nodes", dead)
		c.notify(ctx)
	}
	return nil
}

// listenLoop keeps a connection listening on the work channel and turns
// each notification into a Wake.
func (c *Cluster) listenLoop(ctx context.Context) {
	defer c.wg.Done()
	for ctx.Err() == nil {
		err := c.listen(ctx)
		if ctx.Err() != nil {
			return
		}
		c.log.Error("cluster: listen for new work", "err", err)
		c.poke() // something may have been missed
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
		}
	}
}

func (c *Cluster) listen(ctx context.Context) error {
	conn, err := pgx.ConnectConfig(ctx, c.st.pool.Config().ConnConfig.Copy())
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+workChannel); err != nil {
		return err
	}
	c.poke() // work announced before this LISTEN
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return err
		}
		c.poke()
	}
}

// Claim takes up to n unowned deliveries due at now for this node, high
// lane first, and returns them (Sender filled in).
func (c *Cluster) Claim(ctx context.Context, now time.Time, n int) ([]store.Delivery, error) {
	rows, err := c.st.pool.Query(ctx, `WITH c AS (
		SELECT id FROM deliveries WHERE owner IS NULL AND state IN `+pendingStates+` AND next_attempt_at <= $2
		ORDER BY CASE lane WHEN 'high' THEN 0 WHEN 'normal' THEN 1 ELSE 2 END, next_attempt_at
		LIMIT $3 FOR UPDATE SKIP LOCKED)
	UPDATE deliveries d SET owner = $1 FROM c, messages m WHERE d.id = c.id AND m.id = d.message_id
	RETURNING `+deliveryWithMessage, c.node, now.UnixMilli(), n)
	if err != nil {
		return nil, fmt.Errorf("cluster: claim: %w", err)
	}
	out, err := scanDeliveries(rows)
	if err != nil {
		return nil, fmt.Errorf("cluster: claim: %w", err)
	}
	return out, nil
}

// NextDue is when the earliest unowned delivery is due (ok false: none).
func (c *Cluster) NextDue(ctx context.Context) (t time.Time, ok bool, err error) {
	var ms *int64
	err = c.st.pool.QueryRow(ctx, `SELECT min(next_attempt_at) FROM deliveries WHERE owner IS NULL AND state IN `+pendingStates).Scan(&ms)
	if err != nil || ms == nil {
		return time.Time{}, false, err
	}
	return time.UnixMilli(*ms), true, nil
}

// OwnStuck returns this node's deliveries in sending whose lease ended
// before now (the caller leaves out those it is still sending).
func (c *Cluster) OwnStuck(ctx context.Context, now time.Time) ([]int64, error) {
	rows, err := c.st.pool.Query(ctx, `SELECT id FROM deliveries WHERE owner = $1 AND state = 'sending' AND next_attempt_at <= $2 LIMIT 10000`,
		c.node, now.UnixMilli())
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[int64])
}

// AcquireSlot takes one of the n connection slots the whole cluster has
// for dest; ok false when all are taken. release gives it back.
func (c *Cluster) AcquireSlot(ctx context.Context, dest string, n int) (release func(), ok bool, err error) {
	key := slotKey(dest)
	c.lockMu.Lock()
	defer c.lockMu.Unlock()
	if c.lockConn == nil {
		conn, err := pgx.ConnectConfig(ctx, c.st.pool.Config().ConnConfig.Copy())
		if err != nil {
			return nil, false, fmt.Errorf("cluster: slot connection: %w", err)
		}
		c.lockConn = conn
	}
	conn := c.lockConn
	skip := []int32{}
	for s := range c.held[key] {
		skip = append(skip, s)
	}
	var slot int32
	if err := conn.QueryRow(ctx, `SELECT posthorn_take_slot($1, $2, $3)`, key, n, skip).Scan(&slot); err != nil {
		c.dropLockConn()
		return nil, false, fmt.Errorf("cluster: take a connection slot: %w", err)
	}
	if slot < 0 {
		// Say this node waits, so that holders give a slot up (Contended).
		if _, err := conn.Exec(ctx, `INSERT INTO slot_wants (dest_key, node, at) VALUES ($1, $2, `+dbNow+`)
			ON CONFLICT (dest_key, node) DO UPDATE SET at = excluded.at`, key, c.node); err != nil {
			c.dropLockConn()
			return nil, false, fmt.Errorf("cluster: record a wait for a connection slot: %w", err)
		}
		return nil, false, nil
	}
	if c.held[key] == nil {
		c.held[key] = map[int32]int{}
	}
	c.held[key][slot] = 1
	return func() {
		c.lockMu.Lock()
		defer c.lockMu.Unlock()
		if c.lockConn != conn {
			return // the session ended, and its locks with it
		}
		delete(c.held[key], slot)
		if len(c.held[key]) == 0 {
			delete(c.held, key)
		}
		if _, err := conn.Exec(context.Background(), `SELECT pg_advisory_unlock($1, $2)`, key, slot); err != nil {
			c.dropLockConn()
		}
	}, true, nil
}

// slotKey is the advisory lock key of a destination's slots.
func slotKey(dest string) int32 {
	h := fnv.New32a()
	h.Write([]byte(dest))
	return int32(h.Sum32())
}

// Contended reports whether another node found every slot of dest taken
// within the last within: a node holding slots then gives one up.
func (c *Cluster) Contended(ctx context.Context, dest string, within time.Duration) (bool, error) {
	var yes bool
	err := c.st.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM slot_wants WHERE dest_key = $1 AND node <> $2 AND at > `+dbNow+` - $3)`,
		slotKey(dest), c.node, within.Milliseconds()).Scan(&yes)
	if err != nil {
		return false, fmt.Errorf("cluster: slot waiters of %s: %w", dest, err)
	}
	return yes, nil
}

// dropLockConn closes a failed slot connection: the server releases its
// locks. Caller holds lockMu.
func (c *Cluster) dropLockConn() {
	if c.lockConn != nil {
		c.lockConn.Close(context.Background())
		c.lockConn = nil
	}
	clear(c.held)
}

// PublishThrottle records a cut this node made so the others apply it.
func (c *Cluster) PublishThrottle(ctx context.Context, t store.SharedThrottle) error {
	_, err := c.st.pool.Exec(ctx, `INSERT INTO destination_throttles (destination, node, connections, rate_per_minute, paused_until, reason, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, `+dbNow+`)
		ON CONFLICT (destination) DO UPDATE SET node = $2, connections = $3, rate_per_minute = $4, paused_until = $5, reason = $6, updated_at = `+dbNow,
		t.Destination, c.node, t.Conns, t.RatePerMinute, t.PausedUntil.UnixMilli(), t.Reason)
	if err != nil {
		return fmt.Errorf("cluster: publish throttle: %w", err)
	}
	return nil
}

// Throttles returns the other nodes' cuts recorded after since (by the
// database's clock; pass the latest UpdatedAt seen, less a margin).
func (c *Cluster) Throttles(ctx context.Context, since time.Time) ([]store.SharedThrottle, error) {
	rows, err := c.st.pool.Query(ctx, `SELECT destination, node, connections, rate_per_minute, paused_until, reason, updated_at
		FROM destination_throttles WHERE updated_at > $1 AND node <> $2`, since.UnixMilli(), c.node)
	if err != nil {
		return nil, fmt.Errorf("cluster: read throttles: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.SharedThrottle, error) {
		var t store.SharedThrottle
		var paused, updated int64
		err := r.Scan(&t.Destination, &t.Node, &t.Conns, &t.RatePerMinute, &paused, &t.Reason, &updated)
		t.PausedUntil, t.UpdatedAt = fromMS(paused), fromMS(updated)
		return t, err
	})
}

// Nodes lists the cluster's nodes with the deliveries each holds.
func (c *Cluster) Nodes(ctx context.Context) ([]store.Node, error) {
	rows, err := c.st.pool.Query(ctx, `SELECT n.name, n.host, n.pid, n.version, n.started_at, n.heartbeat_at, n.stopped_at,
		n.stopped_at = 0 AND n.heartbeat_at >= `+dbNow+` - $1, coalesce(o.leases, 0), coalesce(o.sending, 0)
	FROM nodes n LEFT JOIN (SELECT owner, count(*) AS leases, count(*) FILTER (WHERE state = 'sending') AS sending
		FROM deliveries WHERE owner IS NOT NULL AND state IN ('scheduled','queued','sending','deferred') GROUP BY owner) o ON o.owner = n.name
	ORDER BY n.name`, c.cfg.DeadAfter.Milliseconds())
	if err != nil {
		return nil, fmt.Errorf("cluster: list nodes: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Node, error) {
		var n store.Node
		var started, hb, stopped, leases, sending int64
		err := r.Scan(&n.Name, &n.Host, &n.PID, &n.Version, &started, &hb, &stopped, &n.Alive, &leases, &sending)
		n.Started, n.Heartbeat, n.Stopped = fromMS(started), fromMS(hb), fromMS(stopped)
		n.Leases, n.Sending = int(leases), int(sending)
		return n, err
	})
}

// DatabaseSize is the shared database's size on disk in bytes.
func (c *Cluster) DatabaseSize(ctx context.Context) (int64, error) {
	var n int64
	err := c.st.pool.QueryRow(ctx, `SELECT pg_database_size(current_database())`).Scan(&n)
	return n, err
}
