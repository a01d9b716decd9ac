package sqlite

import (
	"context"
	"path/filepath"
	"testing"
)

// TestMigrationAddsAttemptTLSColumns: attempts written before the TLS
// columns existed read back with them empty after the upgrade.
func TestMigrationAddsAttemptTLSColumns(t *testing.T) {
	path := filepath.Join(t.TempDir(), "posthorn.db")
	db := openAt(t, path, tlsColumnsMigration) // the version before the TLS columns
	if _, err := db.Exec(`INSERT INTO attempts (delivery_id, message_id, n, started_at, duration_us, tls, class) VALUES (1, 'm-old', 1, 0, 0, 1, 'delivered')`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	atts, err := s.Attempts(context.Background(), "m-old")
	if err != nil || len(atts) != 1 || !atts[0].TLS || atts[0].TLSDetail.Version != "" || atts[0].TLSDetail.Policy != "" {
		t.Fatalf("old attempt after the upgrade: %+v %v", atts, err)
	}
}
