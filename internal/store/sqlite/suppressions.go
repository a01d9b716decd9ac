package sqlite

import (
	"database/sql"
	"fmt"

	"github.com/posthorn/posthorn/internal/store"
)

// suppressionsFolded gives address entries their folded value
// (store.FoldAddress: Go's Unicode lower case, which SQLite's ASCII-only
// lower() is not, hence a column filled from Go rather than an expression
// index) and a partial index on it, so that the entries of an address in
// any spelling are one index probe away: the suppression list keeps only
// hashes in memory and confirms a hit here.
func suppressionsFolded(tx *sql.Tx) error {
	if _, err := tx.Exec(`ALTER TABLE suppressions ADD COLUMN folded TEXT NOT NULL DEFAULT '';
		UPDATE suppressions SET folded = value WHERE kind = 'address'`); err != nil {
		return err
	}
	// Only the entries that are not already in lower case need Go.
	rows, err := tx.Query(`SELECT tenant_id, value FROM suppressions WHERE kind = 'address'`)
	if err != nil {
		return err
	}
	type key struct{ tenant, value string }
	var mixed []key
	for rows.Next() {
		var k key
		if err := rows.Scan(&k.tenant, &k.value); err != nil {
			rows.Close()
			return err
		}
		if store.FoldAddress(k.value) != k.value {
			mixed = append(mixed, k)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, k := range mixed {
		if _, err := tx.Exec(`UPDATE suppressions SET folded = ? WHERE tenant_id = ? AND kind = 'address' AND value = ?`,
			store.FoldAddress(k.value), k.tenant, k.value); err != nil {
			return fmt.Errorf("fold %s: %w", k.value, err)
		}
	}
	_, err = tx.Exec(`CREATE INDEX suppressions_folded ON suppressions(tenant_id, folded) WHERE kind = 'address'`)
	return err
}
