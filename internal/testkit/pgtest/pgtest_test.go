package pgtest

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { Main(m) }

// TestServer: a database from NewDatabase takes writes and reads them back,
// and two calls give two separate databases.
func TestServer(t *testing.T) {
	ctx := context.Background()
	a, b := NewDatabase(t), NewDatabase(t)
	if a == b {
		t.Fatalf("same database twice: %s", a)
	}
	c, err := pgx.Connect(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "CREATE TABLE x (v int); INSERT INTO x VALUES (42)"); err != nil {
		t.Fatal(err)
	}
	var v int
	var fsync string
	if err := c.QueryRow(ctx, "SELECT v, current_setting('fsync') FROM x").Scan(&v, &fsync); err != nil || v != 42 || fsync != "on" {
		t.Fatalf("read back: %v %d fsync=%s", err, v, fsync)
	}
}
