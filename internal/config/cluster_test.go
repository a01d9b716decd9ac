package config

import (
	"strings"
	"testing"
)

// TestStoreAndNode: store takes "" or a PostgreSQL URL (a password is
// not echoed in the error); the default node name differs per data
// directory and stays the same for one.
func TestStoreAndNode(t *testing.T) {
	for _, ok := range []string{"", "postgres://u@db/posthorn", "postgresql://u:pw@db:5432/posthorn?sslmode=require"} {
		c := Default()
		c.Store = ok
		if err := c.Validate(); err != nil {
			t.Errorf("store %q refused: %v", ok, err)
		}
	}
	c := Default()
	c.Store = "mysql://u:secret@db/posthorn"
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "postgres://") || strings.Contains(err.Error(), "secret") {
		t.Fatalf("store mysql://: %v", err)
	}
	a, b := Default(), Default()
	a.DataDir, b.DataDir = "/var/lib/posthorn-a", "/var/lib/posthorn-b"
	if a.Node() == b.Node() || a.Node() != a.Node() {
		t.Fatalf("node names %q and %q", a.Node(), b.Node())
	}
	a.NodeName = "mx-1"
	if a.Node() != "mx-1" {
		t.Fatalf("node_name ignored: %q", a.Node())
	}
}
