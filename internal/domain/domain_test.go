package domain

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/testkit"
	"github.com/posthorn/posthorn/internal/testkit/pgtest"
	"github.com/posthorn/posthorn/internal/testkit/stores"
)

// The tests run on each store backend (testkit/stores).
func TestMain(m *testing.M) { pgtest.Main(m) }

func newService(t *testing.T, st store.Store, dns *testkit.DNS, bounce string) *Service {
	t.Helper()
	dir := t.TempDir()
	seal, err := LoadSealer(filepath.Join(dir, "dkim.key"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Hostname: "mail.posthorn.test", BounceDomain: bounce, DNSServer: dns.Addr()}, st, seal,
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

func record(t *testing.T, in *Info, purpose, selector string) Record {
	t.Helper()
	for _, r := range in.Records {
		if r.Purpose == purpose && (selector == "" || r.Selector == selector) {
			return r
		}
	}
	t.Fatalf("no %s record (selector %q) in %+v", purpose, selector, in.Records)
	return Record{}
}

// TestAddRecordsAndOwnership: add prints the records to publish; a
// domain belongs to one tenant; another tenant sees it as absent; a
// pending domain does not send unless unverified-ok.
func TestAddRecordsAndOwnership(t *testing.T) { stores.Each(t, testAddRecordsAndOwnership) }

func testAddRecordsAndOwnership(t *testing.T, st store.Store) {
	ctx := context.Background()
	s := newService(t, st, testkit.StartDNS(t), "bounces.posthorn.test")
	in, err := s.Add(ctx, AddRequest{TenantID: "A", Domain: "Example.ORG.", Selector: "s1"})
	if err != nil {
		t.Fatal(err)
	}
	if in.Domain != "example.org" || in.Selector != "s1" || in.Algorithm != "rsa" || in.Status != store.DomainPending {
		t.Fatalf("added %+v", in)
	}
	dk := record(t, in, PurposeDKIM, "s1")
	if dk.Type != "TXT" || dk.Name != "s1._domainkey.example.org" || !strings.HasPrefix(dk.Value, "v=DKIM1; k=rsa; p=MII") {
		t.Fatalf("dkim record %+v", dk)
	}
	if r := record(t, in, PurposeSPF, ""); r.Name != "example.org" || r.Value != "v=spf1 a:mail.posthorn.test ~all" {
		t.Fatalf("spf %+v", r)
	}
	if r := record(t, in, PurposeDMARC, ""); r.Name != "_dmarc.example.org" || !strings.HasPrefix(r.Value, "v=DMARC1; p=none; rua=mailto:") {
		t.Fatalf("dmarc %+v", r)
	}
	if r := record(t, in, PurposeReturnPath, ""); r.Type != "MX" || r.Name != "bounces.posthorn.test" || r.Value != "10 mail.posthorn.test." {
		t.Fatalf("return path %+v", r)
	}
	if _, err := s.Add(ctx, AddRequest{TenantID: "B", Domain: "example.org"}); !errors.Is(err, store.ErrConflict) || !strings.Contains(err.Error(), "another tenant") {
		t.Fatalf("second tenant: %v", err)
	}
	if _, err := s.Get(ctx, "B", "example.org"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("other tenant's get: %v", err)
	}
	if err := s.Remove(ctx, "B", "example.org"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("other tenant's remove: %v", err)
	}
	if _, ok := s.Sending("A", "example.org"); ok {
		t.Fatal("a pending domain sends")
	}
	if _, err := s.Add(ctx, AddRequest{TenantID: "A", Domain: "early.test", Algorithm: "ed25519", UnverifiedOK: true}); err != nil {
		t.Fatal(err)
	}
	if sign, ok := s.Sending("A", "early.test"); !ok || sign == nil {
		t.Fatal("an unverified-ok domain does not send and sign")
	}
	if _, ok := s.Sending("B", "early.test"); ok {
		t.Fatal("another tenant may send as early.test")
	}
	if _, ok := s.Sending("A", "sub.early.test"); ok {
		t.Fatal("a subdomain is allowed without being added")
	}
	for _, bad := range []string{"", "nodot", "[127.0.0.1]", "a b.test"} {
		var ie *InputError
		if _, err := s.Add(ctx, AddRequest{TenantID: "A", Domain: bad}); !errors.As(err, &ie) {
			t.Errorf("domain %q: %v", bad, err)
		}
	}
	var ie *InputError
	if _, err := s.Add(ctx, AddRequest{TenantID: "A", Domain: "x.test", Algorithm: "dsa"}); !errors.As(err, &ie) {
		t.Errorf("algorithm dsa: %v", err)
	}
}

func statuses(rep *Report) map[string]string {
	m := map[string]string{}
	for _, r := range rep.Records {
		m[r.Purpose] = r.Status
	}
	return m
}

// TestCheckReportsEachRecord: a correct, a missing and a wrong record are
// each reported as such; the domain is verified once the DKIM record is
// right, and the report is kept.
func TestCheckReportsEachRecord(t *testing.T) { stores.Each(t, testCheckReportsEachRecord) }

func testCheckReportsEachRecord(t *testing.T, st store.Store) {
	ctx := context.Background()
	dns := testkit.StartDNS(t)
	s := newService(t, st, dns, "")
	in, err := s.Add(ctx, AddRequest{TenantID: "A", Domain: "example.org", Selector: "s1"})
	if err != nil {
		t.Fatal(err)
	}
	dk := record(t, in, PurposeDKIM, "s1")
	other, _ := s.Add(ctx, AddRequest{TenantID: "A", Domain: "other.test", Selector: "s1"})

	// Wrong DKIM (another key), missing SPF, wrong DMARC (two records).
	dns.SetTXT(dk.Name, record(t, other, PurposeDKIM, "s1").Value)
	dns.SetTXT("_dmarc.example.org", "v=DMARC1; p=none", "v=DMARC1; p=reject")
	rep, err := s.Check(ctx, "A", "example.org")
	if err != nil {
		t.Fatal(err)
	}
	if got := statuses(rep); got[PurposeDKIM] != CheckWrong || got[PurposeSPF] != CheckMissing || got[PurposeDMARC] != CheckWrong || rep.Status != store.DomainPending {
		t.Fatalf("first check: %v, status %s", got, rep.Status)
	}
	if len(rep.Records[0].Found) != 1 {
		t.Fatalf("wrong record without what was found: %+v", rep.Records[0])
	}
	if _, ok := s.Sending("A", "example.org"); ok {
		t.Fatal("sending before verification")
	}

	// Right DKIM, SPF without posthorn, one DMARC record.
	dns.SetTXT(dk.Name, dk.Value)
	dns.SetTXT("example.org", "v=spf1 mx -all")
	dns.SetTXT("_dmarc.example.org", "v=DMARC1;p=quarantine")
	rep, err = s.Check(ctx, "A", "example.org")
	if err != nil {
		t.Fatal(err)
	}
	if got := statuses(rep); got[PurposeDKIM] != CheckOK || got[PurposeSPF] != CheckWrong || got[PurposeDMARC] != CheckOK || rep.Status != store.DomainVerified {
		t.Fatalf("second check: %v, status %s", got, rep.Status)
	}
	dns.SetTXT("example.org", "v=spf1 mx a:MAIL.posthorn.test -all")
	rep, _ = s.Check(ctx, "A", "example.org")
	if got := statuses(rep)[PurposeSPF]; got != CheckOK {
		t.Fatalf("spf with posthorn's mechanism: %s", got)
	}
	if _, ok := s.Sending("A", "example.org"); !ok {
		t.Fatal("a verified domain does not send")
	}
	shown, err := s.Get(ctx, "A", "example.org")
	if err != nil {
		t.Fatal(err)
	}
	if shown.LastCheck == nil || shown.CheckedAt.IsZero() || shown.VerifiedAt.IsZero() || len(shown.LastCheck.Records) != 3 {
		t.Fatalf("kept check: %+v", shown)
	}
	// Records vanish later: reported, but the domain stays verified.
	dns.Remove(dk.Name)
	rep, _ = s.Check(ctx, "A", "example.org")
	if statuses(rep)[PurposeDKIM] != CheckMissing || rep.Status != store.DomainVerified {
		t.Fatalf("after removal: %v %s", statuses(rep), rep.Status)
	}
}

// TestRotation: the old key signs until the new key's record is seen,
// then the new key signs and the old one is retired, removable.
func TestRotation(t *testing.T) { stores.Each(t, testRotation) }

func testRotation(t *testing.T, st store.Store) {
	ctx := context.Background()
	dns := testkit.StartDNS(t)
	s := newService(t, st, dns, "")
	in, _ := s.Add(ctx, AddRequest{TenantID: "A", Domain: "example.org", Selector: "old"})
	dns.SetTXT("old._domainkey.example.org", record(t, in, PurposeDKIM, "old").Value)
	if rep, _ := s.Check(ctx, "A", "example.org"); rep.Status != store.DomainVerified {
		t.Fatal("not verified")
	}
	rot, err := s.Rotate(ctx, "A", "example.org", "ed25519", "new")
	if err != nil {
		t.Fatal(err)
	}
	nr := record(t, rot, PurposeDKIM, "new")
	if nr.KeyState != store.KeyPending || !strings.HasPrefix(nr.Value, "v=DKIM1; k=ed25519; p=") || rot.Selector != "old" {
		t.Fatalf("rotation %+v", rot)
	}
	selectorOf := func() string {
		sign, _ := s.Sending("A", "example.org")
		sig, err := sign([]byte("From: a@example.org\r\nSubject: x\r\n\r\nbody\r\n"))
		if err != nil {
			t.Fatal(err)
		}
		return parseTags(strings.TrimPrefix(string(sig), "DKIM-Signature:"))["s"]
	}
	s.Check(ctx, "A", "example.org")
	if got := selectorOf(); got != "old" {
		t.Fatalf("signing with %s before the new record is published", got)
	}
	dns.SetTXT("new._domainkey.example.org", nr.Value)
	s.Check(ctx, "A", "example.org")
	if got := selectorOf(); got != "new" {
		t.Fatalf("signing with %s after the new record is published", got)
	}
	shown, _ := s.Get(ctx, "A", "example.org")
	if shown.Selector != "new" || shown.Algorithm != "ed25519" || len(shown.Keys) != 2 || shown.Keys[0].State != store.KeyRetired {
		t.Fatalf("after rotation %+v", shown)
	}
	var ie *InputError
	if err := s.RemoveKey(ctx, "A", "example.org", "new"); !errors.As(err, &ie) {
		t.Fatalf("removing the active key: %v", err)
	}
	if err := s.RemoveKey(ctx, "A", "example.org", "old"); err != nil {
		t.Fatal(err)
	}
	if shown, _ = s.Get(ctx, "A", "example.org"); len(shown.Keys) != 1 {
		t.Fatalf("keys after removal: %+v", shown.Keys)
	}
}

// TestSignatureVerifies checks posthorn's signatures with go-msgauth's
// verifier (the e2e tests use dkimpy): RSA and Ed25519 verify, the From is
// oversigned, List-Unsubscribe prepended later does not break it, a
// changed body or an added From does.
func TestSignatureVerifies(t *testing.T) { stores.Each(t, testSignatureVerifies) }

func testSignatureVerifies(t *testing.T, st store.Store) {
	ctx := context.Background()
	dns := testkit.StartDNS(t)
	s := newService(t, st, dns, "")
	msg := []byte("From: \"Ann\" <ann@example.org>\r\nTo: bob@dest.test\r\nSubject: =?utf-8?q?gr=C3=BC=C3=9Fe?=\r\n" +
		"Date: Thu, 03 Dec 2026 10:00:00 +0000\r\nMessage-ID: <1@example.org>\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n\r\nHello  there \r\n" + strings.Repeat("long line ", 200) + "\r\n\r\n\r\n")
	for _, alg := range []string{AlgRSA, AlgEd25519} {
		t.Run(alg, func(t *testing.T) {
			in, err := s.Add(ctx, AddRequest{TenantID: "A", Domain: alg + ".example.org", Algorithm: alg, UnverifiedOK: true})
			if err != nil {
				t.Fatal(err)
			}
			dk := record(t, in, PurposeDKIM, "")
			m := bytes.ReplaceAll(msg, []byte("example.org"), []byte(in.Domain))
			sign, ok := s.Sending("A", in.Domain)
			if !ok {
				t.Fatal("not sending")
			}
			sig, err := sign(m)
			if err != nil {
				t.Fatal(err)
			}
			tags := parseTags(strings.TrimPrefix(strings.ReplaceAll(string(sig), "\r\n", ""), "DKIM-Signature:"))
			if tags["c"] != "relaxed/relaxed" || tags["d"] != in.Domain || tags["a"] != alg+"-sha256" ||
				!strings.HasPrefix(strings.ToLower(tags["h"]), "from:from:") || strings.Contains(strings.ToLower(tags["h"]), "list-unsubscribe") {
				t.Fatalf("signature tags %v", tags)
			}
			lookup := func(name string) ([]string, error) {
				if name != dk.Name {
					return nil, errors.New("no such record " + name)
				}
				return []string{dk.Value}, nil
			}
			verify := func(msg []byte) error {
				vs, err := dkim.VerifyWithOptions(bytes.NewReader(msg), &dkim.VerifyOptions{LookupTXT: lookup})
				if err != nil {
					return err
				}
				if len(vs) != 1 {
					return errors.New("not one signature")
				}
				return vs[0].Err
			}
			signed := append(append([]byte{}, sig...), m...)
			if err := verify(signed); err != nil {
				t.Fatalf("signed message does not verify: %v", err)
			}
			unsub := append([]byte("List-Unsubscribe: <https://x.test/u/1>\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"), signed...)
			if err := verify(unsub); err != nil {
				t.Fatalf("List-Unsubscribe added at send time breaks the signature: %v", err)
			}
			if err := verify(bytes.Replace(signed, []byte("Hello"), []byte("Hallo"), 1)); err == nil {
				t.Fatal("a changed body verifies")
			}
			if err := verify(append([]byte("From: evil@evil.test\r\n"), signed...)); err == nil {
				t.Fatal("an added From verifies")
			}

			// The signature added at delivery covers List-Unsubscribe and
			// List-Unsubscribe-Post (RFC 8058) and everything the stored
			// one covers, with the stored body hash.
			added := []byte("List-Unsubscribe: <https://x.test/u/1>,\r\n <mailto:u@x.test?subject=unsubscribe>\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n")
			sig2, err := s.SignAdded("A", in.Domain, added, signed)
			if err != nil {
				t.Fatal(err)
			}
			tags2 := parseTags(strings.TrimPrefix(strings.ReplaceAll(string(sig2), "\r\n", ""), "DKIM-Signature:"))
			if h := strings.ToLower(tags2["h"]); !strings.HasPrefix(h, "list-unsubscribe:list-unsubscribe-post:list-unsubscribe:list-unsubscribe-post:from:from:") ||
				tags2["bh"] != tags["bh"] || tags2["a"] != alg+"-sha256" || tags2["d"] != in.Domain {
				t.Fatalf("delivery signature tags %v", tags2)
			}
			delivered := append(append(append([]byte{}, sig2...), added...), signed...)
			verifyAll := func(msg []byte) []error {
				vs, err := dkim.VerifyWithOptions(bytes.NewReader(msg), &dkim.VerifyOptions{LookupTXT: lookup})
				if err != nil || len(vs) != 2 {
					t.Fatalf("verify: %d signatures, %v", len(vs), err)
				}
				return []error{vs[0].Err, vs[1].Err}
			}
			if errs := verifyAll(delivered); errs[0] != nil || errs[1] != nil {
				t.Fatalf("delivered message does not verify: %v", errs)
			}
			changed := bytes.Replace(delivered, []byte("x.test/u/1"), []byte("x.test/u/2"), 1)
			if errs := verifyAll(changed); errs[0] == nil || errs[1] != nil {
				t.Fatalf("changed List-Unsubscribe: delivery signature %v, stored %v", errs[0], errs[1])
			}
			extra := append([]byte("List-Unsubscribe-Post: evil\r\n"), delivered...)
			if errs := verifyAll(extra); errs[0] == nil {
				t.Fatal("a second List-Unsubscribe-Post verifies")
			}
			if _, err := s.SignAdded("B", in.Domain, added, signed); err == nil {
				t.Fatal("another tenant signs with the domain's key")
			}
		})
	}
}

// TestSealedKeys: private keys are stored encrypted; the key file is 0600
// and another key file cannot open them.
func TestSealedKeys(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "dkim.key")
	s1, err := LoadSealer(p)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v", fi.Mode(), err)
	}
	priv, _, err := newKey(AlgEd25519)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := s1.seal(priv, "example.org", "s1")
	if err != nil {
		t.Fatal(err)
	}
	if again, err := LoadSealer(p); err != nil {
		t.Fatal(err)
	} else if _, err := again.open(sealed, "example.org", "s1"); err != nil {
		t.Fatalf("reloaded key file: %v", err)
	}
	if _, err := s1.open(sealed, "other.org", "s1"); err == nil {
		t.Fatal("a sealed key opens for another domain")
	}
	s2, _ := LoadSealer(filepath.Join(dir, "other.key"))
	if _, err := s2.open(sealed, "example.org", "s1"); err == nil {
		t.Fatal("another key file opens the key")
	}
}

// TestSignMatchesGoMsgauth: posthorn's own signer (sign.go) gives the
// body hash go-msgauth's signer gives, for bodies that exercise relaxed
// canonicalization, and its signatures verify with go-msgauth.
func TestSignMatchesGoMsgauth(t *testing.T) {
	key, pub, err := newKey(AlgEd25519)
	if err != nil {
		t.Fatal(err)
	}
	s := &Signer{Domain: "example.org", Selector: "s1", key: key}
	hdr := "From: a@example.org\r\nTo:  b@dest.test \r\nSubject: \t folded\r\n  subject  \r\n\r\n"
	bodies := []string{"", "\r\n", "\r\n\r\n", "x", "one\r\n", "a  b\t\tc  \r\n \t\r\n\r\nend\r\n\r\n\r\n",
		" lead\r\n\ttab\r\n", "no end", "trailing \t", strings.Repeat("long line ", 300) + "\r\n"}
	for _, body := range bodies {
		msg := []byte(hdr + body)
		sig, err := s.Sign(msg)
		if err != nil {
			t.Fatal(err)
		}
		ref, err := dkim.NewSigner(&dkim.SignOptions{Domain: "example.org", Selector: "s1", Signer: key,
			HeaderCanonicalization: dkim.CanonicalizationRelaxed, BodyCanonicalization: dkim.CanonicalizationRelaxed})
		if err != nil {
			t.Fatal(err)
		}
		ref.Write(msg)
		if err := ref.Close(); err != nil {
			t.Fatal(err)
		}
		tag := func(f string) string {
			return parseTags(strings.TrimPrefix(strings.ReplaceAll(f, "\r\n", ""), "DKIM-Signature:"))["bh"]
		}
		if got, want := tag(string(sig)), tag(ref.Signature()); got != want {
			t.Errorf("body %q: bh %s, go-msgauth %s", body, got, want)
		}
		vs, err := dkim.VerifyWithOptions(bytes.NewReader(append(sig, msg...)), &dkim.VerifyOptions{
			LookupTXT: func(string) ([]string, error) { return []string{"v=DKIM1; k=ed25519; p=" + pub}, nil }})
		if err != nil || len(vs) != 1 || vs[0].Err != nil {
			t.Errorf("body %q: go-msgauth does not verify: %v %+v", body, err, vs)
		}
	}
}
