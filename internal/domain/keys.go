package domain

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// Algorithms a new key may use.
const (
	AlgRSA     = "rsa"
	AlgEd25519 = "ed25519"
)

// rsaBits is the size of new RSA keys: 2048 is what receivers expect and
// still fits one DNS TXT record (split into 255-byte strings).
const rsaBits = 2048

// newKey generates a private key and returns it with the p= value of its
// DNS record: the DER SubjectPublicKeyInfo for RSA, the raw 32-byte key
// for Ed25519 (RFC 8463 §4.2), both base64.
func newKey(alg string) (crypto.Signer, string, error) {
	switch alg {
	case AlgRSA:
		k, err := rsa.GenerateKey(rand.Reader, rsaBits)
		if err != nil {
			return nil, "", fmt.Errorf("generate rsa key: %w", err)
		}
		der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
		if err != nil {
			return nil, "", err
		}
		return k, base64.StdEncoding.EncodeToString(der), nil
	case AlgEd25519:
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, "", fmt.Errorf("generate ed25519 key: %w", err)
		}
		return priv, base64.StdEncoding.EncodeToString(pub), nil
	}
	return nil, "", fmt.Errorf("unknown algorithm %q (want rsa or ed25519)", alg)
}

// newSelector names a key by algorithm and month, with a random suffix so
// two rotations in a month differ: "ph202612a1b2" style, valid as a DNS label.
func newSelector(alg string, now time.Time) string {
	b := make([]byte, 3)
	rand.Read(b)
	prefix := "ph"
	if alg == AlgEd25519 {
		prefix = "ed"
	}
	return fmt.Sprintf("%s%s%x", prefix, now.UTC().Format("200601"), b)
}

// Sealer encrypts private keys at rest with AES-256-GCM under a key kept
// in a 0600 file in the data directory, so a copy of the database alone
// does not give away the signing keys.
type Sealer struct{ aead cipher.AEAD }

// LoadSealer reads the key file at path, creating it (0600) if missing.
func LoadSealer(path string) (*Sealer, error) {
	key, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		key = make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		if err := os.WriteFile(path, key, 0o600); err != nil {
			return nil, fmt.Errorf("dkim key file: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("dkim key file: %w", err)
	}
	if len(key) != 32 {
		return nil, fmt.Errorf("dkim key file %s: want 32 bytes, have %d", path, len(key))
	}
	return NewSealer(key)
}

// NewSealer uses a 32-byte key.
func NewSealer(key []byte) (*Sealer, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("dkim key cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Sealer{aead: aead}, nil
}

// seal encrypts a private key; the domain and selector are bound in as
// additional data so a sealed key cannot be moved to another record.
func (s *Sealer) seal(k crypto.Signer, domain, selector string) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return s.aead.Seal(nonce, nonce, der, []byte(domain+"/"+selector)), nil
}

func (s *Sealer) open(sealed []byte, domain, selector string) (crypto.Signer, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n {
		return nil, errors.New("sealed key too short")
	}
	der, err := s.aead.Open(nil, sealed[:n], sealed[n:], []byte(domain+"/"+selector))
	if err != nil {
		return nil, fmt.Errorf("decrypt key %s of %s (wrong dkim key file?): %w", selector, domain, err)
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("parse key %s of %s: %w", selector, domain, err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("key %s of %s: not a signing key", selector, domain)
	}
	return signer, nil
}

// dkimRecord is the TXT value publishing a public key.
func dkimRecord(alg, pub string) string {
	return "v=DKIM1; k=" + alg + "; p=" + pub
}

// parseTags reads a DKIM tag list ("v=DKIM1; k=rsa; p=...") with
// whitespace removed from values (RFC 6376 §3.2).
func parseTags(s string) map[string]string {
	out := map[string]string{}
	for _, part := range strings.Split(s, ";") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			continue
		}
		out[strings.TrimSpace(k)] = strings.Join(strings.Fields(v), "")
	}
	return out
}
