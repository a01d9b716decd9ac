package domain

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// signedHeaders are the fields a signature covers when present (RFC 6376
// §5.4.1). Left out on purpose: Received and Return-Path (added by later
// hops), and List-Unsubscribe / List-Unsubscribe-Post, which posthorn
// itself prepends per delivery at send time (internal/unsubscribe) after
// the message was signed here; a second signature made then covers them
// (SignAdded, resign.go).
var signedHeaders = []string{
	"From", "Sender", "Reply-To", "To", "Cc", "Subject", "Date", "Message-ID",
	"In-Reply-To", "References", "MIME-Version", "Content-Type", "Content-Transfer-Encoding",
	"Content-Disposition", "Content-ID", "Content-Description", "List-Id", "List-Help",
	"List-Subscribe", "List-Post", "List-Owner", "List-Archive", "Feedback-ID",
}

// Signer signs messages for one domain with one key.
type Signer struct {
	Domain, Selector string
	key              crypto.Signer
}

// Sign returns the DKIM-Signature field (with its CRLF) for msg, a CRLF
// message (header, blank line, body). Canonicalization is relaxed/relaxed;
// each signed field is listed once per occurrence, and From once more
// (oversigned), so a From added on the way breaks the signature.
//
// posthorn makes its signatures itself (RFC 6376 §3.4.2 and §3.4.4, and
// §3.7 for the hash) rather than with go-msgauth's Signer, for two
// reasons: go-msgauth hashes and signs on a goroutine of its own behind a
// pipe, while internal/dkimqueue must run the key operation on its
// low-priority threads (handing the digest between the two goroutines
// cost 0.25 ms of CPU per message in thread wake-ups, more than hashing
// it); and the per-delivery signature (SignAdded) reuses this one's body
// hash, which go-msgauth cannot take. go-msgauth stays the verifier in the
// tests (and dkimpy in internal/e2e), which also compare body hashes with
// go-msgauth's signer.
func (s *Signer) Sign(msg []byte) ([]byte, error) {
	hdr, body := msg, []byte(nil)
	if i := bytes.Index(msg, []byte("\r\n\r\n")); i >= 0 {
		hdr, body = msg[:i+2], msg[i+4:]
	}
	bh := sha256.New()
	relaxedBody(bh, body)
	return s.sign(headerFields(hdr), headerKeys(msg), base64.StdEncoding.EncodeToString(bh.Sum(nil)), true)
}

// sign makes a DKIM-Signature field over the fields (in message order)
// that keys name, with body hash bh.
func (s *Signer) sign(fields, keys []string, bh string, stamp bool) ([]byte, error) {
	alg := "rsa-sha256"
	hash := crypto.SHA256
	if _, ok := s.key.Public().(ed25519.PublicKey); ok {
		alg, hash = "ed25519-sha256", crypto.Hash(0) // RFC 8463 signs the SHA-256 digest itself
	}
	head := "DKIM-Signature: v=1; a=" + alg + "; c=relaxed/relaxed; d=" + s.Domain + "; s=" + s.Selector + ";"
	if stamp {
		head += " t=" + strconv.FormatInt(time.Now().Unix(), 10) + ";"
	}
	head += "\r\n\th=" + strings.Join(keys, ":") + ";\r\n\tbh=" + bh + ";\r\n\tb="

	digest := sha256.New()
	used := make([]bool, len(fields))
	for _, name := range keys {
		name = strings.ToLower(strings.TrimSpace(name))
		// RFC 6376 §5.4.2: each listing takes the next instance from the
		// bottom; a listing with none left adds nothing (oversigning).
		for i := len(fields) - 1; i >= 0; i-- {
			if !used[i] && fieldName(fields[i]) == name {
				used[i] = true
				digest.Write([]byte(relaxedField(fields[i])))
				break
			}
		}
	}
	digest.Write([]byte(strings.TrimSuffix(relaxedField(head+"\r\n"), "\r\n")))
	sig, err := s.key.Sign(rand.Reader, digest.Sum(nil), hash)
	if err != nil {
		return nil, fmt.Errorf("dkim %s: %w", s.Domain, err)
	}
	b := base64.StdEncoding.EncodeToString(sig)
	var out strings.Builder
	out.WriteString(head)
	for len(b) > 72 {
		out.WriteString(b[:72] + "\r\n\t ")
		b = b[72:]
	}
	out.WriteString(b + "\r\n")
	return []byte(out.String()), nil
}

// relaxedBody writes the "relaxed" canonical form of a CRLF body to w
// (RFC 6376 §3.4.4): runs of blanks as one space, none at line ends, no
// empty lines at the end, and a non-empty body ending in CRLF.
func relaxedBody(w io.Writer, body []byte) {
	empty := 0 // empty lines seen and not written yet
	line := make([]byte, 0, 1024)
	for len(body) > 0 {
		var raw []byte
		if i := bytes.Index(body, []byte("\r\n")); i >= 0 {
			raw, body = body[:i], body[i+2:]
		} else {
			raw, body = body, nil
		}
		line, blank := line[:0], false
		for _, c := range raw {
			if c == ' ' || c == '\t' {
				blank = true
				continue
			}
			if blank {
				line = append(line, ' ')
				blank = false
			}
			line = append(line, c)
		}
		if len(line) == 0 {
			empty++
			continue
		}
		for ; empty > 0; empty-- {
			w.Write([]byte("\r\n"))
		}
		w.Write(append(line, '\r', '\n'))
	}
}

// headerKeys lists the signed fields present in msg's header.
func headerKeys(msg []byte) []string {
	hdr := msg
	if i := bytes.Index(msg, []byte("\r\n\r\n")); i >= 0 {
		hdr = msg[:i+2]
	}
	count := map[string]int{}
	for _, line := range bytes.Split(hdr, []byte("\r\n")) {
		if len(line) == 0 || line[0] == ' ' || line[0] == '\t' {
			continue
		}
		if i := bytes.IndexByte(line, ':'); i > 0 {
			count[strings.ToLower(strings.TrimRight(string(line[:i]), " \t"))]++
		}
	}
	keys := []string{"From"} // From is oversigned: listed once more than present
	for _, h := range signedHeaders {
		for range count[strings.ToLower(h)] {
			keys = append(keys, h)
		}
	}
	return keys
}
