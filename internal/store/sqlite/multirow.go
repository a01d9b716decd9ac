package sqlite

import (
	"database/sql"
	"fmt"
	"strings"
)

// multiInsert writes many rows of one table with multi-row INSERTs: a
// statement per row count of chunkSizes, prepared once on the writer, so
// 100 rows cost 4 statements (64+16+16+4) instead of 100. Per row this
// saves the statement's round trip through database/sql and cgo and its
// setup in SQLite (about a third of an insert's CPU on the hot tables);
// the B-tree work is the same.
//
// Row IDs: the rows get no explicit rowid, so SQLite gives each one more
// than the largest rowid in the table ("the usual algorithm" of
// https://sqlite.org/autoinc.html, always taken below the maximum rowid),
// in the order of the VALUES list: a statement's rows are last-n+1 .. last,
// where last is its last_insert_rowid. exec checks that the table's rowids
// are not near the maximum, where SQLite would pick random ones.
type multiInsert struct {
	byN map[int]*sql.Stmt
}

var chunkSizes = [...]int{64, 16, 4, 1}

// maxRowID is where SQLite stops counting up and picks random rowids.
const maxRowID = 1<<63 - 1

func prepareMulti(db *sql.DB, head string, cols int) (*multiInsert, error) {
	m := &multiInsert{byN: map[int]*sql.Stmt{}}
	for _, n := range chunkSizes {
		s, err := db.Prepare(multiRowSQL(head, cols, n))
		if err != nil {
			m.close()
			return nil, fmt.Errorf("prepare %d-row insert: %w", n, err)
		}
		m.byN[n] = s
	}
	return m, nil
}

// multiRowSQL is head followed by n rows of cols placeholders.
func multiRowSQL(head string, cols, n int) string {
	row := "(" + placeholders(cols) + ")"
	return head + strings.Repeat(","+row, n)[1:]
}

func (m *multiInsert) close() {
	for _, s := range m.byN {
		s.Close()
	}
}

// exec inserts len(ids) rows whose values are args (cols values a row,
// in order) and fills ids with their rowids.
func (m *multiInsert) exec(tx *sql.Tx, args []any, ids []int64) error {
	rows := len(ids)
	if rows == 0 {
		return nil
	}
	cols := len(args) / rows
	done := 0
	for done < rows {
		n := 0
		for _, k := range chunkSizes {
			if k <= rows-done {
				n = k
				break
			}
		}
		res, err := tx.Stmt(m.byN[n]).Exec(args[done*cols : (done+n)*cols]...)
		if err != nil {
			return err
		}
		last, err := res.LastInsertId()
		if err != nil {
			return err
		}
		if last >= maxRowID-1<<20 {
			return fmt.Errorf("rowid %d is too close to the maximum to count on consecutive rowids", last)
		}
		for i := 0; i < n; i++ {
			ids[done+i] = last - int64(n-1-i)
		}
		done += n
	}
	return nil
}

// multiStmt is a statement over several rows (an UPDATE of a list of
// deliveries), prepared once for each row count of updateSizes: like
// multiInsert, a batch of n rows costs a few statements instead of n
// (each statement has a fixed cost in SQLite: opening a cursor on the
// table and on each index it writes, and binding through database/sql
// and cgo).
type multiStmt struct {
	byN map[int]*sql.Stmt
}

var updateSizes = [...]int{64, 16, 8, 4, 2}

// prepareStmts prepares build(n) for each n of updateSizes.
func prepareStmts(db *sql.DB, build func(n int) string) (*multiStmt, error) {
	m := &multiStmt{byN: map[int]*sql.Stmt{}}
	for _, n := range updateSizes {
		s, err := db.Prepare(build(n))
		if err != nil {
			m.close()
			return nil, fmt.Errorf("prepare %d-row statement: %w", n, err)
		}
		m.byN[n] = s
	}
	return m, nil
}

func (m *multiStmt) close() {
	for _, s := range m.byN {
		s.Close()
	}
}

// chunks splits rows rows into runs of the prepared sizes, largest first,
// and calls fn for each run [from, from+n) with its statement; a run of
// one row gets a nil statement (the caller's single-row statement).
func (m *multiStmt) chunks(tx *sql.Tx, rows int, fn func(s *sql.Stmt, from, n int) error) error {
	for done := 0; done < rows; {
		n := 1
		for _, k := range updateSizes {
			if k <= rows-done {
				n = k
				break
			}
		}
		var s *sql.Stmt
		if n > 1 {
			s = tx.Stmt(m.byN[n])
		}
		if err := fn(s, done, n); err != nil {
			return err
		}
		done += n
	}
	return nil
}
