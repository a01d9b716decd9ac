package sqlite

import (
	"database/sql"
	"fmt"
	"regexp"
	"strings"
)

// deliveryChecks (migration 3) makes the database itself refuse a
// delivery with an unknown state or lane. The lists are written out, not
// built from store.AllStates: a released migration never changes, and a
// new state needs a new migration (TestSchemaChecksMatchStore checks the
// latest schema against the store package).
var deliveryChecks = rebuildWithChecks("deliveries",
	`CHECK (state IN ('scheduled','queued','sending','deferred','held','delivered','bounced','soft_bounced','dead_letter','suppressed','cancelled'))`,
	`CHECK (lane IN ('high','normal','low'))`)

var createTableRE = regexp.MustCompile(`^(?i)CREATE\s+TABLE\s+("?)(\w+)("?)\s*\(`)

// rebuildWithChecks returns a migration that adds table constraints to
// table. SQLite cannot add a CHECK to an existing table, so it rebuilds
// it (SQLite's documented way): create the new table from the current
// definition plus the constraints, copy every row, drop the old table,
// rename the new one, and recreate the old table's indexes and triggers
// from their stored SQL. Columns added by earlier migrations are kept
// because the definition is read from the database, not written here.
func rebuildWithChecks(table string, checks ...string) migration {
	return func(tx *sql.Tx) error {
		var def string
		if err := tx.QueryRow(`SELECT sql FROM sqlite_master WHERE type='table' AND name=?`, table).Scan(&def); err != nil {
			return fmt.Errorf("read definition of %s: %w", table, err)
		}
		m := createTableRE.FindStringSubmatchIndex(def)
		end := strings.LastIndex(def, ")")
		if m == nil || end < 0 || !strings.EqualFold(def[m[4]:m[5]], table) {
			return fmt.Errorf("unexpected definition of %s: %.80s", table, def)
		}
		tmp := table + "_rebuild"
		newDef := def[:m[0]] + "CREATE TABLE " + tmp + " (" + strings.TrimRight(def[m[1]:end], " \t\n") + ",\n\t" + strings.Join(checks, ",\n\t") + "\n)" + def[end+1:]

		rows, err := tx.Query(`SELECT name, sql FROM sqlite_master WHERE tbl_name=? AND type IN ('index','trigger') AND sql IS NOT NULL
			ORDER BY type, name`, table)
		if err != nil {
			return fmt.Errorf("read indexes and triggers of %s: %w", table, err)
		}
		var recreate []string
		for rows.Next() {
			var name, q string
			if err := rows.Scan(&name, &q); err != nil {
				rows.Close()
				return err
			}
			recreate = append(recreate, q)
		}
		if err := rows.Close(); err != nil {
			return err
		}

		var bad int
		checkOnly := "SELECT count(*) FROM " + table + " WHERE NOT (" + strings.Join(checkExprs(checks), " AND ") + ")"
		if err := tx.QueryRow(checkOnly).Scan(&bad); err != nil {
			return fmt.Errorf("check rows of %s: %w", table, err)
		}
		if bad > 0 {
			return fmt.Errorf("%d rows of %s break the new constraints %s; nothing was changed", bad, table, strings.Join(checks, ", "))
		}

		steps := []string{
			newDef,
			"INSERT INTO " + tmp + " SELECT * FROM " + table,
			"DROP TABLE " + table,
			"ALTER TABLE " + tmp + " RENAME TO " + table,
		}
		for _, q := range append(steps, recreate...) {
			if _, err := tx.Exec(q); err != nil {
				return fmt.Errorf("rebuild %s: %.60s: %w", table, q, err)
			}
		}
		return nil
	}
}

// checkExprs strips "CHECK (...)" down to the expressions.
func checkExprs(checks []string) []string {
	out := make([]string, len(checks))
	for i, c := range checks {
		out[i] = "(" + strings.TrimPrefix(c, "CHECK ") + ")"
	}
	return out
}
