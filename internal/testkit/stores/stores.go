// Package stores runs a test on a fresh store of each backend: SQLite,
// and PostgreSQL through pgtest (skipped when PostgreSQL is not
// installed, except in CI). A package using it calls pgtest.Main from its
// TestMain, so the shared server stops when its tests end.
package stores

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/store/postgres"
	"github.com/posthorn/posthorn/internal/store/sqlite"
	"github.com/posthorn/posthorn/internal/testkit/pgtest"
)

// Each runs test as the subtests "sqlite" and "postgres", each on a new
// empty store closed when the subtest ends.
func Each(t *testing.T, test func(t *testing.T, st store.Store)) {
	t.Run("sqlite", func(t *testing.T) {
		st, err := sqlite.Open(filepath.Join(t.TempDir(), "posthorn.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		test(t, st)
	})
	t.Run("postgres", func(t *testing.T) {
		st, err := postgres.Open(context.Background(), pgtest.NewDatabase(t))
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		test(t, st)
	})
}
