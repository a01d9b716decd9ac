package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/store"
)

// Credentials checks accounts, the new key and user fields, and removals:
// a removal through another tenant is ErrNotFound and removes nothing,
// removing an account removes the keys it made, unknown roles are
// refused. Backends run it beside Run.
func Credentials(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	u := store.SMTPUser{Username: "u", TenantID: "A", PasswordHash: "h", DefaultLane: store.LaneNormal, Domains: []string{"a.test", "b.test"}, CreatedAt: now}
	if err := s.CreateSMTPUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetSMTPUser(ctx, "u"); err != nil || len(got.Domains) != 2 || got.Domains[1] != "b.test" {
		t.Fatalf("user domains: %+v %v", got, err)
	}
	if err := s.SetSMTPUserPassword(ctx, "u", "h2"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetSMTPUser(ctx, "u"); got.PasswordHash != "h2" {
		t.Fatalf("password hash not replaced: %q", got.PasswordHash)
	}
	if err := s.DeleteSMTPUser(ctx, "B", "u"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("delete through another tenant: %v", err)
	}
	if err := s.DeleteSMTPUser(ctx, "A", "u"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetSMTPUser(ctx, "u"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted user: %v", err)
	}

	k := store.APIKey{ID: "k1", TenantID: "A", Name: "n", Hash: "x", Scopes: []string{"read"}, CreatedAt: now, Domains: []string{"a.test"},
		Sandbox: true, ExpiresAt: now.Add(time.Hour), CreatedBy: "p@a.test"}
	if err := s.CreateAPIKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	if err := s.TouchAPIKey(ctx, "k1", now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetAPIKey(ctx, "k1")
	if err != nil || !got.Sandbox || got.Prefix != "ph_test_k1" || !got.ExpiresAt.Equal(k.ExpiresAt) || !got.LastUsedAt.Equal(now.Add(time.Minute)) ||
		got.CreatedBy != "p@a.test" || len(got.Domains) != 1 {
		t.Fatalf("key: %+v %v", got, err)
	}
	if ks, _ := s.ListAPIKeys(ctx, "A"); len(ks) != 1 || ks[0].Hash != "" || ks[0].Prefix != "ph_test_k1" {
		t.Fatalf("listed keys (hash must not be listed): %+v", ks)
	}
	if err := s.DeleteAPIKey(ctx, "B", "k1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("delete key through another tenant: %v", err)
	}

	a := store.Account{Email: "P@A.test", TenantID: "A", Role: "viewer", PasswordHash: "ph", CreatedAt: now}
	if err := s.CreateAccount(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateAccount(ctx, a); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("duplicate account: %v", err)
	}
	bad := a
	bad.Email, bad.Role = "q@a.test", "boss"
	if err := s.CreateAccount(ctx, bad); err == nil {
		t.Fatal("unknown role stored")
	}
	if got, err := s.GetAccount(ctx, "p@a.test"); err != nil || got.Email != "p@a.test" || got.Role != "viewer" || got.PasswordHash != "ph" {
		t.Fatalf("account: %+v %v", got, err)
	}
	if err := s.SetAccountPassword(ctx, "p@a.test", "ph2"); err != nil {
		t.Fatal(err)
	}
	if as, _ := s.ListAccounts(ctx, "B"); len(as) != 0 {
		t.Fatalf("tenant B lists %+v", as)
	}
	if as, _ := s.ListAccounts(ctx, ""); len(as) != 1 || as[0].PasswordHash != "" {
		t.Fatalf("all accounts (hash must not be listed): %+v", as)
	}
	if err := s.DeleteAccount(ctx, "p@a.test"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetAPIKey(ctx, "k1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the account's key survived it: %v", err)
	}
	if err := s.DeleteAccount(ctx, "p@a.test"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("delete missing account: %v", err)
	}
}
