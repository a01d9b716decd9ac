package dkimqueue

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/store/sqlite"
	"github.com/posthorn/posthorn/internal/store/storetest"
)

// keys signs example.org mail of tenant t1 with a recognisable field
// (the real signing is internal/domain's, verified there and in e2e).
type keys struct{ calls int }

func (k *keys) Sending(tenantID, domain string) (func([]byte) ([]byte, error), bool) {
	if tenantID != "t1" || domain != "example.org" {
		return nil, false
	}
	return func(msg []byte) ([]byte, error) {
		k.calls++
		return []byte("DKIM-Signature: d=example.org; b=x\r\n"), nil
	}, true
}

// sched records what reaches the scheduler and, at that moment, whether
// the store already had the signature.
type sched struct {
	st  store.Store
	mu  sync.Mutex
	got []store.Delivery
	err error
	ch  chan struct{}
}

func (s *sched) Enqueue(ds []store.Delivery) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range ds {
		m, err := s.st.GetMessage(context.Background(), "", d.MessageID, true)
		if err == nil && (m.DKIMPending || !bytes.HasPrefix(m.Body, []byte("DKIM-Signature:"))) {
			err = errors.New("scheduled before its signature was stored")
		}
		if s.err == nil {
			s.err = err
		}
	}
	s.got = append(s.got, ds...)
	s.ch <- struct{}{}
}

type cache struct{ m *store.Message }

func (c *cache) Put(m *store.Message) { c.m = m }

func open(t *testing.T) store.Store {
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func pending(t *testing.T, st store.Store, id string) (*store.Message, []store.Delivery) {
	t.Helper()
	nm := storetest.NewTestMessage(id, "r@dest.test")
	nm.Message.DKIMDomain, nm.Message.DKIMPending = "example.org", true
	if err := st.InsertMessages(context.Background(), []*store.NewMessage{nm}); err != nil {
		t.Fatal(err)
	}
	return nm.Message, []store.Delivery{*nm.Deliveries[0]}
}

// TestScheduledOnceSigned: a submitted message reaches the scheduler only
// after its signature is stored, and the body cache gets it signed.
func TestScheduledOnceSigned(t *testing.T) {
	st := open(t)
	s := &sched{st: st, ch: make(chan struct{}, 10)}
	c := &cache{}
	k := &keys{}
	q := Start(Config{Store: st, Keys: k, Sched: s, Bodies: c, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	defer q.Stop()
	m, ds := pending(t, st, "m1")
	q.Submit(m, ds)
	select {
	case <-s.ch:
	case <-time.After(10 * time.Second):
		t.Fatal("never scheduled")
	}
	if s.err != nil || len(s.got) != 1 || k.calls != 1 {
		t.Fatalf("scheduled %d, signed %d times: %v", len(s.got), k.calls, s.err)
	}
	if c.m == nil || c.m.DKIMPending || !bytes.HasPrefix(c.m.Body, []byte("DKIM-Signature: d=example.org")) {
		t.Fatalf("cached %+v", c.m)
	}
}

// TestPendingSignedOnDemand: after Stop nothing is signed in the
// background and the message stays pending; Sign (what the queue calls
// before delivering it) signs and stores it; a domain without key fails.
func TestPendingSignedOnDemand(t *testing.T) {
	st := open(t)
	s := &sched{st: st, ch: make(chan struct{}, 10)}
	q := Start(Config{Store: st, Keys: &keys{}, Sched: s, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	q.Stop()
	m, ds := pending(t, st, "m1")
	q.Submit(m, ds) // returns at once
	ctx := context.Background()
	if got, _ := st.GetMessage(ctx, "", "m1", true); !got.DKIMPending {
		t.Fatal("signed after Stop")
	}
	signed, err := q.Sign(ctx, m)
	if err != nil || signed.DKIMPending || !bytes.HasPrefix(signed.Body, []byte("DKIM-Signature:")) {
		t.Fatalf("Sign: %+v %v", signed, err)
	}
	if got, _ := st.GetMessage(ctx, "", "m1", true); got.DKIMPending || !bytes.Equal(got.Body, signed.Body) {
		t.Fatalf("stored %q", got.Body)
	}
	other, _ := pending(t, st, "m2")
	other.TenantID = "t2"
	if _, err := q.Sign(ctx, other); err == nil {
		t.Fatal("signed for a tenant without the domain")
	}
}

// gatedKeys signs like keys, counting per message, and holds the first
// signature until gate is closed.
type gatedKeys struct {
	mu    sync.Mutex
	calls map[string]int
	first chan struct{} // closed when the first signature starts
	gate  chan struct{}
	once  sync.Once
}

func (k *gatedKeys) Sending(tenantID, domain string) (func([]byte) ([]byte, error), bool) {
	return func(msg []byte) ([]byte, error) {
		k.mu.Lock()
		k.calls[string(msg)]++
		k.mu.Unlock()
		held := false
		k.once.Do(func() { held = true; close(k.first) })
		if held {
			<-k.gate
		}
		return []byte("DKIM-Signature: d=example.org; b=x\r\n"), nil
	}, true
}

// TestSignOnceWhileQueued: when the delivery worker asks to sign a
// message the pool has (the scheduler's loader found it in the store
// first), it is signed once: Sign waits for a signer already at it, and
// takes over one still waiting, releasing its deliveries.
func TestSignOnceWhileQueued(t *testing.T) {
	st := open(t)
	s := &sched{st: st, ch: make(chan struct{}, 10)}
	k := &gatedKeys{calls: map[string]int{}, first: make(chan struct{}), gate: make(chan struct{})}
	q := Start(Config{Store: st, Keys: k, Sched: s, Workers: 1, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	defer q.Stop()
	m1, ds1 := pending(t, st, "m1")
	m2, ds2 := pending(t, st, "m2")
	m2.Body = append([]byte("X-Second: 1\r\n"), m2.Body...) // told apart by the signer's count
	q.Submit(m1, ds1)
	<-k.first // the only signer holds m1
	q.Submit(m2, ds2)
	ctx := context.Background()
	got2, err := q.Sign(ctx, m2) // still waiting in the pool: taken over
	if err != nil || got2.DKIMPending {
		t.Fatalf("Sign m2: %+v %v", got2, err)
	}
	select {
	case <-s.ch: // m2's deliveries released by Sign
	case <-time.After(10 * time.Second):
		t.Fatal("m2's deliveries never reached the scheduler")
	}
	done := make(chan error, 1)
	go func() {
		_, err := q.Sign(ctx, m1) // a signer is at it: waits
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	close(k.gate)
	if err := <-done; err != nil {
		t.Fatalf("Sign m1: %v", err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.calls[string(m1.Body)] != 1 || k.calls[string(m2.Body)] != 1 {
		t.Fatalf("signatures per message: m1 %d, m2 %d; want 1 each", k.calls[string(m1.Body)], k.calls[string(m2.Body)])
	}
}
