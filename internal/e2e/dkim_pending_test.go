package e2e

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/domain"
	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/store/sqlite"
)

// TestDKIMPendingSignedAfterRestart: a message committed but not yet
// signed when posthorn stopped (the window between the 250 and the
// background signature, internal/dkimqueue) is signed before its delivery
// after the next start, never sent unsigned: dkimpy verifies what the MX
// received. The pending message is written into the store directly while
// posthorn is down, exactly as accept leaves it.
func TestDKIMPendingSignedAfterRestart(t *testing.T) {
	py := dkimPython(t)
	w := newWorld(t, Options{}, "127.0.0.2")
	w.domain("dest.test", "127.0.0.2")
	in := w.in
	var ed domain.Info
	in.CLI(&ed, "domain", "add", "ed.example", "--algorithm", "ed25519", "--unverified-ok")
	rec := dkimRecord(t, &ed)
	in.Stop()

	st, err := sqlite.Open(filepath.Join(in.Dir, "posthorn.db"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	body := "From: App <app@ed.example>\r\nTo: rcpt@dest.test\r\nSubject: pending at the crash\r\n" +
		"Date: " + now.Format(time.RFC1123Z) + "\r\nMessage-ID: <pending-1@ed.example>\r\n\r\nsigned after the restart\r\n"
	m := &store.Message{ID: "01PENDINGDKIM0000000000000", TenantID: in.Creds.TenantID, Sender: "app@ed.example", Lane: store.LaneNormal,
		Source: "smtp", Size: len(body), CreatedAt: now, Body: []byte(body), DKIMDomain: "ed.example", DKIMPending: true}
	nm := &store.NewMessage{Message: m, Deliveries: []*store.Delivery{{Recipient: "rcpt@dest.test", Domain: "dest.test",
		Lane: store.LaneNormal, State: store.Queued, CreatedAt: now, NextAttemptAt: now, ExpiresAt: now.Add(time.Hour)}}}
	if err := st.InsertMessages(context.Background(), []*store.NewMessage{nm}); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	in.Restart()
	got := waitMessages(t, w.mx["127.0.0.2"], 1)[0]
	if !verifyDKIM(t, py, got.Data, map[string]string{rec.Name: rec.Value}) {
		t.Fatalf("the message pending at the restart was not signed:\n%s", got.Data)
	}
	if d := in.Show(m.ID); d.Message.Size <= len(body) {
		t.Fatalf("stored size %d: the signature was not stored", d.Message.Size)
	}
}
