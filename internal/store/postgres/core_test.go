package postgres

import (
	"context"
	"errors"
	"fmt"
	"github.com/jackc/pgx/v5"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/store/storetest"
	"github.com/posthorn/posthorn/internal/testkit/pgtest"
)

// TestSchemaChecksMatchStore: the deliveries table takes every state and
// lane store knows, and refuses anything else.
func TestSchemaChecksMatchStore(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	ins := func(state, lane string) error {
		_, err := s.pool.Exec(ctx, `INSERT INTO deliveries (message_id, tenant_id, recipient, domain, lane, state, created_at, expires_at, updated_at)
			VALUES ('check', 't1', 'a@x.test', 'x.test', $1, $2, 1, 2, 3)`, lane, state)
		return err
	}
	for _, st := range store.AllStates {
		for _, lane := range []store.Lane{store.LaneHigh, store.LaneNormal, store.LaneLow} {
			if err := ins(string(st), string(lane)); err != nil {
				t.Fatalf("schema refuses state %s lane %s: %v", st, lane, err)
			}
		}
	}
	for _, bad := range [][2]string{{"limbo", "normal"}, {"queued", "urgent"}, {"", "normal"}, {"Queued", "normal"}} {
		if err := ins(bad[0], bad[1]); err == nil || !strings.Contains(err.Error(), "check constraint") {
			t.Fatalf("schema accepts state %q lane %q: %v", bad[0], bad[1], err)
		}
	}
}

// TestGroupCommitBatches: concurrent acceptances share commits (fewer
// commits than requests), and each one is durable when it returns.
func TestGroupCommitBatches(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- s.InsertMessages(ctx, []*store.NewMessage{storetest.NewTestMessage(fmt.Sprintf("g%03d", i), "a@one.test")})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	ws := s.WriterStats()
	commits, requests := ws.Commits, ws.Requests
	if requests != n || commits >= requests {
		t.Fatalf("%d requests in %d commits: want %d requests sharing fewer commits", requests, commits, n)
	}
	t.Logf("%d requests in %d commits", requests, commits)
	// Read from another connection: what returned is committed.
	var count int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM deliveries`).Scan(&count); err != nil || count != n {
		t.Fatalf("deliveries committed: %d %v", count, err)
	}
}

// TestWriterReconnects: when the writer's connection is lost between
// writes (server restart, terminated backend), the next write reconnects
// instead of failing.
func TestWriterReconnects(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	pid := s.w.conn.PgConn().PID() // the writer is idle: nothing has been written yet
	var ok bool
	if err := s.pool.QueryRow(ctx, `SELECT pg_terminate_backend($1)`, pid).Scan(&ok); err != nil || !ok {
		t.Fatalf("terminate the writer's backend %d: %v %v", pid, ok, err)
	}
	// Wait until the server has ended it.
	for i := 0; ; i++ {
		var n int
		if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE pid = $1`, pid).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if i > 500 {
			t.Fatal("the writer's backend did not end")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := s.InsertMessages(ctx, []*store.NewMessage{storetest.NewTestMessage("after", "a@one.test")}); err != nil {
		t.Fatalf("write after the writer's connection was lost: %v", err)
	}
	if _, err := s.GetMessage(ctx, "", "after", false); err != nil {
		t.Fatal(err)
	}
}

// twoNodes opens two stores on one database, as two posthorn nodes.
func twoNodes(t *testing.T) (*Store, *Store) {
	t.Helper()
	url := pgtest.NewDatabase(t)
	var out [2]*Store
	for i := range out {
		s, err := Open(context.Background(), url, WithNode(fmt.Sprintf("node%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		out[i] = s
	}
	return out[0], out[1]
}

// TestIdempotencyAcrossNodes: two nodes accepting requests with one key at
// the same moment store one message; the other sees the first's record.
func TestIdempotencyAcrossNodes(t *testing.T) {
	a, b := twoNodes(t)
	ctx := context.Background()
	at := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	for round := range 20 {
		key := fmt.Sprintf("k%d", round)
		nms := make([]*store.NewMessage, 2)
		errs := make([]error, 2)
		var wg sync.WaitGroup
		for i, s := range []*Store{a, b} {
			nm := storetest.NewTestMessage(fmt.Sprintf("r%d-%d", round, i), "a@one.test")
			nm.Idempotency = &store.IdempotencyRecord{Key: key, RequestHash: "h", MessageID: nm.Message.ID, Response: []byte(nm.Message.ID),
				CreatedAt: at, ExpiresAt: at.Add(time.Hour)}
			nms[i] = nm
			wg.Add(1)
			go func() { defer wg.Done(); errs[i] = s.InsertMessages(ctx, []*store.NewMessage{nm}) }()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		if (nms[0].Existing == nil) == (nms[1].Existing == nil) {
			t.Fatalf("round %d: existing %+v and %+v: want exactly one repeat", round, nms[0].Existing, nms[1].Existing)
		}
		first, repeat := nms[0], nms[1]
		if first.Existing != nil {
			first, repeat = repeat, first
		}
		if repeat.Existing.MessageID != first.Message.ID || string(repeat.Existing.Response) != first.Message.ID {
			t.Fatalf("round %d: repeat answered with %+v, want %s's", round, repeat.Existing, first.Message.ID)
		}
		if _, err := a.GetMessage(ctx, "", repeat.Message.ID, false); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("round %d: the repeat was stored: %v", round, err)
		}
	}
}

// TestLeaseAcrossNodes: two nodes leasing the same deliveries at once
// never both get one.
func TestLeaseAcrossNodes(t *testing.T) {
	a, b := twoNodes(t)
	ctx := context.Background()
	var ids []int64
	for i := range 50 {
		nm := storetest.NewTestMessage(fmt.Sprintf("l%d", i), "a@one.test")
		if err := a.InsertMessages(ctx, []*store.NewMessage{nm}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, nm.Deliveries[0].ID)
	}
	now := time.Now()
	got := make([][]int64, 2)
	var wg sync.WaitGroup
	for i, s := range []*Store{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, id := range ids {
				l, err := s.Lease(ctx, []int64{id}, now, now.Add(time.Minute))
				if err != nil {
					t.Error(err)
					return
				}
				got[i] = append(got[i], l...)
			}
		}()
	}
	wg.Wait()
	all := append(slices.Clone(got[0]), got[1]...)
	slices.Sort(all)
	if !slices.Equal(all, ids) {
		t.Fatalf("leased %v and %v: want every delivery leased exactly once", got[0], got[1])
	}
}

// TestPutSuppressionsOrder: a batch is written in key order, yet of two
// writes of one entry in a batch the later still wins; listings come in
// bytewise key order (addresses grouped case-insensitively) whatever the
// database's locale.
func TestPutSuppressionsOrder(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	now := time.Now()
	batch := []store.Suppression{
		{TenantID: "t1", Kind: "address", Value: "z@x.test", Reason: "manual", CreatedAt: now},
		{TenantID: "t1", Kind: "address", Value: "a@x.test", Reason: "manual", CreatedAt: now},
		{TenantID: "t1", Kind: "address", Value: "z@x.test", Reason: "hard_bounce", CreatedAt: now},
		{TenantID: "t1", Kind: "address", Value: "A@x.test", Reason: "complaint", CreatedAt: now},
		{TenantID: "t1", Kind: "domain", Value: "b.test", Reason: "manual", CreatedAt: now},
		{TenantID: "t2", Kind: "address", Value: "a@x.test", Reason: "manual", CreatedAt: now},
	}
	if err := s.PutSuppressions(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if batch[0].Value != "z@x.test" {
		t.Error("the caller's batch was reordered")
	}
	all, err := s.ListSuppressions(ctx, "t1")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, x := range all {
		got = append(got, x.Value+" "+x.Reason)
	}
	if want := []string{"A@x.test complaint", "a@x.test manual", "z@x.test hard_bounce", "b.test manual"}; !slices.Equal(got, want) {
		t.Errorf("stored %q, want %q", got, want)
	}
	hits, err := s.AddressSuppressions(ctx, "t1", store.FoldAddress("A@X.TEST"))
	if err != nil || len(hits) != 2 || hits[0].Value != "A@x.test" || hits[1].Value != "a@x.test" {
		t.Fatalf("address lookup: %+v %v", hits, err)
	}
	if ok, err := s.DeleteSuppression(ctx, "t1", "address", "A@x.test"); err != nil || !ok {
		t.Fatalf("delete: %v %v", ok, err)
	}
	if ok, err := s.DeleteSuppression(ctx, "t1", "address", "A@x.test"); err != nil || ok {
		t.Fatalf("delete again: %v %v", ok, err)
	}
	n := 0
	if err := s.EachSuppression(ctx, "", func(store.Suppression) error { n++; return nil }); err != nil || n != 4 {
		t.Fatalf("every tenant's entries: %d %v", n, err)
	}
}

// TestWriterKeepsCommitsDurable: with synchronous_commit turned off for
// the database, the store's sessions (the writer's and the pool's) turn it
// back on, so an acceptance, or any other write, is on disk when it
// returns; another client still gets the database's setting.
func TestWriterKeepsCommitsDurable(t *testing.T) {
	url := pgtest.NewDatabase(t)
	ctx := context.Background()
	s, err := Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	var db string
	if err := s.pool.QueryRow(ctx, `SELECT current_database()`).Scan(&db); err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, `ALTER DATABASE `+db+` SET synchronous_commit = off`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open2(t, url)
	var other, pool, writer string
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if err := c.QueryRow(ctx, `SHOW synchronous_commit`).Scan(&other); err != nil || other != "off" {
		t.Fatalf("the database's setting did not apply to new sessions: %q %v", other, err)
	}
	if err := s.pool.QueryRow(ctx, `SHOW synchronous_commit`).Scan(&pool); err != nil || pool != "on" {
		t.Fatalf("pool's synchronous_commit: %q %v, want on", pool, err)
	}
	if err := s.w.conn.QueryRow(ctx, `SHOW synchronous_commit`).Scan(&writer); err != nil || writer != "on" {
		t.Fatalf("writer's synchronous_commit: %q %v, want on", writer, err)
	}
}

// open2 opens another store on the database at url, closed when t ends.
func open2(t *testing.T, url string) *Store {
	t.Helper()
	s, err := Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestMixedBatchFailureStaysItsOwn: piped requests (acceptances, leases)
// and others (events, transitions) sharing commits with failing ones
// (duplicate message IDs) all succeed, each with its events.
func TestMixedBatchFailureStaysItsOwn(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	var ids []int64
	for i := range 20 {
		nm := storetest.NewTestMessage(fmt.Sprintf("base%d", i), "a@one.test")
		if err := s.InsertMessages(ctx, []*store.NewMessage{nm}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, nm.Deliveries[0].ID)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed []string
	run := func(name string, f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil {
				mu.Lock()
				failed = append(failed, name)
				mu.Unlock()
			}
		}()
	}
	now := time.Now()
	for i := range 20 {
		run("dup", func() error {
			return s.InsertMessages(ctx, []*store.NewMessage{storetest.NewTestMessage(fmt.Sprintf("base%d", i), "b@one.test")})
		})
		run(fmt.Sprintf("new%d", i), func() error {
			return s.InsertMessages(ctx, []*store.NewMessage{storetest.NewTestMessage(fmt.Sprintf("new%d", i), "b@one.test")})
		})
		run(fmt.Sprintf("event%d", i), func() error {
			return s.RecordEvent(ctx, store.Event{At: now, Type: store.EventThrottle, TenantID: "t1", Detail: fmt.Sprint(i)})
		})
		if i%2 == 0 {
			run(fmt.Sprintf("lease%d", i), func() error {
				l, err := s.Lease(ctx, []int64{ids[i]}, now, now.Add(time.Minute))
				if err == nil && len(l) != 1 {
					err = errors.New("not leased")
				}
				return err
			})
		} else {
			run(fmt.Sprintf("hold%d", i), func() error {
				ds, err := s.Transition(ctx, store.TransitionSpec{Op: store.OpHold, DeliveryIDs: []int64{ids[i]}, Now: now})
				if err == nil && len(ds) != 1 {
					err = errors.New("not held")
				}
				return err
			})
		}
	}
	wg.Wait()
	if len(failed) != 20 || slices.ContainsFunc(failed, func(n string) bool { return n != "dup" }) {
		t.Fatalf("failed: %v, want exactly the 20 duplicates", failed)
	}
	counts, err := s.CountDeliveries(ctx, "")
	if err != nil || counts[store.Sending] != 10 || counts[store.Held] != 10 || counts[store.Queued] != 20 {
		t.Fatalf("counts %v %v", counts, err)
	}
	for typ, want := range map[string]int{store.EventQueued: 40, store.EventHeld: 10, store.EventThrottle: 20} {
		if n, err := s.CountEvents(ctx, store.EventFilter{Type: typ}, 1000); err != nil || n != want {
			t.Errorf("%s events: %d %v, want %d", typ, n, err, want)
		}
	}
	if ws := s.WriterStats(); ws.Commits >= ws.Requests {
		t.Logf("no batch shared a commit (%d commits for %d requests)", ws.Commits, ws.Requests)
	}
}
