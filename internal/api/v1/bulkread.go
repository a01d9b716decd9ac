package v1

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"

	"github.com/posthorn/posthorn/internal/api"
	"github.com/posthorn/posthorn/internal/strictjson"
)

// The bulk body is read as a stream: the envelope {"messages": [...]}
// byte by byte, and each item cut out whole by finding its end (strings
// skipped, brackets counted) without decoding it. The item's own decoder
// then reads it once; json.Decoder, used here before, scanned every item
// twice and copied it. An item is not checked here: the item function
// must refuse an invalid one (stopping the request with a syntax error,
// as a body that is not JSON is refused whole).

// bulkReader buffers the body; buf[off:] is not read yet.
type bulkReader struct {
	r   io.Reader
	buf []byte
	off int
	err error // the reader's error (io.EOF at the end), once it gave one
}

// fill reads more of the body, keeping buf[off:]. It returns false when
// no more comes (err is set).
func (b *bulkReader) fill() bool {
	for b.err == nil {
		if b.off > 0 {
			n := copy(b.buf, b.buf[b.off:])
			b.buf, b.off = b.buf[:n], 0
		}
		if len(b.buf) == cap(b.buf) {
			b.buf = append(b.buf, make([]byte, max(cap(b.buf), 64<<10))...)[:len(b.buf)]
		}
		n, err := b.r.Read(b.buf[len(b.buf):cap(b.buf)])
		b.buf = b.buf[:len(b.buf)+n]
		b.err = err
		if n > 0 {
			return true
		}
	}
	return false
}

// next skips white space and returns the next byte, not consuming it, or
// the reader's error (io.EOF at the end of the body).
func (b *bulkReader) next() (byte, error) {
	for {
		for b.off < len(b.buf) {
			switch c := b.buf[b.off]; c {
			case ' ', '\t', '\r', '\n':
				b.off++
			default:
				return c, nil
			}
		}
		if !b.fill() {
			return 0, b.err
		}
	}
}

// valueEnd returns the length of the value starting at off (0 when a
// delimiter is there), reading as much as it needs.
func (b *bulkReader) valueEnd() (int, error) {
	depth, inStr, esc := 0, false, false
	j := b.off
	for {
		for ; j < len(b.buf); j++ {
			c := b.buf[j]
			if inStr {
				switch {
				case esc:
					esc = false
				case c == '\\':
					esc = true
				case c == '"':
					inStr = false
					if depth == 0 {
						return j + 1 - b.off, nil
					}
				}
				continue
			}
			switch c {
			case '"':
				inStr = true
			case '{', '[':
				depth++
			case '}', ']':
				if depth == 0 {
					return j - b.off, nil // the end of a number or literal
				}
				if depth--; depth == 0 {
					return j + 1 - b.off, nil
				}
			case ',', ' ', '\t', '\r', '\n', ':':
				if depth == 0 {
					return j - b.off, nil
				}
			}
		}
		rel := j - b.off
		if !b.fill() {
			if b.err == io.EOF && depth == 0 && !inStr && rel > 0 {
				return rel, nil // a number or literal at the end
			}
			return 0, strictjson.SyntaxError(b.err)
		}
		j = b.off + rel
	}
}

// value cuts out the next value; it must not be empty.
func (b *bulkReader) value() ([]byte, error) {
	if _, err := b.next(); err != nil {
		return nil, strictjson.SyntaxError(err)
	}
	n, err := b.valueEnd()
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, badChar(b.buf[b.off], "looking for beginning of value")
	}
	v := b.buf[b.off : b.off+n]
	b.off += n
	return v, nil
}

// expect consumes c as the next byte.
func (b *bulkReader) expect(c byte, context string) error {
	got, err := b.next()
	if err != nil {
		return strictjson.SyntaxError(err)
	}
	if got != c {
		return badChar(got, context)
	}
	b.off++
	return nil
}

// literal reads null (the only literal the envelope accepts).
func (b *bulkReader) null() error {
	v, err := b.value()
	if err != nil {
		return err
	}
	if string(v) != "null" {
		return fmt.Errorf("malformed JSON: invalid value %q", clipRaw(v))
	}
	return nil
}

// key reads an object key and its colon.
func (b *bulkReader) key() (string, error) {
	if c, err := b.next(); err != nil {
		return "", strictjson.SyntaxError(err)
	} else if c != '"' {
		return "", badChar(c, "looking for beginning of object key string")
	}
	raw, err := b.value()
	if err != nil {
		return "", err
	}
	var name string
	if err := json.Unmarshal(raw, &name); err != nil {
		return "", fmt.Errorf("malformed JSON: %w", err)
	}
	return name, b.expect(':', "after object key")
}

func badChar(c byte, context string) error {
	return fmt.Errorf("malformed JSON: invalid character %q %s", c, context)
}

func clipRaw(v []byte) string {
	if len(v) > 20 {
		return string(v[:20]) + "..."
	}
	return string(v)
}

// readBulk walks {"messages": [item, ...]} and calls item with each
// item's JSON in order (valid only during the call); an error from item
// stops the walk and is returned. Errors are the body's (too large,
// overloaded), a JSON error, or an *APIErrorDetail (too_many_messages).
func (v *Server) readBulk(r io.Reader, item func(i int, raw []byte) error) error {
	b := &bulkReader{r: r, buf: make([]byte, 0, 64<<10)}
	c, err := b.next()
	if err != nil {
		return strictjson.SyntaxError(err)
	}
	switch c {
	case 'n': // null is a request without messages, as for encoding/json
		if err := b.null(); err != nil {
			return err
		}
	case '{':
		b.off++
		if err := v.readBulkObject(b, item); err != nil {
			return err
		}
	default:
		return fmt.Errorf("malformed JSON: want an object, found %q", c)
	}
	if _, err := b.next(); err != io.EOF {
		if err == nil {
			return errors.New("malformed JSON: more than one value")
		}
		return fmt.Errorf("malformed JSON: %w", err)
	}
	return nil
}

// readBulkObject reads the envelope's members after its '{'.
func (v *Server) readBulkObject(b *bulkReader, item func(i int, raw []byte) error) error {
	keys := strictjson.NewKeySet(reflect.TypeFor[api.BulkRequest](), "")
	n := 0
	for m := 0; ; m++ {
		c, err := b.next()
		if err != nil {
			return strictjson.SyntaxError(err)
		}
		if m == 0 && c == '}' || m > 0 && c != ',' {
			return b.expect('}', "after object key:value pair")
		}
		if m > 0 {
			b.off++
		}
		name, err := b.key()
		if err != nil {
			return err
		}
		if err := keys.Add(name); err != nil {
			return err
		}
		if !strings.EqualFold(name, "messages") {
			return fmt.Errorf("malformed JSON: json: unknown field %q", name)
		}
		if c, err = b.next(); err != nil {
			return strictjson.SyntaxError(err)
		}
		if c == 'n' {
			if err := b.null(); err != nil {
				return err
			}
			continue // null: no messages
		}
		if c != '[' {
			return fmt.Errorf("malformed JSON: messages must be an array, not %q", c)
		}
		b.off++
		for k := 0; ; k++ {
			c, err := b.next()
			if err != nil {
				return strictjson.SyntaxError(err)
			}
			if k == 0 && c == ']' || k > 0 && c != ',' {
				if err := b.expect(']', "after array element"); err != nil {
					return err
				}
				break
			}
			if k > 0 {
				b.off++
			}
			if n == v.MaxBulk {
				return &api.APIErrorDetail{Code: "too_many_messages", Message: fmt.Sprintf("at most %d messages per bulk request", v.MaxBulk), Field: "messages"}
			}
			raw, err := b.value()
			if err != nil {
				return err
			}
			if err := item(n, raw); err != nil {
				return err
			}
			n++
		}
	}
}
