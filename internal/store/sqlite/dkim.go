package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/posthorn/posthorn/internal/store"
)

// dkimMigration adds the signature a message gets after it was stored
// (internal/signer): dkim_domain names the signing domain, set at
// acceptance; dkim_signature stays empty until the signature is stored.
// A message with a domain and no signature is pending and must not be
// sent. The body itself is never rewritten: GetMessage prepends the field.
const dkimMigration = `ALTER TABLE messages ADD COLUMN dkim_domain TEXT NOT NULL DEFAULT '';
	ALTER TABLE messages ADD COLUMN dkim_signature BLOB NOT NULL DEFAULT x'';`

// SetDKIMSignatures implements store.Store.
func (s *Store) SetDKIMSignatures(ctx context.Context, sigs []store.DKIMSignature) error {
	if len(sigs) == 0 {
		return nil
	}
	return s.write(ctx, func(tx *sql.Tx, _ *stmts) error {
		st, err := tx.Prepare(`UPDATE messages SET dkim_signature = ?, size = size + ?
			WHERE id = ? AND dkim_domain != '' AND length(dkim_signature) = 0`)
		if err != nil {
			return fmt.Errorf("store DKIM signatures: %w", err)
		}
		defer st.Close()
		for _, sig := range sigs {
			if _, err := st.Exec(sig.Field, len(sig.Field), sig.MessageID); err != nil {
				return fmt.Errorf("store DKIM signature of %s: %w", sig.MessageID, err)
			}
		}
		return nil
	})
}
