// Package strictjson decodes JSON request bodies strictly: exactly one
// value, no unknown fields (for structs), and no duplicate object keys.
//
// encoding/json keeps the last of two equal keys and matches struct fields
// case-insensitively, so {"to": [...], "To": [...]} or {"text": "a",
// "text": "b"} would be accepted silently with one value winning; a proxy,
// a log or a signature check that reads the first value would then see
// another message than the one we send. Duplicates are therefore errors.
// Keys of objects that decode into a struct (or into a type with its own
// UnmarshalJSON, which in this code base are structs too) are compared as
// encoding/json matches them, ignoring case; keys of objects that decode
// into a map or an interface are compared exactly, since "a" and "A" are
// two entries there.
//
// A type that is decoded often (a bulk request holds thousands of send
// requests) can implement FastDecoder: a hand-written one-pass decoder
// over a Lexer for the usual shape of its JSON. It never decides an
// error: on anything unusual it gives up and Decode takes the general
// path above (validity, CheckKeys, encoding/json), so errors and their
// texts stay the same; its fuzz test checks it agrees with that path.
package strictjson

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"unicode"
)

// DuplicateKeyError is an object key given twice.
type DuplicateKeyError struct {
	Key   string // the second occurrence, as written
	First string // the first occurrence, as written (differs from Key only in case)
	Path  string // the JSON path of the object holding the key, "" for the top level
}

func (e *DuplicateKeyError) Error() string {
	where := ""
	if e.Path != "" {
		where = " in " + e.Path
	}
	if e.First != e.Key {
		return fmt.Sprintf("duplicate key %q%s (same field as %q)", e.Key, where, e.First)
	}
	return fmt.Sprintf("duplicate key %q%s", e.Key, where)
}

// Decode decodes data, which must hold exactly one JSON value, into dst.
// Unknown struct fields, duplicate keys and trailing data are errors.
// A dst that is a FastDecoder is tried that way first.
func Decode(data []byte, dst any) error {
	if f, ok := dst.(FastDecoder); ok && f.DecodeFast(data) {
		return nil
	}
	if err := CheckKeys(data, reflect.TypeOf(dst)); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return fmt.Errorf("malformed JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("malformed JSON: more than one value")
	}
	return nil
}

// CheckKeys reports the first duplicate object key in the JSON value data
// (a *DuplicateKeyError), or a syntax error. t is the Go type the value
// will be decoded into; it decides how keys are compared (see the package
// doc) and may be nil (keys are then compared ignoring case).
func CheckKeys(data []byte, t reflect.Type) error {
	if !json.Valid(data) { // a syntax error comes first, wherever a duplicate is
		var v any
		err := json.Unmarshal(data, &v)
		if err == nil {
			err = errors.New("invalid value")
		}
		return fmt.Errorf("malformed JSON: %w", err)
	}
	sc := scanner{data: data}
	if err := sc.value(t, ""); err != nil {
		return err
	}
	if sc.ws(); sc.i != len(data) {
		return errors.New("malformed JSON: more than one value")
	}
	return nil
}

// scanner walks a value that json.Valid accepted and checks the keys of
// its objects, reading the bytes directly: json.Decoder's Token, which
// did this before, cost a third of a bulk request's CPU.
type scanner struct {
	data []byte
	i    int
}

func (s *scanner) ws() { s.i = skipSpace(s.data, s.i) }

// skipSpace returns the index of the first byte at or after i that is
// not JSON white space.
func skipSpace(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// str reads the string at s.i (its opening quote) and returns its value.
// Escapes and non-ASCII bytes (invalid UTF-8 becomes U+FFFD) are left to
// encoding/json.
func (s *scanner) str() (string, error) {
	start, escaped := s.i, false
	for j := start + 1; j < len(s.data); j++ {
		switch c := s.data[j]; {
		case c >= 0x80:
			escaped = true
		case c == '\\':
			escaped = true
			j++
		case c == '"':
			s.i = j + 1
			if !escaped {
				return string(s.data[start+1 : j]), nil
			}
			var v string
			if err := json.Unmarshal(s.data[start:j+1], &v); err != nil {
				return "", fmt.Errorf("malformed JSON: %w", err)
			}
			return v, nil
		}
	}
	return "", SyntaxError(io.EOF)
}

// skipStr moves past the string at s.i, whose value is not needed.
func (s *scanner) skipStr() {
	j := s.i + 1
	for {
		k := bytes.IndexByte(s.data[j:], '"')
		if k < 0 {
			s.i = len(s.data)
			return
		}
		j += k
		bs := 0 // backslashes right before the quote: an odd number escapes it
		for bs < j-s.i-1 && s.data[j-1-bs] == '\\' {
			bs++
		}
		j++
		if bs%2 == 0 {
			s.i = j
			return
		}
	}
}

// value checks the value at s.i, decoded into t (nil: unknown) at path.
func (s *scanner) value(t reflect.Type, path string) error {
	s.ws()
	if s.i >= len(s.data) {
		return SyntaxError(io.EOF)
	}
	switch s.data[s.i] {
	case '"':
		s.skipStr()
		return nil
	case '{':
		s.i++
		t = deref(t)
		if opaque(t) {
			t = nil
		}
		keys := NewKeySet(t, path)
		for {
			s.ws()
			if s.i < len(s.data) && s.data[s.i] == '}' {
				s.i++
				return nil
			}
			if s.i < len(s.data) && s.data[s.i] == ',' {
				s.i++
				s.ws()
			}
			if s.i >= len(s.data) || s.data[s.i] != '"' {
				return SyntaxError(io.EOF)
			}
			key, err := s.str()
			if err != nil {
				return err
			}
			if err := keys.Add(key); err != nil {
				return err
			}
			s.ws()
			s.i++ // the ':'
			if err := s.value(fieldType(t, key), join(path, key)); err != nil {
				return err
			}
		}
	case '[':
		s.i++
		t = deref(t)
		if opaque(t) {
			t = nil
		}
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		} else if t != nil && t.Kind() == reflect.Interface {
			elem = t
		}
		for n := 0; ; n++ {
			s.ws()
			if s.i < len(s.data) && s.data[s.i] == ']' {
				s.i++
				return nil
			}
			if s.i < len(s.data) && s.data[s.i] == ',' {
				s.i++
			}
			if err := s.value(elem, path+"["+strconv.Itoa(n)+"]"); err != nil {
				return err
			}
		}
	}
	// A number, true, false or null: up to the next delimiter.
	for s.i < len(s.data) {
		switch s.data[s.i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return nil
		}
		s.i++
	}
	return nil
}

// foldsKeys says how keys are compared for type t: ignoring case unless
// t is a map or an interface.
func foldsKeys(t reflect.Type) bool {
	t = deref(t)
	return t == nil || !(t.Kind() == reflect.Map || t.Kind() == reflect.Interface)
}

// KeySet remembers the keys of one object and reports a repeated one.
type KeySet struct {
	fold bool
	seen map[string]string // compared form -> as written
	path string
}

// NewKeySet returns the key set for an object decoded into t at path.
func NewKeySet(t reflect.Type, path string) *KeySet {
	return &KeySet{fold: foldsKeys(t), seen: map[string]string{}, path: path}
}

// Add records key; it returns a *DuplicateKeyError when key was seen.
func (s *KeySet) Add(key string) error {
	k := key
	if s.fold {
		k = foldKey(key)
	}
	if first, ok := s.seen[k]; ok {
		return &DuplicateKeyError{Key: key, First: first, Path: s.path}
	}
	s.seen[k] = key
	return nil
}

// SyntaxError is err (io.EOF as io.ErrUnexpectedEOF) as a malformed-JSON
// error, the form every decoder of this package's users reports.
func SyntaxError(err error) error {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("malformed JSON: %w", err)
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func deref(t reflect.Type) reflect.Type {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

var (
	unmarshalerType     = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// opaque types decode themselves: their inner structure is unknown here.
func opaque(t reflect.Type) bool {
	if t == nil || t.Kind() == reflect.Interface {
		return false
	}
	p := reflect.PointerTo(t)
	return p.Implements(unmarshalerType) || p.Implements(textUnmarshalerType)
}

// fieldType is the type a value under key decodes into, or nil when it is
// not known (an unknown field; the decoder refuses it later).
func fieldType(t reflect.Type, key string) reflect.Type {
	if t == nil {
		return nil
	}
	switch t.Kind() {
	case reflect.Map:
		return t.Elem()
	case reflect.Interface:
		return t
	case reflect.Struct:
		return structField(t, foldKey(key), 0)
	}
	return nil
}

// structField finds the field encoding/json would fill for a key (already
// folded), looking into embedded structs as encoding/json does.
func structField(t reflect.Type, key string, depth int) reflect.Type {
	if depth > 8 {
		return nil
	}
	var embedded []reflect.Type
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			if ft := deref(f.Type); ft.Kind() == reflect.Struct {
				embedded = append(embedded, ft)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if strings.EqualFold(name, key) { // key is folded: the same as foldKey(name) == key, without allocating
			return f.Type
		}
	}
	for _, e := range embedded {
		if ft := structField(e, key, depth+1); ft != nil {
			return ft
		}
	}
	return nil
}

// foldKey maps a key to one representative of its case-folding class, so
// that foldKey(a) == foldKey(b) exactly when strings.EqualFold(a, b), the
// comparison encoding/json uses for field names.
func foldKey(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		m := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			if f < m {
				m = f
			}
		}
		b.WriteRune(m)
	}
	return b.String()
}
