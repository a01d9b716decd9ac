package domain

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/emersion/go-msgauth/dkim"
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
// The key operation runs on the calling goroutine, not on the goroutine
// go-msgauth hashes in: internal/dkimqueue calls Sign from threads it runs
// at a lower priority, and the RSA exponentiation is what must run there.
func (s *Signer) Sign(msg []byte) ([]byte, error) {
	k := &handoff{key: s.key, digest: make(chan keyRequest), result: make(chan keyResult)}
	opts := &dkim.SignOptions{Domain: s.Domain, Selector: s.Selector, Signer: k,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed, BodyCanonicalization: dkim.CanonicalizationRelaxed,
		HeaderKeys: headerKeys(msg)}
	ds, err := dkim.NewSigner(opts)
	if err != nil {
		return nil, fmt.Errorf("dkim %s: %w", s.Domain, err)
	}
	if _, err := ds.Write(msg); err != nil {
		ds.Close()
		return nil, fmt.Errorf("dkim %s: %w", s.Domain, err)
	}
	closed := make(chan error, 1)
	go func() { closed <- ds.Close() }()
	select {
	case req := <-k.digest:
		sig, err := s.key.Sign(rand.Reader, req.digest, req.opts)
		k.result <- keyResult{sig, err}
		err = <-closed
		if err != nil {
			return nil, fmt.Errorf("dkim %s: %w", s.Domain, err)
		}
	case err := <-closed: // failed before it came to the key
		if err == nil {
			err = errors.New("no signature was made")
		}
		return nil, fmt.Errorf("dkim %s: %w", s.Domain, err)
	}
	return []byte(ds.Signature()), nil
}

// handoff is the crypto.Signer go-msgauth is given: it passes the digest
// to the goroutine in Sign, which makes the signature with the real key.
type handoff struct {
	key    crypto.Signer
	digest chan keyRequest
	result chan keyResult
}

type keyRequest struct {
	digest []byte
	opts   crypto.SignerOpts
}

type keyResult struct {
	sig []byte
	err error
}

func (h *handoff) Public() crypto.PublicKey { return h.key.Public() }

func (h *handoff) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	h.digest <- keyRequest{digest, opts}
	r := <-h.result
	return r.sig, r.err
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
