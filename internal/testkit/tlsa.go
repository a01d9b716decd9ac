package testkit

import (
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/hex"
)

// TLSA is one TLSA record (RFC 6698): Data is the hex certificate
// association data.
type TLSA struct {
	Usage, Selector, MatchingType uint8
	Data                          string
}

// TLSAFor computes the TLSA record of cert for usage (3 DANE-EE, 2
// DANE-TA), selector (0 full certificate, 1 SubjectPublicKeyInfo) and
// matching type (0 exact, 1 SHA-256, 2 SHA-512).
func TLSAFor(cert *x509.Certificate, usage, selector, mtype uint8) TLSA {
	data := cert.Raw
	if selector == 1 {
		data = cert.RawSubjectPublicKeyInfo
	}
	switch mtype {
	case 1:
		h := sha256.Sum256(data)
		data = h[:]
	case 2:
		h := sha512.Sum512(data)
		data = h[:]
	}
	return TLSA{Usage: usage, Selector: selector, MatchingType: mtype, Data: hex.EncodeToString(data)}
}
