package strictjson

import (
	"bytes"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// FastDecoder is a type with a hand-written decoder for the common shape
// of its JSON. Decode tries it first: DecodeFast returns false for
// anything off its path (an unknown or case-variant key, a repeated key,
// null, a number where a string goes, an escape it does not handle,
// invalid JSON, ...), leaving the value as it was, and Decode then takes
// the general path, which also writes the error. So the fast path never
// decides an error, and where it succeeds it must give what the general
// path gives for a zero value (the types' fuzz tests check that).
type FastDecoder interface {
	DecodeFast(data []byte) bool
}

// Lexer reads one JSON value in a single pass for a FastDecoder. It
// accepts a subset of JSON: object keys of printable ASCII without
// escapes, strings whose escapes are valid (surrogates in pairs) and whose bytes
// are valid UTF-8. Anything else, and any syntax error, makes it fail:
// OK turns false, and every later read returns a zero value, so a decoder
// checks OK once at the end.
type Lexer struct {
	data []byte
	i    int
	bad  bool
}

// NewLexer starts reading data.
func NewLexer(data []byte) *Lexer { return &Lexer{data: data} }

// OK reports whether everything read so far was on the fast path.
func (l *Lexer) OK() bool { return !l.bad }

// Fail ends the fast path (a decoder's own reason: a repeated key, an
// unknown one).
func (l *Lexer) Fail() {
	l.bad = true
	l.i = len(l.data)
}

func (l *Lexer) ws() { l.i = skipSpace(l.data, l.i) }

// Peek returns the first byte of the next token, 0 at the end.
func (l *Lexer) Peek() byte {
	l.ws()
	if l.i >= len(l.data) {
		return 0
	}
	return l.data[l.i]
}

func (l *Lexer) expect(c byte) {
	if l.Peek() != c {
		l.Fail()
		return
	}
	l.i++
}

// Open reads the '{' or '[' that opens an object or array.
func (l *Lexer) Open(c byte) { l.expect(c) }

// More reports whether the object or array closed by close has another
// member; n is the number of members read so far. It reads the comma
// before a member, or the closing delimiter.
func (l *Lexer) More(close byte, n int) bool {
	c := l.Peek()
	switch {
	case l.bad || c == 0:
		l.Fail()
		return false
	case c == close:
		l.i++
		return false
	case n > 0:
		if c != ',' {
			l.Fail()
			return false
		}
		l.i++
	}
	return true
}

// Key reads an object key and its colon. The slice is valid until the
// data changes.
func (l *Lexer) Key() []byte {
	if l.Peek() != '"' {
		l.Fail()
		return nil
	}
	start := l.i + 1
	for j := start; j < len(l.data); j++ {
		c := l.data[j]
		if c == '"' {
			l.i = j + 1
			l.expect(':')
			return l.data[start:j]
		}
		if c < ' ' || c > '~' || c == '\\' {
			break
		}
	}
	l.Fail()
	return nil
}

// String reads a string value.
func (l *Lexer) String() string {
	if l.Peek() != '"' {
		l.Fail()
		return ""
	}
	start := l.i + 1
	for j := start; j < len(l.data); j++ {
		c := l.data[j]
		if c == '"' {
			l.i = j + 1
			return string(l.data[start:j])
		}
		if c < ' ' || c >= utf8.RuneSelf || c == '\\' {
			return l.escaped(start, j)
		}
	}
	l.Fail()
	return ""
}

// escaped decodes a string from its first byte that is not plain ASCII
// (at j; start is after the opening quote). It finds the closing quote
// first, so the result is written once into a buffer of the right size,
// plain runs copied whole.
func (l *Lexer) escaped(start, j int) string {
	end := closingQuote(l.data, j)
	if end < 0 {
		l.Fail()
		return ""
	}
	var b strings.Builder
	b.Grow(end - start)
	b.Write(l.data[start:j])
	for j < end {
		run := j
		for run < end && l.data[run] != '\\' {
			if l.data[run] < ' ' {
				l.Fail()
				return ""
			}
			run++
		}
		if run > j {
			if !utf8.Valid(l.data[j:run]) {
				l.Fail() // encoding/json would write U+FFFD
				return ""
			}
			b.Write(l.data[j:run])
			j = run
			continue
		}
		// An escape: closingQuote saw that a byte follows the backslash.
		e := l.data[j+1]
		j += 2
		switch e {
		case '"', '\\', '/':
			b.WriteByte(e)
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'u':
			r := hex4(l.data[j:end])
			j += 4
			if utf16.IsSurrogate(r) { // only a valid pair (a lone half would be U+FFFD)
				hi := r
				r = -1
				if j+1 < end && l.data[j] == '\\' && l.data[j+1] == 'u' {
					if d := utf16.DecodeRune(hi, hex4(l.data[j+2:end])); d != utf8.RuneError {
						r = d
						j += 6
					}
				}
			}
			if r < 0 {
				l.Fail()
				return ""
			}
			b.WriteRune(r)
		default:
			l.Fail()
			return ""
		}
	}
	l.i = end + 1
	return b.String()
}

// closingQuote returns the index of the quote that ends the string
// holding data[j], or -1.
func closingQuote(data []byte, j int) int {
	for j < len(data) {
		k := bytes.IndexAny(data[j:], `"\\`)
		if k < 0 {
			return -1
		}
		j += k
		if data[j] == '"' {
			return j
		}
		j += 2 // a backslash and the byte it escapes
	}
	return -1
}

// hex4 reads the four hex digits of a \u escape, or returns -1.
func hex4(s []byte) rune {
	if len(s) < 4 {
		return -1
	}
	var r rune
	for _, c := range s[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}

// RawString reads a string value of printable ASCII without escapes and
// returns it with its quotes (for a type's own UnmarshalJSON).
func (l *Lexer) RawString() []byte {
	if l.Peek() != '"' {
		l.Fail()
		return nil
	}
	start := l.i
	for j := start + 1; j < len(l.data); j++ {
		c := l.data[j]
		if c == '"' {
			l.i = j + 1
			return l.data[start:l.i]
		}
		if c < ' ' || c > '~' || c == '\\' {
			break
		}
	}
	l.Fail()
	return nil
}

// End checks that only white space is left.
func (l *Lexer) End() bool {
	if l.Peek() != 0 || l.i != len(l.data) {
		l.Fail()
	}
	return !l.bad
}
