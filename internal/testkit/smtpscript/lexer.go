package smtpscript

import (
	"fmt"
	"strconv"
)

// TokenKind classifies a [Token].
type TokenKind int

// Token kinds produced by [Tokenize].
const (
	TokEOF     TokenKind = iota
	TokNewline           // end of a line (statement separator)
	TokWord              // unquoted word: keyword or bare name
	TokString            // quoted string, quotes removed
	TokNumber            // decimal integer
	TokPunct             // any other single character: { } % = ...
)

var tokKindNames = [...]string{"EOF", "newline", "word", "string", "number", "punct"}

func (k TokenKind) String() string {
	if int(k) < len(tokKindNames) {
		return tokKindNames[k]
	}
	return "TokenKind(" + strconv.Itoa(int(k)) + ")"
}

// Token is one lexical element of a script.
type Token struct {
	Kind TokenKind
	Text string // word, string contents, number digits or punctuation
	Num  int64  // value of a TokNumber
	Line int    // 1-based line where the token starts
}

func (t Token) String() string {
	switch t.Kind {
	case TokEOF:
		return "end of file"
	case TokNewline:
		return "newline"
	case TokString:
		return strconv.Quote(t.Text)
	default:
		return fmt.Sprintf("%q", t.Text)
	}
}

// isKeyword reports whether a bare word is a keyword of the language rather
// than a name (a quoted string never is).
func isKeyword(w string) bool {
	switch w {
	case "call", "connect", "disconnect", "expect", "fail", "helo", "name",
		"no-autoconnect", "noop", "ok", "permfail", "port", "proc", "random",
		"repeat", "skip", "sleep", "smtp", "starttls", "tempfail", "test-case",
		"write", "writeln", "include":
		return true
	}
	return false
}

// ParseError reports a syntax error in a script.
type ParseError struct {
	File string
	Line int
	Msg  string
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isAlnum(c byte) bool {
	return isDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isPunct(c byte) bool { return c > ' ' && c < 0x7f && !isAlnum(c) }

// inWord reports whether c may continue an unquoted word (the original
// lexer's allowed_in_string).
func inWord(c byte) bool {
	if isAlnum(c) {
		return true
	}
	switch c {
	case '(', ')', '{', '}', '<', '>', '!', '=', '#', ',':
		return false
	}
	return isPunct(c)
}

// endsNumber reports whether c may follow the digits of a number.
func endsNumber(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', '\v', '\f', ')', ',', '/', '}', '=':
		return true
	}
	return false
}

// Tokenize splits src into tokens. The file name is only used in errors.
// The returned slice always ends with a TokEOF token.
func Tokenize(file string, src []byte) ([]Token, error) {
	var toks []Token
	line := 1
	i := 0
	errf := func(l int, format string, a ...any) error {
		return &ParseError{File: file, Line: l, Msg: fmt.Sprintf(format, a...)}
	}
	for {
		// Blanks and backslash-newline continuations.
		for i < len(src) {
			if src[i] == ' ' || src[i] == '\t' || src[i] == '\r' {
				i++
			} else if src[i] == '\\' && i+1 < len(src) && src[i+1] == '\n' {
				i += 2
				line++
			} else {
				break
			}
		}
		if i >= len(src) {
			toks = append(toks, Token{Kind: TokEOF, Line: line})
			return toks, nil
		}
		c := src[i]
		start := line
		switch {
		case c == '#':
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case c == '\n':
			toks = append(toks, Token{Kind: TokNewline, Text: "\n", Line: line})
			line++
			i++
		case c == '$':
			return nil, errf(line, "macros ($name) are not supported")
		case c == '"' || c == '\'':
			s, n, nl, ok := lexQuoted(src[i:])
			if !ok {
				return nil, errf(start, "unterminated quoted string")
			}
			toks = append(toks, Token{Kind: TokString, Text: s, Line: start})
			i += n
			line += nl
		case isDigit(c) || c == '-':
			j := i + 1
			for j < len(src) && isDigit(src[j]) {
				j++
			}
			digits := string(src[i:j])
			if digits != "-" && (j == len(src) || endsNumber(src[j])) {
				n, err := strconv.ParseInt(digits, 10, 64)
				if err != nil {
					return nil, errf(line, "invalid number %q", digits)
				}
				toks = append(toks, Token{Kind: TokNumber, Text: digits, Num: n, Line: line})
				i = j
				continue
			}
			if c == '-' {
				toks = append(toks, Token{Kind: TokPunct, Text: "-", Line: line})
				i++
				continue
			}
			fallthrough // digits followed by word characters: a word
		case isAlnum(c) || c == ':' || c == '_':
			j := i + 1
			for j < len(src) && inWord(src[j]) {
				j++
			}
			toks = append(toks, Token{Kind: TokWord, Text: string(src[i:j]), Line: line})
			i = j
		default:
			toks = append(toks, Token{Kind: TokPunct, Text: string(c), Line: line})
			i++
		}
	}
}

// lexQuoted reads a quoted string starting at s[0] (the quote). It returns
// the contents, the number of bytes consumed, the number of newlines
// consumed and whether the string was terminated.
func lexQuoted(s []byte) (string, int, int, bool) {
	q := s[0]
	var out []byte
	nl := 0
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c == q:
			return string(out), i + 1, nl, true
		case c == '\\' && i+1 < len(s) && s[i+1] == q:
			out = append(out, q)
			i++
		case c == '\\' && i+1 < len(s) && s[i+1] == '\n':
			i++
			nl++
		default:
			if c == '\n' {
				nl++ // kept: a raw newline is sent as a bare LF
			}
			out = append(out, c)
		}
	}
	return "", len(s), nl, false
}
