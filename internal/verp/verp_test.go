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
	rp, err := s.ReturnPath(id, 42)
	if err != nil {
		t.Fatal(err)
	}
	want := Ref{MessageID: id, DeliveryID: 42}
	if !strings.HasPrefix(rp, Prefix) || !strings.HasSuffix(rp, "@bounces.example.com") || len(strings.Split(rp, "@")[0]) > 64 {
		t.Fatalf("return path %q", rp)
	}
	if got, err := s.Check(rp); err != nil || got != want {
		t.Fatalf("check: %+v %v", got, err)
	}
	if got, err := s.Check(strings.ToUpper(rp)); err != nil || got != want {
		t.Fatalf("case-insensitive check: %+v %v", got, err)
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
	oldRP, _ := old.ReturnPath(id, 1)
	if _, err := New(key, "bounces.example.com", 24*time.Hour).Check(oldRP); err != ErrExpired {
		t.Fatalf("expired: %v", err)
	}
	k2, _ := LoadKey(filepath.Join(t.TempDir(), "x"))
	if len(k2) != 32 {
		t.Fatal("key size")
	}
}

// TestDeliveryTokens: each delivery of a message has its own return path,
// which names that delivery and no other; tokens of the old message-level
// form still verify, naming no delivery.
func TestDeliveryTokens(t *testing.T) {
	s := New([]byte(strings.Repeat("k", 32)), "b.test", 30*24*time.Hour)
	id := ulid.Make().String()
	seen := map[string]bool{}
	for _, did := range []int64{1, 2, 127, 128, 1 << 20, 1<<49 - 1} {
		rp, err := s.ReturnPath(id, did)
		if err != nil {
			t.Fatalf("delivery %d: %v", did, err)
		}
		if local := strings.Split(rp, "@")[0]; len(local) > 64 {
			t.Fatalf("delivery %d: local part of %d characters", did, len(local))
		}
		if seen[rp] {
			t.Fatalf("delivery %d: return path %s repeated", did, rp)
		}
		seen[rp] = true
		if got, err := s.Check(rp); err != nil || got != (Ref{MessageID: id, DeliveryID: did}) || got.Legacy() {
			t.Fatalf("delivery %d: %+v %v", did, got, err)
		}
	}
	if _, err := s.ReturnPath(id, 0); err == nil {
		t.Fatal("delivery 0 accepted")
	}
	legacy, err := s.MessageReturnPath(id)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.Check(legacy); err != nil || got != (Ref{MessageID: id}) || !got.Legacy() {
		t.Fatalf("message-level token: %+v %v", got, err)
	}
	// A delivery token cut down to the legacy length does not verify.
	rp, _ := s.ReturnPath(id, 5)
	local := strings.Split(rp, "@")[0]
	if _, err := s.Check(local[:len(Prefix)+45]); err != ErrForged {
		t.Fatalf("truncated token: %v", err)
	}
}
