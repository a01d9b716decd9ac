package sqlite

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// TestNewerSchemaRefused: a database written by a newer posthorn (a higher
// schema version) is refused with a message that says what to do, and is
// left as it was (no migration runs backwards or over it).
func TestNewerSchemaRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "posthorn.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	db := rawOpen(t, path)
	if _, err := db.Exec(fmt.Sprintf("PRAGMA user_version = %d", SchemaVersion()+1)); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err = Open(path)
	if !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("Open of a newer schema: %v, want ErrSchemaTooNew", err)
	}
	for _, want := range []string{fmt.Sprintf("schema version %d", SchemaVersion()+1), "forward"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if _, err := Inspect(context.Background(), path); !errors.Is(err, ErrSchemaTooNew) {
		t.Errorf("Inspect: %v, want ErrSchemaTooNew", err)
	}
	db = rawOpen(t, path)
	defer db.Close()
	if v := version(t, db); v != SchemaVersion()+1 {
		t.Errorf("schema version changed to %d", v)
	}
}

// TestBackupCopy: Backup writes an intact, self-contained copy at the
// current schema version with the rows committed before it.
func TestBackupCopy(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(filepath.Join(dir, "posthorn.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if _, err := s.w.Exec("CREATE TABLE backup_probe (x INTEGER)"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.Exec("INSERT INTO backup_probe VALUES (42)"); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "copy.db")
	if err := s.Backup(ctx, out); err != nil {
		t.Fatal(err)
	}
	if err := s.Backup(ctx, out); err == nil {
		t.Error("Backup over an existing file succeeded")
	}
	v, err := Inspect(ctx, out)
	if err != nil || v != SchemaVersion() {
		t.Fatalf("Inspect copy: version %d, %v", v, err)
	}
	db := rawOpen(t, out)
	defer db.Close()
	var x int
	var mode string
	if err := db.QueryRow("SELECT x FROM backup_probe").Scan(&x); err != nil || x != 42 {
		t.Fatalf("copy lacks the row: %d %v", x, err)
	}
	if err := db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "delete" {
		t.Errorf("copy journal mode %q, %v; want delete (self-contained)", mode, err)
	}
}
