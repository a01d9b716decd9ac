package smtpproto

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// Limits from RFC 5321 §4.5.3.1.
const (
	MaxLocalPart = 64
	MaxDomain    = 255
	MaxPath      = 256
)

// Address is a parsed envelope mailbox. Domain is lower-cased and, for
// internationalised names, in A-label (xn--) form so it can be looked up
// in DNS; Local is kept exactly as given (local parts are case-sensitive).
type Address struct {
	Local  string
	Domain string
}

// String renders local@domain, quoting the local part when it needs it.
func (a Address) String() string {
	if a.Local == "" && a.Domain == "" {
		return ""
	}
	return QuoteLocal(a.Local) + "@" + a.Domain
}

// ErrNullPath is returned by ParseAddress for the empty (null) reverse path.
var ErrNullPath = errors.New("null path")

// ParseAddress validates an envelope address given without angle brackets
// ("user@example.com", "\"a b\"@example.com", "user@[192.0.2.1]"). UTF-8 in
// the local part or domain is accepted only when utf8OK (SMTPUTF8). Source
// routes and bare local parts are refused: posthorn never relays on a
// route's say-so, and every recipient needs a domain to be delivered to.
func ParseAddress(s string, utf8OK bool) (Address, error) {
	if s == "" {
		return Address{}, ErrNullPath
	}
	if len(s) > MaxPath {
		return Address{}, fmt.Errorf("address longer than %d octets", MaxPath)
	}
	if !utf8.ValidString(s) {
		return Address{}, errors.New("address is not valid UTF-8")
	}
	if strings.HasPrefix(s, "@") {
		return Address{}, errors.New("source routes are not accepted")
	}
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return Address{}, errors.New("address has no domain")
	}
	local, domain := s[:at], s[at+1:]
	if err := checkLocal(local, utf8OK); err != nil {
		return Address{}, err
	}
	d, err := NormalizeDomain(domain, utf8OK)
	if err != nil {
		return Address{}, err
	}
	if strings.HasPrefix(local, "\"") {
		local = unquoteLocal(local)
	}
	return Address{Local: local, Domain: d}, nil
}

// NormalizeDomain validates a domain or address literal and returns it in
// the form used for DNS and for grouping: lower case, A-labels, no trailing
// dot. utf8OK allows U-labels (converted to A-labels).
func NormalizeDomain(domain string, utf8OK bool) (string, error) {
	if domain == "" {
		return "", errors.New("empty domain")
	}
	if strings.HasPrefix(domain, "[") {
		return checkLiteral(domain)
	}
	if len(domain) > MaxDomain {
		return "", fmt.Errorf("domain longer than %d octets", MaxDomain)
	}
	if !isASCII(domain) {
		if !utf8OK {
			return "", errors.New("non-ASCII domain without SMTPUTF8")
		}
		a, err := idna.Lookup.ToASCII(domain)
		if err != nil {
			return "", fmt.Errorf("invalid internationalised domain: %w", err)
		}
		domain = a
	}
	domain = strings.ToLower(domain)
	labels := strings.Split(domain, ".")
	for _, l := range labels {
		if !validLabel(l) {
			return "", fmt.Errorf("invalid domain %q", clip(domain))
		}
	}
	return domain, nil
}

func checkLiteral(lit string) (string, error) {
	if !strings.HasSuffix(lit, "]") {
		return "", errors.New("unterminated address literal")
	}
	inner := lit[1 : len(lit)-1]
	v6 := false
	if rest, ok := strings.CutPrefix(inner, "IPv6:"); ok {
		inner, v6 = rest, true
	}
	ip, err := netip.ParseAddr(inner)
	if err != nil || ip.Is6() != v6 || ip.Zone() != "" {
		return "", fmt.Errorf("invalid address literal %q", clip(lit))
	}
	return lit, nil
}

func validLabel(l string) bool {
	if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// atext per RFC 5322 §3.2.3, plus UTF-8 when allowed (RFC 6531).
func isAtext(r rune, utf8OK bool) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		return true
	case strings.ContainsRune("!#$%&'*+-/=?^_`{|}~", r):
		return true
	case r >= 0x80:
		return utf8OK
	}
	return false
}

func checkLocal(local string, utf8OK bool) error {
	if local == "" {
		return errors.New("empty local part")
	}
	if len(local) > MaxLocalPart {
		return fmt.Errorf("local part longer than %d octets", MaxLocalPart)
	}
	if !utf8OK && !isASCII(local) {
		return errors.New("non-ASCII local part without SMTPUTF8")
	}
	if local[0] == '"' {
		return checkQuoted(local, utf8OK)
	}
	// dot-atom: atoms separated by single dots.
	for _, atom := range strings.Split(local, ".") {
		if atom == "" {
			return errors.New("empty atom in local part")
		}
		for _, r := range atom {
			if !isAtext(r, utf8OK) {
				return fmt.Errorf("character %q not allowed in local part", r)
			}
		}
	}
	return nil
}

func checkQuoted(q string, utf8OK bool) error {
	if len(q) < 2 || q[len(q)-1] != '"' {
		return errors.New("unterminated quoted local part")
	}
	inner := q[1 : len(q)-1]
	for i := 0; i < len(inner); i++ {
		c := inner[i]
		switch {
		case c == '\\':
			i++
			if i >= len(inner) || inner[i] < 32 || inner[i] > 126 {
				return errors.New("bad quoted pair in local part")
			}
		case c == '"':
			return errors.New("unescaped quote in local part")
		case c >= 32 && c <= 126:
		case c >= 0x80 && utf8OK:
		default:
			return fmt.Errorf("control character %#x in local part", c)
		}
	}
	return nil
}

func unquoteLocal(q string) string {
	inner := q[1 : len(q)-1]
	var b strings.Builder
	for i := 0; i < len(inner); i++ {
		if inner[i] == '\\' && i+1 < len(inner) {
			i++
		}
		b.WriteByte(inner[i])
	}
	return b.String()
}

// QuoteLocal renders a local part as a dot-atom when it is one and as a
// quoted string otherwise (RFC 5321 §4.1.2).
func QuoteLocal(local string) string {
	if local == "" {
		return `""`
	}
	plain := true
	for _, atom := range strings.Split(local, ".") {
		if atom == "" {
			plain = false
			break
		}
		for _, r := range atom {
			if !isAtext(r, true) {
				plain = false
			}
		}
	}
	if plain {
		return local
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(local); i++ {
		if local[i] == '"' || local[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(local[i])
	}
	b.WriteByte('"')
	return b.String()
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
