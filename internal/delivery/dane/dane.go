// Package dane checks an SMTP server's certificate chain against its TLSA
// records, the way RFC 7672 (SMTP security via opportunistic DANE TLS)
// asks of a sending MTA.
//
// What it owns, and its rules:
//   - Usable records are DANE-EE(3) and DANE-TA(2) with selector
//     full certificate(0) or SubjectPublicKeyInfo(1) and matching type
//     exact(0), SHA-256(1) or SHA-512(2). PKIX-TA(0) and PKIX-EE(1) are
//     unusable for SMTP (RFC 7672 §3.1.3), as are unknown values.
//   - DANE-EE(3): the server's own certificate (the first of the chain)
//     must match; its names and validity dates are ignored (RFC 7672
//     §3.1.1).
//   - DANE-TA(2): some certificate the server sent must match; the leaf
//     must then chain to it, be valid now and carry one of the reference
//     names (the MX host name; RFC 7672 §3.2.2). A trust anchor given only
//     as a public key (selector 1) must be in the chain as a certificate.
//   - One matching record is enough.
//
// Whether the records may be trusted at all (a DNSSEC-validated answer
// from a trusted resolver) is the caller's question, not this package's.
//
// What the tests prove (dane_test.go): every usage/selector/matching
// combination matches the right certificate and no other; DANE-EE ignores
// name and expiry; DANE-TA checks both; unusable records never match.
package dane

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Record is one TLSA record.
type Record struct {
	Usage, Selector, MatchingType uint8
	Data                          []byte
}

// TLSA usages and selectors used here.
const (
	UsageDANETA = 2
	UsageDANEEE = 3
)

// ParseRecord makes a Record from the fields of a TLSA RR (Data in hex).
func ParseRecord(usage, selector, mtype uint8, hexData string) (Record, error) {
	b, err := hex.DecodeString(hexData)
	if err != nil {
		return Record{}, fmt.Errorf("TLSA data: %w", err)
	}
	return Record{Usage: usage, Selector: selector, MatchingType: mtype, Data: b}, nil
}

// String is the record in presentation format ("3 1 1 abcd...").
func (r Record) String() string {
	return fmt.Sprintf("%d %d %d %s", r.Usage, r.Selector, r.MatchingType, hex.EncodeToString(r.Data))
}

// Usable reports whether r can authenticate an SMTP server.
func (r Record) Usable() bool {
	if r.Usage != UsageDANETA && r.Usage != UsageDANEEE || r.Selector > 1 {
		return false
	}
	switch r.MatchingType {
	case 0:
		return len(r.Data) > 0
	case 1:
		return len(r.Data) == sha256.Size
	case 2:
		return len(r.Data) == sha512.Size
	}
	return false
}

// Usable returns the usable records of recs.
func Usable(recs []Record) []Record {
	var out []Record
	for _, r := range recs {
		if r.Usable() {
			out = append(out, r)
		}
	}
	return out
}

// matches reports whether cert matches r's selector and data.
func (r Record) matches(cert *x509.Certificate) bool {
	data := cert.Raw
	if r.Selector == 1 {
		data = cert.RawSubjectPublicKeyInfo
	}
	switch r.MatchingType {
	case 1:
		h := sha256.Sum256(data)
		data = h[:]
	case 2:
		h := sha512.Sum512(data)
		data = h[:]
	}
	return bytes.Equal(data, r.Data)
}

// ErrNoMatch is returned when no record matches the chain.
var ErrNoMatch = errors.New("no TLSA record matches the server's certificate")

// Verify checks chain (leaf first, as the server sent it) against recs.
// names are the reference identifiers for DANE-TA (the MX host name);
// now is the time for DANE-TA validity. It returns which record matched,
// e.g. "dane-ee 3 1 1".
func Verify(chain []*x509.Certificate, recs []Record, names []string, now time.Time) (string, error) {
	if len(chain) == 0 {
		return "", errors.New("the server sent no certificate")
	}
	usable := Usable(recs)
	if len(usable) == 0 {
		return "", errors.New("no usable TLSA record (only PKIX-TA/PKIX-EE or unknown parameters)")
	}
	var taErr error
	for _, r := range usable {
		switch r.Usage {
		case UsageDANEEE:
			if r.matches(chain[0]) {
				return fmt.Sprintf("dane-ee %d %d %d", r.Usage, r.Selector, r.MatchingType), nil
			}
		case UsageDANETA:
			for _, ta := range chain {
				if !r.matches(ta) {
					continue
				}
				if err := verifyTA(chain, ta, names, now); err != nil {
					taErr = err
					continue
				}
				return fmt.Sprintf("dane-ta %d %d %d", r.Usage, r.Selector, r.MatchingType), nil
			}
		}
	}
	if taErr != nil {
		return "", fmt.Errorf("%w: the DANE-TA trust anchor matches but %v", ErrNoMatch, taErr)
	}
	return "", ErrNoMatch
}

// verifyTA checks that the leaf chains to ta and is valid for one of names.
func verifyTA(chain []*x509.Certificate, ta *x509.Certificate, names []string, now time.Time) error {
	roots := x509.NewCertPool()
	roots.AddCert(ta)
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		if c != ta {
			inter.AddCert(c)
		}
	}
	var last error
	for _, n := range names {
		_, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: strings.TrimSuffix(n, "."),
			CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
		if err == nil {
			return nil
		}
		last = err
	}
	if last == nil {
		last = errors.New("no name to check")
	}
	return last
}
