package suppress

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/store/sqlite"
)

func TestList(t *testing.T) {
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	l, err := Load(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range []string{"Bob@Example.COM", "blocked.test", "*@spam.test", "sales-*@*", "/^admin[0-9]+@/"} {
		s, err := Parse("t1", in, Manual)
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if err := l.Add(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	hold, _ := Parse("t1", "held@x.test", OnHold)
	hold.ExpiresAt = time.Now().Add(-time.Minute) // already expired
	l.Add(ctx, hold)
	for addr, want := range map[string]bool{
		"Bob@example.com": true, "bob@example.com": false, // local part as given
		"anyone@blocked.test": true, "x@spam.test": true, "sales-eu@corp.test": true, "admin7@corp.test": true,
		"someone@else.test": false, "held@x.test": false,
	} {
		if _, got := l.Check("t1", addr); got != want {
			t.Errorf("Check(%s) = %v, want %v", addr, got, want)
		}
	}
	if _, got := l.Check("t2", "x@spam.test"); got {
		t.Error("another tenant's list applied")
	}
	// Entries survive a reload; removal applies at once.
	l2, err := Load(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := l2.Check("t1", "x@spam.test"); !ok {
		t.Fatal("pattern lost on reload")
	}
	if ok, err := l2.Remove(ctx, "t1", "*@spam.test"); !ok || err != nil {
		t.Fatalf("remove: %v %v", ok, err)
	}
	if _, ok := l2.Check("t1", "x@spam.test"); ok {
		t.Fatal("removed pattern still applies")
	}
	for _, bad := range []string{"/[/", "not a domain!", "a@"} {
		if _, err := Parse("t1", bad, Manual); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
	if _, err := Parse("t1", "a@b.test", "whatever"); err == nil {
		t.Error("unknown reason accepted")
	}
}
