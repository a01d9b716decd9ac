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
