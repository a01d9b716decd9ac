package domain

import (
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"strings"
	"testing"
)

var benchMsg = []byte("From: App <app@example.org>\r\nTo: r@dest.test\r\nSubject: bench\r\nDate: Thu, 03 Dec 2026 10:00:00 +0000\r\n" +
	"Message-ID: <1@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n" + strings.Repeat(strings.Repeat("x", 75)+"\r\n", 53))

// BenchmarkSign measures one signature of a 4 KiB message per algorithm,
// to tell the key operation from the rest of acceptance; key-only is the
// bare key operation on a SHA-256 digest (crypto/rsa, crypto/ed25519),
// add-unsubscribe the per-delivery signature over List-Unsubscribe
// (SignAdded: header only, the body hash reused).
func BenchmarkSign(b *testing.B) {
	for _, alg := range []string{AlgRSA, AlgEd25519} {
		key, _, err := newKey(alg)
		if err != nil {
			b.Fatal(err)
		}
		s := &Signer{Domain: "example.org", Selector: "s1", key: key}
		b.Run(alg, func(b *testing.B) {
			b.SetBytes(int64(len(benchMsg)))
			for b.Loop() {
				if _, err := s.Sign(benchMsg); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(alg+"/key-only", func(b *testing.B) {
			digest := sha256.Sum256(benchMsg)
			h := crypto.Hash(crypto.SHA256)
			if alg == AlgEd25519 {
				h = 0
			}
			for b.Loop() {
				if _, err := key.Sign(rand.Reader, digest[:], h); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(alg+"/add-unsubscribe", func(b *testing.B) {
			sig, err := s.Sign(benchMsg)
			if err != nil {
				b.Fatal(err)
			}
			signed := append(sig, benchMsg...)
			added := []byte("List-Unsubscribe: <https://mail.example.org/unsubscribe/abc>\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n")
			for b.Loop() {
				if _, err := s.SignAdded(added, signed); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
