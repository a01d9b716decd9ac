package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"

	"github.com/mattn/go-sqlite3"
)

// Backup writes a consistent copy of the database to path (which must not
// exist) while the store keeps running: SQLite's online backup API copies
// every page in one step inside one read transaction, so the copy is the
// database as of one commit, and writers are not blocked (WAL). The copy
// is a self-contained file (rollback journal mode, no -wal); Open turns it
// back to WAL.
func (s *Store) Backup(ctx context.Context, path string) (err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	f.Close()
	defer func() {
		if err != nil {
			os.Remove(path)
		}
	}()
	dst, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer dst.Close()
	dc, err := dst.Conn(ctx)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer dc.Close()
	sc, err := s.r.Conn(ctx)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer sc.Close()
	err = dc.Raw(func(d any) error {
		return sc.Raw(func(src any) error {
			dconn, ok1 := d.(*sqlite3.SQLiteConn)
			sconn, ok2 := src.(*sqlite3.SQLiteConn)
			if !ok1 || !ok2 {
				return errors.New("not a go-sqlite3 connection")
			}
			b, err := dconn.Backup("main", sconn, "main")
			if err != nil {
				return err
			}
			if _, err := b.Step(-1); err != nil {
				b.Finish()
				return err
			}
			return b.Finish()
		})
	})
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if _, err := dc.ExecContext(ctx, "PRAGMA journal_mode=DELETE"); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	return nil
}

// ErrSchemaTooNew is returned by Open and Inspect for a database written
// by a newer posthorn (migrations only go forward).
var ErrSchemaTooNew = errors.New("database schema is newer than this posthorn")

// SchemaVersion is the schema version this posthorn writes.
func SchemaVersion() int { return len(migrations) }

// Inspect checks a database file without changing it (a backup before a
// restore, `posthorn config check`): that SQLite finds it intact, and its
// schema version, which must not be newer than this posthorn's.
func Inspect(ctx context.Context, path string) (version int, err error) {
	if fi, err := os.Stat(path); err != nil {
		return 0, err
	} else if fi.Size() == 0 {
		return 0, fmt.Errorf("database %s is empty (0 bytes)", path)
	}
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro&_query_only=1")
	if err != nil {
		return 0, err
	}
	defer db.Close()
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return 0, fmt.Errorf("database %s: %w", path, err)
	}
	if version > len(migrations) {
		return version, schemaTooNew(version)
	}
	var res string
	if err := db.QueryRowContext(ctx, "PRAGMA quick_check").Scan(&res); err != nil {
		return version, fmt.Errorf("database %s: integrity check: %w", path, err)
	}
	if res != "ok" {
		return version, fmt.Errorf("database %s is damaged: %s", path, res)
	}
	return version, nil
}

func schemaTooNew(version int) error {
	return fmt.Errorf("%w: the database has schema version %d, this posthorn knows versions up to %d; "+
		"run the posthorn release that wrote it (or a newer one), or restore a backup taken with this release "+
		"(migrations only go forward, so a downgrade cannot read it)", ErrSchemaTooNew, version, len(migrations))
}
