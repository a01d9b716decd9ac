package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/store"
)

// Domains checks the sending-domain store: one domain belongs to one
// tenant, keys go with their domain, and states outside the schema are
// refused. Backends run it beside Run (it is separate so that merging it
// into Run's list is a one-line change).
func Domains(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	d := store.SendingDomain{Name: "example.org", TenantID: "A", Status: store.DomainPending, CreatedAt: now}
	k := store.DKIMKey{Domain: "example.org", Selector: "s1", Algorithm: "rsa", PublicKey: "pub", PrivateKey: []byte("sealed"), State: store.KeyActive, CreatedAt: now}
	if err := s.CreateDomain(ctx, d, k); err != nil {
		t.Fatal(err)
	}
	d2 := d
	d2.TenantID = "B"
	if err := s.CreateDomain(ctx, d2, k); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second tenant: %v", err)
	}
	if ds, _ := s.ListDomains(ctx, "B"); len(ds) != 0 {
		t.Fatalf("tenant B lists %+v", ds)
	}
	d.Status, d.VerifiedAt, d.CheckedAt, d.LastCheck = store.DomainVerified, now, now, []byte(`{"x":1}`)
	if err := s.UpdateDomain(ctx, d); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetDomain(ctx, "example.org")
	if err != nil || got.Status != store.DomainVerified || !got.VerifiedAt.Equal(now) || string(got.LastCheck) != `{"x":1}` || got.TenantID != "A" {
		t.Fatalf("get: %+v %v", got, err)
	}
	k2 := k
	k2.Selector, k2.State = "s2", store.KeyPending
	if err := s.PutDKIMKeys(ctx, k2); err != nil {
		t.Fatal(err)
	}
	bad := k2
	bad.State = "bogus"
	if err := s.PutDKIMKeys(ctx, bad); err == nil {
		t.Fatal("a key state outside the schema was stored")
	}
	d.Status = "bogus"
	if err := s.UpdateDomain(ctx, d); err == nil {
		t.Fatal("a domain status outside the schema was stored")
	}
	if ks, _ := s.DKIMKeys(ctx, "example.org"); len(ks) != 2 || string(ks[0].PrivateKey) != "sealed" {
		t.Fatalf("keys %+v", ks)
	}
	if err := s.DeleteDKIMKey(ctx, "example.org", "s9"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("delete missing key: %v", err)
	}
	if err := s.DeleteDomain(ctx, "example.org"); err != nil {
		t.Fatal(err)
	}
	if ks, _ := s.DKIMKeys(ctx, ""); len(ks) != 0 {
		t.Fatalf("keys outlive their domain: %+v", ks)
	}
	if _, err := s.GetDomain(ctx, "example.org"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get deleted: %v", err)
	}
}
