package compose

import (
	"encoding/base64"
	"fmt"
	"strings"
	"unicode/utf8"
)

const (
	foldAt  = 78  // RFC 5322 §2.1.1: lines SHOULD be at most 78 characters
	maxLine = 998 // and MUST be at most 998
	maxWord = 75  // RFC 2047 §2: an encoded-word is at most 75 characters
)

// fold renders "Name: value\r\n", folding before single spaces so that no
// line is longer than 78 characters where that is possible. With
// quoteAware it does not fold inside quoted-strings (parameters of
// Content-Type and Content-Disposition).
func fold(name, value string, quoteAware bool) (string, error) {
	return foldWords(name, splitFoldable(value, quoteAware))
}

// splitFoldable cuts s before every space that has non-space characters on
// both sides. Folding only there keeps every continuation line non-blank
// and lets both RFC 5322 unfolding (remove the CRLF) and Go's textproto
// (trim, join with one space) restore the value exactly.
func splitFoldable(s string, quoteAware bool) []string {
	var segs []string
	start, inQuote := 0, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case quoteAware && inQuote && c == '\\':
			i++
		case quoteAware && c == '"':
			inQuote = !inQuote
		case c == ' ' && !inQuote && i > 0 && i+1 < len(s) && !isWSP(s[i-1]) && !isWSP(s[i+1]):
			segs = append(segs, s[start:i])
			start = i + 1
		}
	}
	return append(segs, s[start:])
}

// foldWords writes the words separated by single spaces, putting a CRLF
// before the space where the line would pass 78 characters.
func foldWords(name string, words []string) (string, error) {
	var b strings.Builder
	b.WriteString(name)
	b.WriteByte(':')
	line, longest := len(name)+1, 0
	for i, w := range words {
		if i > 0 && line+1+len(w) > foldAt {
			b.WriteString("\r\n")
			line = 0
		}
		if w != "" || len(words) > 1 {
			b.WriteByte(' ')
			line++
		}
		b.WriteString(w)
		line += len(w)
		longest = max(longest, line)
	}
	if longest > maxLine {
		return "", fmt.Errorf("the %s field has a word too long to fit in a %d-character line", name, maxLine)
	}
	b.WriteString("\r\n")
	return b.String(), nil
}

func isWSP(c byte) bool { return c == ' ' || c == '\t' }

// printable reports whether s is printable ASCII (tabs allowed).
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if (s[i] < ' ' || s[i] > '~') && s[i] != '\t' {
			return false
		}
	}
	return true
}

// subjectField writes the subject as is when readers are sure to get it
// back exactly, and as encoded-words otherwise.
func subjectField(s string) (string, error) {
	if printable(s) && !strings.Contains(s, "=?") && strings.TrimLeft(s, " \t") == s && strings.TrimRight(s, " \t") == s {
		if f, err := fold("Subject", s, false); err == nil {
			return f, nil
		}
	}
	return fold("Subject", strings.Join(encodeWords(s, foldAt-len("Subject: ")), " "), false)
}

// extraField writes a caller's header: as is when it is printable ASCII
// (it may be structured, like List-Unsubscribe), as encoded-words when not.
func extraField(name, v string) (string, error) {
	if printable(v) {
		return fold(name, v, false)
	}
	return fold(name, strings.Join(encodeWords(v, foldAt-len(name)-2), " "), false)
}

// addressField writes a list of mailboxes, folding between addresses and
// inside display names, never inside an e-mail address.
func addressField(name string, list []Address) (string, error) {
	var words []string
	for i, a := range list {
		first := maxWord
		if i == 0 {
			first = foldAt - len(name) - 2
		}
		if a.Name != "" {
			words = append(words, splitFoldable(phrase(a.Name, first), false)...)
			words = append(words, "<"+a.Email+">")
		} else {
			words = append(words, a.Email)
		}
		if i < len(list)-1 {
			words[len(words)-1] += ","
		}
	}
	return foldWords(name, words)
}

// formatAddress renders `"Name" <email>`, `=?utf-8?q?...?= <email>` or a
// bare email. first is the length the first encoded-word may have.
func formatAddress(a Address, first int) string {
	if a.Name == "" {
		return a.Email
	}
	return phrase(a.Name, first) + " <" + a.Email + ">"
}

// phrase renders a display name as a quoted-string when it is printable
// ASCII, and as encoded-words otherwise, or when a quoted-string would not
// come back exactly (leading, trailing or tab whitespace, "=?", a word
// too long to fold).
func phrase(s string, first int) string {
	plain := printable(s) && !strings.Contains(s, "\t") && !strings.Contains(s, "=?") && strings.TrimSpace(s) == s
	for _, w := range strings.Split(s, " ") {
		plain = plain && len(w) < 900
	}
	if !plain {
		return strings.Join(encodeWords(s, first), " ")
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}

// encodeWords encodes s as RFC 2047 utf-8 encoded-words, in Q encoding,
// or in B when that is at least a quarter shorter (mostly non-Latin text). Words hold whole characters; the first is
// at most first characters long (when that leaves room for one character),
// the others at most 75. The Q encoding writes only letters, digits and
// !*+-/ literally, which makes its words valid in phrases too (§5(3)).
func encodeWords(s string, first int) []string {
	if first < 24 || first > maxWord {
		first = maxWord
	}
	q, b := splitWords(s, 'q', first), splitWords(s, 'b', first)
	if len(strings.Join(b, " "))*4 < len(strings.Join(q, " "))*3 {
		return b
	}
	return q
}

const wordOverhead = len("=?utf-8?q??=")

func splitWords(s string, enc byte, first int) []string {
	var words []string
	budget, start, qlen := first, 0, 0
	for i := 0; i < len(s); {
		_, size := utf8.DecodeRuneInString(s[i:])
		n := 0
		for j := i; j < i+size; j++ {
			n += qLen(s[j])
		}
		var length int
		if enc == 'q' {
			length = qlen + n
		} else {
			length = base64.StdEncoding.EncodedLen(i + size - start)
		}
		if wordOverhead+length > budget && i > start {
			words = append(words, encodeWord(s[start:i], enc))
			start, qlen, budget = i, 0, maxWord
			continue
		}
		qlen += n
		i += size
	}
	return append(words, encodeWord(s[start:], enc))
}

func qLiteral(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!*+-/", c) >= 0
}

func qLen(c byte) int {
	if c == ' ' || qLiteral(c) {
		return 1
	}
	return 3
}

func encodeWord(s string, enc byte) string {
	var b strings.Builder
	b.WriteString("=?utf-8?")
	b.WriteByte(enc)
	b.WriteByte('?')
	if enc == 'b' {
		b.WriteString(base64.StdEncoding.EncodeToString([]byte(s)))
	} else {
		const hex = "0123456789ABCDEF"
		for i := 0; i < len(s); i++ {
			switch c := s[i]; {
			case c == ' ':
				b.WriteByte('_')
			case qLiteral(c):
				b.WriteByte(c)
			default:
				b.WriteByte('=')
				b.WriteByte(hex[c>>4])
				b.WriteByte(hex[c&15])
			}
		}
	}
	b.WriteString("?=")
	return b.String()
}
