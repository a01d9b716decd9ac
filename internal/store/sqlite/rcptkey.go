package sqlite

import (
	"database/sql"
	"fmt"

	"github.com/posthorn/posthorn/internal/store"
)

// Recipient lookups go through rcpt_key, a 64-bit hash (FNV-1a) of the
// folded address (store.FoldAddress, as suppressions fold), not through
// an index on the address text. Recipients are random keys: each one of a
// batch lands on its own leaf page of a recipient index, so a commit of
// many-recipient mail wrote about a 4 KiB page per recipient per index.
// An 8-byte key instead of a ~30-byte address puts three to four times
// as many entries on a page (fewer pages to split and to write) and makes
// each comparison an integer one. A lookup is an equality on the key,
// then the exact address (recipient = ?) as before: a hash collision, or
// another spelling of the address, is filtered out there, so the results
// are those of the old index. Folding only widens what shares a key.
// Substring searches (DeliveryFilter.Recipient without '@') never used an
// index and still do not.
//
// Only deliveries carry a recipient index that is written for every
// recipient. An event of a delivery (nearly all events with a recipient)
// is found through its delivery: events_delivery, on delivery_id, which
// grows at its end (new deliveries, and outcomes of recent ones) rather
// than at a random page. events.rcpt_key is set only for events with a
// recipient and no delivery (RecordEvent may write such); it is NULL
// otherwise, and the partial index events_rcpt holds only those.

// rcptKey is the rcpt_key of addr; nil (NULL) for no address.
func rcptKey(addr string) any {
	if addr == "" {
		return nil
	}
	// FNV-1a, inline: no allocation per recipient.
	const offset, prime = 14695981039346656037, 1099511628211
	h := uint64(offset)
	folded := store.FoldAddress(addr)
	for i := 0; i < len(folded); i++ {
		h = (h ^ uint64(folded[i])) * prime
	}
	return int64(h)
}

// eventRcptKey is the rcpt_key column of e: nil unless e has a recipient
// and no delivery.
func eventRcptKey(e *store.Event) any {
	if e.DeliveryID != 0 {
		return nil
	}
	return rcptKey(e.Recipient)
}

// rcptKeys (a migration) adds rcpt_key to deliveries and events, fills it
// for the rows there are, and replaces the address indexes by the key's
// and events_delivery.
func rcptKeys(tx *sql.Tx) error {
	if _, err := tx.Exec(`ALTER TABLE deliveries ADD COLUMN rcpt_key INTEGER;
		ALTER TABLE events ADD COLUMN rcpt_key INTEGER;
		DROP INDEX deliveries_recipient;
		DROP INDEX events_recipient;`); err != nil {
		return err
	}
	if err := fillRcptKeys(tx, "deliveries", ""); err != nil {
		return fmt.Errorf("recipient keys of deliveries: %w", err)
	}
	if err := fillRcptKeys(tx, "events", " AND delivery_id = 0"); err != nil {
		return fmt.Errorf("recipient keys of events: %w", err)
	}
	// Built after the fill: one sort instead of a random insert a row.
	_, err := tx.Exec(`CREATE INDEX deliveries_rcpt ON deliveries(rcpt_key);
		CREATE INDEX events_rcpt ON events(rcpt_key) WHERE rcpt_key IS NOT NULL;
		CREATE INDEX events_delivery ON events(delivery_id);`)
	return err
}

// fillRcptKeys sets rcpt_key in every row of table with a recipient (and
// the condition and), walking it by rowid a chunk at a time (the hash is
// Go's, not SQLite's).
func fillRcptKeys(tx *sql.Tx, table, and string) error {
	upd, err := tx.Prepare(`UPDATE ` + table + ` SET rcpt_key = ? WHERE id = ?`)
	if err != nil {
		return err
	}
	defer upd.Close()
	type row struct {
		id   int64
		rcpt string
	}
	var after int64
	for {
		rows, err := tx.Query(`SELECT id, recipient FROM `+table+` WHERE id > ? AND recipient != ''`+and+` ORDER BY id LIMIT 10000`, after)
		if err != nil {
			return err
		}
		var chunk []row
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.id, &r.rcpt); err != nil {
				rows.Close()
				return err
			}
			chunk = append(chunk, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, r := range chunk {
			if _, err := upd.Exec(rcptKey(r.rcpt), r.id); err != nil {
				return err
			}
		}
		if len(chunk) < 10000 {
			return nil
		}
		after = chunk[len(chunk)-1].id
	}
}
