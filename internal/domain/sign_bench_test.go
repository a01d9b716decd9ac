package domain

import (
	"strings"
	"testing"
)

// BenchmarkSign measures one signature of a 4 KiB message per algorithm,
// to tell the key operation from the rest of acceptance.
func BenchmarkSign(b *testing.B) {
	msg := []byte("From: App <app@example.org>\r\nTo: r@dest.test\r\nSubject: bench\r\nDate: Thu, 03 Dec 2026 10:00:00 +0000\r\n" +
		"Message-ID: <1@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n" + strings.Repeat(strings.Repeat("x", 75)+"\r\n", 53))
	for _, alg := range []string{AlgRSA, AlgEd25519} {
		b.Run(alg, func(b *testing.B) {
			key, _, err := newKey(alg)
			if err != nil {
				b.Fatal(err)
			}
			s := &Signer{Domain: "example.org", Selector: "s1", key: key}
			b.SetBytes(int64(len(msg)))
			for b.Loop() {
				if _, err := s.Sign(msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
