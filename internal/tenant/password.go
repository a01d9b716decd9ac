package tenant

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// Passwords (SMTP users and accounts) are hashed with argon2id, in the
// PHC string format ("$argon2id$v=19$m=...,t=...,p=...$salt$hash"), with
// OWASP's recommended minimum parameters: 19 MiB, 2 passes, 1 lane (87 ms
// per hash measured on a busy 2-core machine; memory-hard, so guessing on
// GPUs is expensive). Hashes made by earlier versions (bcrypt, "$2a$"...)
// are still verified, and a successful login replaces them with an
// argon2id hash (CheckPassword's rehash).
const (
	argonMemory  = 19 * 1024 // KiB
	argonTime    = 2
	argonThreads = 1
	argonKeyLen  = 32
	argonSaltLen = 16
)

var b64raw = base64.RawStdEncoding

// HashPassword returns the argon2id hash of pw.
func HashPassword(pw string) (string, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("password salt: %w", err)
	}
	sum := argon2.IDKey([]byte(pw), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		b64raw.EncodeToString(salt), b64raw.EncodeToString(sum)), nil
}

var errBadHash = errors.New("unknown password hash format")

// CheckPassword reports whether pw matches hash (argon2id or bcrypt).
// rehash is true when the password matched a hash in an older format or
// with other parameters, which the caller should replace.
func CheckPassword(hash, pw string) (ok, rehash bool, err error) {
	if strings.HasPrefix(hash, "$2") {
		err := bcrypt.CompareHashAndPassword([]byte(hash), []byte(pw))
		if errors.Is(err, bcrypt.ErrMismatchedHashAndPassword) {
			return false, false, nil
		}
		return err == nil, err == nil, err
	}
	parts := strings.Split(hash, "$")
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, sum
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false, false, errBadHash
	}
	var v int
	var m, t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return false, false, errBadHash
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || m == 0 || t == 0 || p == 0 || m > 1<<22 || t > 64 {
		return false, false, errBadHash
	}
	salt, err1 := b64raw.DecodeString(parts[4])
	sum, err2 := b64raw.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(sum) == 0 {
		return false, false, errBadHash
	}
	got := argon2.IDKey([]byte(pw), salt, t, m, p, uint32(len(sum)))
	if subtle.ConstantTimeCompare(got, sum) != 1 {
		return false, false, nil
	}
	return true, m != argonMemory || t != argonTime || p != argonThreads || len(sum) != argonKeyLen, nil
}

// Each argon2id hash takes argonMemory of memory while it runs, so a burst
// of logins (or of guesses) could take gigabytes. The Manager lets at most
// cap(m.hashing) hashes run at once (two per CPU: the CPU is the limit
// anyway); the others wait their turn or give up with their context.

func (m *Manager) hashPassword(ctx context.Context, pw string) (string, error) {
	if err := m.acquireHash(ctx); err != nil {
		return "", err
	}
	defer func() { <-m.hashing }()
	return HashPassword(pw)
}

func (m *Manager) checkPassword(ctx context.Context, hash, pw string) (ok, rehash bool, err error) {
	if err := m.acquireHash(ctx); err != nil {
		return false, false, err
	}
	defer func() { <-m.hashing }()
	return CheckPassword(hash, pw)
}

func (m *Manager) acquireHash(ctx context.Context) error {
	select {
	case m.hashing <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting to check a password: %w", ctx.Err())
	}
}
