// Package verp makes and checks the return paths posthorn sends with:
// bounces+<token>@<bounce-domain>, where the token names one delivery (one
// recipient of one message) and is signed (HMAC-SHA256, truncated) with a
// key kept in the data directory, and dated, so a bounce for a delivery
// posthorn never made, or one too old, is refused instead of trusted.
//
// The token names the delivery, not the message, because whoever holds a
// return path can mail a report to it: a recipient must only be able to
// speak about their own copy. So each recipient's copy carries its own
// return path, which means one recipient per SMTP transaction whenever
// VERP is on (the queue does that).
//
// Token layout (base32, lower case): message ULID (16 bytes), delivery ID
// (uvarint), day number (2 bytes), MAC (10 bytes). Tokens of the earlier
// message-level form (ULID, day, MAC: 28 bytes) are still accepted until
// they expire; Check reports them with DeliveryID 0 and the caller must
// treat them as naming no particular recipient.
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

// Ref is what a token names.
type Ref struct {
	MessageID string
	// DeliveryID is the delivery the return path was made for; 0 for a
	// token of the old message-level form, which names no recipient.
	DeliveryID int64
}

// Legacy reports whether r came from an old message-level token.
func (r Ref) Legacy() bool { return r.DeliveryID == 0 }

// maxLocal is RFC 5321's limit on a local part.
const maxLocal = 64

// ReturnPath is the envelope sender for one delivery of a message.
func (s *Signer) ReturnPath(messageID string, deliveryID int64) (string, error) {
	if deliveryID <= 0 {
		return "", fmt.Errorf("verp: delivery id %d", deliveryID)
	}
	id, err := ulid.ParseStrict(messageID)
	if err != nil {
		return "", fmt.Errorf("verp: message id %q: %w", messageID, err)
	}
	b := make([]byte, 0, 16+binary.MaxVarintLen64+2+10)
	b = append(b, id[:]...)
	b = binary.AppendUvarint(b, uint64(deliveryID))
	b = binary.BigEndian.AppendUint16(b, uint16(s.now().Unix()/86400))
	b = append(b, s.mac(b)...)
	local := Prefix + strings.ToLower(enc.EncodeToString(b))
	if len(local) > maxLocal {
		// Only for delivery IDs beyond 2^49, which a store never reaches.
		return "", fmt.Errorf("verp: delivery id %d makes a local part longer than %d", deliveryID, maxLocal)
	}
	return local + "@" + s.domain, nil
}

// MessageReturnPath makes a token of the old message-level form. posthorn
// no longer sends with it; it exists so tests can show what such tokens
// may still do.
func (s *Signer) MessageReturnPath(messageID string) (string, error) {
	id, err := ulid.ParseStrict(messageID)
	if err != nil {
		return "", fmt.Errorf("verp: message id %q: %w", messageID, err)
	}
	b := make([]byte, 0, legacyLen)
	b = append(b, id[:]...)
	b = binary.BigEndian.AppendUint16(b, uint16(s.now().Unix()/86400))
	b = append(b, s.mac(b)...)
	return Prefix + strings.ToLower(enc.EncodeToString(b)) + "@" + s.domain, nil
}

// legacyLen is the length of a message-level token: ULID, day, MAC. A
// delivery token is longer (its uvarint takes at least one byte), and the
// MAC covers the whole payload, so one form cannot pass for the other.
const legacyLen = 16 + 2 + 10

// Errors from Check.
var (
	ErrNotVERP  = errors.New("not a VERP address")
	ErrForged   = errors.New("VERP token signature does not match")
	ErrExpired  = errors.New("VERP token expired")
	ErrWrongDom = errors.New("not the bounce domain")
)

// Check verifies a local part (or whole address at the bounce domain) and
// returns what it names.
func (s *Signer) Check(addr string) (Ref, error) {
	local, domain, ok := strings.Cut(addr, "@")
	if ok && !strings.EqualFold(domain, s.domain) {
		return Ref{}, ErrWrongDom
	}
	tok, ok := strings.CutPrefix(strings.ToLower(local), Prefix)
	if !ok {
		return Ref{}, ErrNotVERP
	}
	b, err := enc.DecodeString(strings.ToUpper(tok))
	if err != nil || len(b) < legacyLen || len(b) > 16+binary.MaxVarintLen64+2+10 {
		return Ref{}, ErrForged
	}
	payload, sum := b[:len(b)-10], b[len(b)-10:]
	if !hmac.Equal(sum, s.mac(payload)) {
		return Ref{}, ErrForged
	}
	day := int64(binary.BigEndian.Uint16(payload[len(payload)-2:]))
	if s.maxAge > 0 && s.now().Sub(time.Unix(day*86400, 0)) > s.maxAge+24*time.Hour {
		return Ref{}, ErrExpired
	}
	var id ulid.ULID
	copy(id[:], payload[:16])
	ref := Ref{MessageID: id.String()}
	if len(b) == legacyLen {
		return ref, nil
	}
	n, k := binary.Uvarint(payload[16 : len(payload)-2])
	if k != len(payload)-18 || n == 0 || n > 1<<62 {
		return Ref{}, ErrForged
	}
	ref.DeliveryID = int64(n)
	return ref, nil
}
