package postgres

import (
	"context"
	"fmt"

	"github.com/posthorn/posthorn/internal/store"
)

// SetDKIMSignatures implements store.Store: the signature of a message
// stored with a signing domain is kept beside its body (GetMessage
// prepends it); a message signed already keeps its first signature.
func (s *Store) SetDKIMSignatures(ctx context.Context, sigs []store.DKIMSignature) error {
	if len(sigs) == 0 {
		return nil
	}
	ids := make([]string, len(sigs))
	fields := make([][]byte, len(sigs))
	for i, sig := range sigs {
		ids[i], fields[i] = sig.MessageID, sig.Field
	}
	// One statement for the batch: the signer pool stores up to hundreds
	// at once, inside the group commit.
	return s.write(ctx, func(ctx context.Context, w *wtx) error {
		_, err := w.tx.Exec(ctx, `UPDATE messages m SET dkim_signature = v.field, size = m.size + length(v.field)
			FROM unnest($1::text[], $2::bytea[]) AS v(id, field)
			WHERE m.id = v.id AND m.dkim_domain <> '' AND length(m.dkim_signature) = 0`, ids, fields)
		if err != nil {
			return fmt.Errorf("store DKIM signatures: %w", err)
		}
		return nil
	})
}
