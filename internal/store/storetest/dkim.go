package storetest

import (
	"context"
	"testing"

	"github.com/posthorn/posthorn/internal/store"
)

// testDKIMSignatures: a message stored with a DKIMDomain is pending until
// its signature is stored; then it is read with the signature first and
// its size grown, and a second signature does not replace the first.
func testDKIMSignatures(t *testing.T, s store.Store) {
	ctx := context.Background()
	signed, plain := NewTestMessage("m1", "a@one.test"), NewTestMessage("m2", "b@two.test")
	signed.Message.DKIMDomain = "sender.test"
	if err := s.InsertMessages(ctx, []*store.NewMessage{signed, plain}); err != nil {
		t.Fatal(err)
	}
	get := func(id string) *store.Message {
		t.Helper()
		m, err := s.GetMessage(ctx, "t1", id, true)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	if m := get("m1"); !m.DKIMPending || m.DKIMDomain != "sender.test" || string(m.Body) != "hi\r\n" {
		t.Fatalf("before signing: pending %v domain %q body %q", m.DKIMPending, m.DKIMDomain, m.Body)
	}
	if m := get("m2"); m.DKIMPending || m.DKIMDomain != "" {
		t.Fatalf("message without DKIM domain: pending %v domain %q", m.DKIMPending, m.DKIMDomain)
	}
	field := "DKIM-Signature: v=1; a=ed25519-sha256; d=sender.test; s=s1; b=AAAA\r\n"
	err := s.SetDKIMSignatures(ctx, []store.DKIMSignature{{MessageID: "m1", Field: []byte(field)},
		{MessageID: "m2", Field: []byte("DKIM-Signature: x\r\n")}, {MessageID: "unknown", Field: []byte("x")}})
	if err != nil {
		t.Fatal(err)
	}
	m := get("m1")
	if m.DKIMPending || string(m.Body) != field+"hi\r\n" || m.Size != 5+len(field) {
		t.Fatalf("after signing: pending %v size %d body %q", m.DKIMPending, m.Size, m.Body)
	}
	if m, err := s.GetMessage(ctx, "t1", "m1", false); err != nil || m.DKIMPending || m.Body != nil {
		t.Fatalf("without body: %+v %v", m, err)
	}
	if m := get("m2"); string(m.Body) != "hi\r\n" {
		t.Fatalf("a message without DKIM domain took a signature: %q", m.Body)
	}
	if err := s.SetDKIMSignatures(ctx, []store.DKIMSignature{{MessageID: "m1", Field: []byte("DKIM-Signature: second\r\n")}}); err != nil {
		t.Fatal(err)
	}
	if m := get("m1"); string(m.Body) != field+"hi\r\n" {
		t.Fatalf("second signature replaced the first: %q", m.Body)
	}
}
