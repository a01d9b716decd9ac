package verp

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
)

func TestVERP(t *testing.T) {
	key, err := LoadKey(filepath.Join(t.TempDir(), "verp.key"))
	if err != nil {
		t.Fatal(err)
	}
	s := New(key, "Bounces.Example.COM", 30*24*time.Hour)
	id := ulid.Make().String()
	rp, err := s.ReturnPath(id)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(rp, Prefix) || !strings.HasSuffix(rp, "@bounces.example.com") || len(strings.Split(rp, "@")[0]) > 64 {
		t.Fatalf("return path %q", rp)
	}
	if got, err := s.Check(rp); err != nil || got != id {
		t.Fatalf("check: %s %v", got, err)
	}
	if got, err := s.Check(strings.ToUpper(rp)); err != nil || got != id {
		t.Fatalf("case-insensitive check: %s %v", got, err)
	}
	// A flipped character, another key, another domain, no prefix.
	local := strings.Split(rp, "@")[0]
	mid := len(Prefix) + 10 // a character inside the token (the last one carries padding bits)
	c := "a"
	if local[mid] == 'a' {
		c = "b"
	}
	flipped := local[:mid] + c + local[mid+1:] + "@bounces.example.com"
	if _, err := s.Check(flipped); err != ErrForged {
		t.Fatalf("forged: %v", err)
	}
	other := New([]byte(strings.Repeat("k", 32)), "bounces.example.com", time.Hour)
	if _, err := other.Check(rp); err != ErrForged {
		t.Fatalf("other key: %v", err)
	}
	if _, err := s.Check(local + "@other.example"); err != ErrWrongDom {
		t.Fatalf("wrong domain: %v", err)
	}
	if _, err := s.Check("postmaster@bounces.example.com"); err != ErrNotVERP {
		t.Fatalf("not verp: %v", err)
	}
	old := New(key, "bounces.example.com", 24*time.Hour)
	old.now = func() time.Time { return time.Now().Add(-72 * time.Hour) }
	oldRP, _ := old.ReturnPath(id)
	if _, err := New(key, "bounces.example.com", 24*time.Hour).Check(oldRP); err != ErrExpired {
		t.Fatalf("expired: %v", err)
	}
	k2, _ := LoadKey(filepath.Join(t.TempDir(), "x"))
	if len(k2) != 32 {
		t.Fatal("key size")
	}
}
