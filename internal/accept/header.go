package accept

import (
	"bytes"
	"strings"
)

// splitHeader splits a CRLF message into its header block (each field
// ending in CRLF, without the blank line) and the rest (the blank line and
// body). A message without a blank line is all header if every line looks
// like a field, else all body.
func splitHeader(b []byte) (hdr, rest []byte) {
	if bytes.HasPrefix(b, []byte("\r\n")) {
		return nil, b
	}
	if i := bytes.Index(b, []byte("\r\n\r\n")); i >= 0 {
		return b[:i+2], b[i+2:]
	}
	return b, []byte("\r\n")
}

type field struct {
	name string // as written
	raw  []byte // whole field including folded lines and final CRLF
}

type header struct{ fields []field }

// parseHeader reads fields; lines that are not fields (no colon) are kept
// as they are so nothing the client sent is lost.
func parseHeader(b []byte) *header {
	h := &header{}
	for len(b) > 0 {
		end := bytes.Index(b, []byte("\r\n"))
		if end < 0 {
			end = len(b)
		} else {
			end += 2
		}
		// Continuation lines belong to the previous field.
		for end < len(b) && (b[end] == ' ' || b[end] == '\t') {
			next := bytes.Index(b[end:], []byte("\r\n"))
			if next < 0 {
				end = len(b)
			} else {
				end += next + 2
			}
		}
		line := b[:end]
		name := ""
		if i := bytes.IndexByte(line, ':'); i > 0 {
			name = strings.TrimRight(string(line[:i]), " \t")
		}
		h.fields = append(h.fields, field{name: name, raw: line})
		b = b[end:]
	}
	return h
}

// get returns the unfolded value of the first field called name.
func (h *header) get(name string) (string, bool) {
	for _, f := range h.fields {
		if strings.EqualFold(f.name, name) {
			v := f.raw[bytes.IndexByte(f.raw, ':')+1:]
			s := strings.ReplaceAll(string(v), "\r\n", "")
			return strings.TrimSpace(s), true
		}
	}
	return "", false
}

func (h *header) remove(name string) {
	out := h.fields[:0]
	for _, f := range h.fields {
		if !strings.EqualFold(f.name, name) {
			out = append(out, f)
		}
	}
	h.fields = out
}

func (h *header) add(name, value string) {
	h.fields = append(h.fields, field{name: name, raw: []byte(name + ": " + value + "\r\n")})
}

func (h *header) appendTo(b []byte) []byte {
	for _, f := range h.fields {
		b = append(b, f.raw...)
	}
	return b
}

// HeaderValue returns the unfolded value of the first header field called
// name in a raw message, or "".
func HeaderValue(msg []byte, name string) string {
	hdr, _ := splitHeader(CanonicalLineEndings(msg))
	v, _ := parseHeader(hdr).get(name)
	return v
}
