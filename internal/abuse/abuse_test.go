package abuse

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/accept"
	"github.com/posthorn/posthorn/internal/store"
)

// events is an in-memory event log (the real store is exercised by the
// end-to-end tests).
type events struct {
	mu sync.Mutex
	es []store.Event
}

func (e *events) RecordEvent(_ context.Context, ev store.Event) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	ev.ID = int64(len(e.es) + 1)
	e.es = append(e.es, ev)
	return nil
}

func (e *events) Events(_ context.Context, f store.EventFilter) ([]store.Event, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []store.Event
	for _, ev := range e.es {
		if ev.ID > f.AfterID && (f.Type == "" || ev.Type == f.Type) {
			out = append(out, ev)
		}
	}
	return out, nil
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func send(t *testing.T, g *Guard, user string, n int) (held int, err error) {
	t.Helper()
	for range n {
		v, err := g.Check(context.Background(), &accept.CheckInput{ID: "m", Sub: &accept.Submission{TenantID: "t1", SMTPUser: user, Recipients: []string{"a@example.org"}}})
		if err != nil {
			return held, err
		}
		v.Done(true)
		if v.Hold {
			held++
		}
	}
	return held, nil
}

// TestJumpHoldsSender: a sender at a steady rate, then 20 times that, is
// flagged within the window; another sender of the tenant is not; the
// alert carries the figures; the operator's release clears the flag.
func TestJumpHoldsSender(t *testing.T) {
	c := &clock{time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	ev := &events{}
	g := New(Config{Rules: Rules{Hour: time.Hour, Window: 10 * time.Minute, BaselineHours: 168, Factor: 5, MinVolume: 20}},
		ev, slog.New(slog.NewTextHandler(io.Discard, nil)), c.now)
	// Three hours at 12 messages an hour (one every 5 minutes), both senders.
	for range 36 {
		for _, u := range []string{"alice", "bob"} {
			if held, err := send(t, g, u, 1); err != nil || held != 0 {
				t.Fatalf("steady traffic: held %d, err %v", held, err)
			}
		}
		c.t = c.t.Add(5 * time.Minute)
	}
	// Alice now sends 20x that: 240 an hour, 4 a minute.
	flaggedAfter := -1
	for i := range 40 {
		held, err := send(t, g, "alice", 4)
		if err != nil {
			t.Fatal(err)
		}
		if held > 0 && flaggedAfter < 0 {
			flaggedAfter = i
		}
		if _, err := send(t, g, "bob", 0); err != nil {
			t.Fatal(err)
		}
		c.t = c.t.Add(time.Minute)
	}
	if flaggedAfter < 0 || flaggedAfter > 10 {
		t.Fatalf("alice flagged after %d minutes, want within the 10-minute window", flaggedAfter)
	}
	if held, err := send(t, g, "bob", 3); err != nil || held != 0 {
		t.Fatalf("bob (steady) held %d, err %v", held, err)
	}
	var fired []store.Event
	for _, e := range ev.es {
		if e.Type == EventAlertFired {
			fired = append(fired, e)
		}
	}
	if len(fired) != 1 {
		t.Fatalf("%d alert_fired events, want 1", len(fired))
	}
	var d alertDetail
	if err := json.Unmarshal([]byte(fired[0].Detail), &d); err != nil || d.Principal != "smtp:alice" || d.Rule != "rate_jump" ||
		d.BaselineP95 != 12 || d.WindowCount < 20 || d.RatePerHour <= 60 {
		t.Fatalf("alert detail %s (err %v)", fired[0].Detail, err)
	}
	// A restart keeps the flag.
	g2 := New(g.cfg, ev, g.log, c.now)
	if err := g2.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	if f := g2.Flagged(); len(f) != 1 || f[0].Principal != "smtp:alice" {
		t.Fatalf("flags after restart: %+v", f)
	}
	held, ok := g.Release(context.Background(), "smtp:alice")
	if !ok || len(held) == 0 {
		t.Fatalf("release: ok %v, held %v", ok, held)
	}
	if h, err := send(t, g, "alice", 1); err != nil || h != 0 {
		t.Fatalf("after release: held %d, err %v", h, err)
	}
	if err := g2.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	if f := g2.Flagged(); len(f) != 0 {
		t.Fatalf("flags after release and restart: %+v", f)
	}
}

// TestQuota: the message over the hourly quota is refused with 452/429 and
// a Retry-After until the hour ends; a refused-later message gives its
// place back; the next hour it goes through.
func TestQuota(t *testing.T) {
	c := &clock{time.Date(2026, 1, 1, 0, 30, 0, 0, time.UTC)}
	g := New(Config{Rules: Rules{Hour: time.Hour, Window: time.Minute, BaselineHours: 168, Factor: 10, MinVolume: 1000},
		UserQuota: Quota{PerHour: 3, PerDay: 100}, Users: map[string]Quota{"smtp:big": {PerHour: 10}}},
		&events{}, slog.New(slog.NewTextHandler(io.Discard, nil)), c.now)
	if _, err := send(t, g, "alice", 3); err != nil {
		t.Fatal(err)
	}
	_, err := send(t, g, "alice", 1)
	rej, ok := accept.IsRejection(err)
	if !ok || rej.Code != 452 || rej.Enhanced != "4.7.1" || rej.HTTPStatus != 429 || rej.APICode != "quota_exceeded" || rej.RetryAfter != 30*time.Minute {
		t.Fatalf("over quota: %v %+v", err, rej)
	}
	// Undo: the pipeline refused a message after this check.
	c.t = c.t.Add(time.Hour)
	v, err := g.Check(context.Background(), &accept.CheckInput{ID: "x", Sub: &accept.Submission{TenantID: "t1", SMTPUser: "alice"}})
	if err != nil {
		t.Fatal(err)
	}
	v.Done(false)
	if _, err := send(t, g, "alice", 3); err != nil {
		t.Fatalf("next hour: %v", err)
	}
	if _, err := send(t, g, "big", 10); err != nil {
		t.Fatalf("user override: %v", err)
	}
}

// TestHardBounceShare: more than 10% hard bounces over 100+ recipients
// flags the sender; bounces of messages it did not send do not count.
func TestHardBounceShare(t *testing.T) {
	c := &clock{time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	ev := &events{}
	g := New(Config{Rules: Rules{Hour: time.Hour, Window: 10 * time.Minute, BaselineHours: 168, BounceShare: 0.1, BounceMin: 100, BounceHours: 24}},
		ev, slog.New(slog.NewTextHandler(io.Discard, nil)), c.now)
	var ids []string
	for i := range 120 {
		id := fmt.Sprintf("m%d", i)
		ids = append(ids, id)
		v, err := g.Check(context.Background(), &accept.CheckInput{ID: id, Sub: &accept.Submission{TenantID: "t1", SMTPUser: "alice", Recipients: []string{"a@example.org"}}})
		if err != nil {
			t.Fatal(err)
		}
		v.Done(true)
		c.t = c.t.Add(time.Minute)
	}
	g.HardBounced(context.Background(), "unknown", "t1", 50)
	for _, id := range ids[:12] { // 12 of 120: exactly 10%, not above
		g.HardBounced(context.Background(), id, "t1", 1)
	}
	if len(g.Flagged()) != 0 {
		t.Fatalf("flagged at 10%%: %+v", g.Flagged())
	}
	g.HardBounced(context.Background(), ids[12], "t1", 1)
	f := g.Flagged()
	if len(f) != 1 || f[0].Rule != "hard_bounce_share" || f[0].HardBounces != 13 || f[0].Recipients != 120 {
		t.Fatalf("flags: %+v", f)
	}
	if held, err := send(t, g, "alice", 1); err != nil || held != 1 {
		t.Fatalf("after the alert: held %d, err %v", held, err)
	}
}

// tenantEvents is an event store that lists tenants and refuses a query
// by type over all tenants (a scan of every event in a real store).
type tenantEvents struct {
	*events
	tenants []string
}

func (e *tenantEvents) ListTenants(context.Context) ([]store.Tenant, error) {
	var out []store.Tenant
	for _, id := range e.tenants {
		out = append(out, store.Tenant{ID: id})
	}
	return out, nil
}

func (e *tenantEvents) Events(ctx context.Context, f store.EventFilter) ([]store.Event, error) {
	if f.TenantID == "" {
		return nil, fmt.Errorf("events of type %q over all tenants", f.Type)
	}
	all, err := e.events.Events(ctx, f)
	var out []store.Event
	for _, ev := range all {
		if ev.TenantID == f.TenantID {
			out = append(out, ev)
		}
	}
	return out, err
}

// TestLoadPerTenant: with a store that lists tenants, Load reads each
// tenant's alerts (through the tenant and type index) and restores the
// flag of a sender whose alert fired and was not resolved.
func TestLoadPerTenant(t *testing.T) {
	c := &clock{time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	ev := &tenantEvents{events: &events{}, tenants: []string{"t1", "t2"}}
	g := New(Config{}, ev, slog.New(slog.NewTextHandler(io.Discard, nil)), c.now)
	g.record(context.Background(), EventAlertFired, "t2", &Alert{Principal: "smtp:carol", Tenant: "t2", Rule: "rate_jump", At: c.t})
	g.record(context.Background(), EventAlertFired, "t1", &Alert{Principal: "smtp:dave", Tenant: "t1", Rule: "rate_jump", At: c.t})
	c.t = c.t.Add(time.Minute)
	g.record(context.Background(), EventAlertResolved, "t1", &Alert{Principal: "smtp:dave", Tenant: "t1", Rule: "rate_jump", At: c.t})
	g2 := New(Config{}, ev, g.log, c.now)
	if err := g2.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	if f := g2.Flagged(); len(f) != 1 || f[0].Principal != "smtp:carol" {
		t.Fatalf("flags after restart: %+v", f)
	}
}
