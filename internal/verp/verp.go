// Package verp makes and checks the return paths posthorn sends with:
// bounces+<token>@<bounce-domain>, where the token names the message and
// is signed (HMAC-SHA256, truncated) with a key kept in the data
// directory, and dated, so a bounce for a message posthorn never sent, or
// one too old, is refused instead of trusted.
//
// The token names the message, not the recipient: all recipients of a
// message at one domain still go in one transaction, and the DSN itself
// says which recipient failed.
package verp

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
)

// Prefix starts every VERP local part.
const Prefix = "bounces+"

var enc = base32.StdEncoding.WithPadding(base32.NoPadding)

// Signer makes and checks tokens.
type Signer struct {
	key    []byte
	domain string
	maxAge time.Duration
	now    func() time.Time
}

// LoadKey reads the key file, creating it with 32 random bytes if absent.
func LoadKey(path string) ([]byte, error) {
	key, err := os.ReadFile(path)
	if err == nil && len(key) >= 32 {
		return key, nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("verp key: %w", err)
	}
	key = make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, key, 0o600); err != nil {
		return nil, fmt.Errorf("verp key: %w", err)
	}
	return key, nil
}

// New returns a signer for domain; tokens older than maxAge are refused.
func New(key []byte, domain string, maxAge time.Duration) *Signer {
	return &Signer{key: key, domain: strings.ToLower(domain), maxAge: maxAge, now: time.Now}
}

// Domain is the bounce domain.
func (s *Signer) Domain() string { return s.domain }

func (s *Signer) mac(b []byte) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write(b)
	return m.Sum(nil)[:10]
}

// ReturnPath is the envelope sender for a message.
func (s *Signer) ReturnPath(messageID string) (string, error) {
	id, err := ulid.ParseStrict(messageID)
	if err != nil {
		return "", fmt.Errorf("verp: message id %q: %w", messageID, err)
	}
	b := make([]byte, 0, 28)
	b = append(b, id[:]...)
	b = binary.BigEndian.AppendUint16(b, uint16(s.now().Unix()/86400))
	b = append(b, s.mac(b)...)
	return Prefix + strings.ToLower(enc.EncodeToString(b)) + "@" + s.domain, nil
}

// Errors from Check.
var (
	ErrNotVERP  = errors.New("not a VERP address")
	ErrForged   = errors.New("VERP token signature does not match")
	ErrExpired  = errors.New("VERP token expired")
	ErrWrongDom = errors.New("not the bounce domain")
)

// Check verifies a local part (or whole address at the bounce domain) and
// returns the message ID it names.
func (s *Signer) Check(addr string) (string, error) {
	local, domain, ok := strings.Cut(addr, "@")
	if ok && !strings.EqualFold(domain, s.domain) {
		return "", ErrWrongDom
	}
	tok, ok := strings.CutPrefix(strings.ToLower(local), Prefix)
	if !ok {
		return "", ErrNotVERP
	}
	b, err := enc.DecodeString(strings.ToUpper(tok))
	if err != nil || len(b) != 28 {
		return "", ErrForged
	}
	if !hmac.Equal(b[18:], s.mac(b[:18])) {
		return "", ErrForged
	}
	day := int64(binary.BigEndian.Uint16(b[16:18]))
	if s.maxAge > 0 && s.now().Sub(time.Unix(day*86400, 0)) > s.maxAge+24*time.Hour {
		return "", ErrExpired
	}
	var id ulid.ULID
	copy(id[:], b[:16])
	return id.String(), nil
}

// MessageReturnPath TEMP
func (s *Signer) MessageReturnPath(messageID string) (string, error) { return s.ReturnPath(messageID) }
