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
	return s.write(ctx, func(ctx context.Context, w *wtx) error {
		for _, sig := range sigs {
			if _, err := w.tx.Exec(ctx, `UPDATE messages SET dkim_signature = $1, size = size + $2
				WHERE id = $3 AND dkim_domain <> '' AND length(dkim_signature) = 0`, sig.Field, len(sig.Field), sig.MessageID); err != nil {
				return fmt.Errorf("store DKIM signature of %s: %w", sig.MessageID, err)
			}
		}
		return nil
	})
}
