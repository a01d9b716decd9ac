package accept

import (
	"bytes"
	"strings"

	"github.com/posthorn/posthorn/internal/store"
)

// message is a submission's body read once, for the checks and for
// prepare: line endings made CRLF, the header parsed, the lane chosen.
type message struct {
	checked    []byte // the body with CRLF line endings, as the checks see it
	body       []byte // checked, its last line ending in CRLF
	hdr, rest  []byte // body split by splitHeader
	h          *header
	lane       store.Lane // the lane the message goes in
	laneHeader bool       // the header has an X-Posthorn-Lane field
	badLane    bool       // whose value is not a lane: prepare refuses the message
}

// read reads sub's body into m.
func (m *message) read(sub *Submission) {
	m.checked = CanonicalLineEndings(sub.Body)
	m.body = m.checked
	if len(m.body) > 0 && !bytes.HasSuffix(m.body, crlf) {
		// The last line ends like the others (and a field posthorn adds
		// after a header-only message does not join it).
		m.body = append(m.body[:len(m.body):len(m.body)], crlf...)
	}
	m.hdr, m.rest = splitHeader(m.body)
	m.h = parseHeader(m.hdr)
	m.lane = sub.Lane
	if v, ok := m.h.get(LaneHeader); ok {
		m.laneHeader = true
		l, err := store.ParseLane(strings.ToLower(v))
		if err != nil {
			m.badLane = true
		} else if !sub.LaneFixed {
			m.lane = l
		}
	}
	if m.lane == "" {
		m.lane = store.LaneNormal
	}
}

// splitHeader splits a CRLF message into its header section (whole
// fields, each ending in CRLF) and the rest, which starts with the blank
// line before the body. The header section ends at the first empty line,
// or at the first line that is neither a header field nor the
// continuation of one: that line starts the body, and rest gets the blank
// line the message lacked, so that body text never mixes with the fields
// posthorn adds (a message with no header at all is all body). A message
// that is only header gets an empty body.
func splitHeader(b []byte) (hdr, rest []byte) {
	i := 0
	for i < len(b) {
		end := bytes.Index(b[i:], crlf)
		if end < 0 {
			end = len(b)
		} else {
			end += i + 2
		}
		line := b[i:end]
		if bytes.Equal(line, crlf) {
			return b[:i], b[i:]
		}
		if !isField(line) && !(i > 0 && isContinuation(line)) {
			break
		}
		i = end
	}
	if i == len(b) {
		return b, crlf
	}
	rest = make([]byte, 0, len(b)-i+2)
	rest = append(append(rest, crlf...), b[i:]...)
	return b[:i], rest
}

var crlf = []byte("\r\n")

// isField reports whether line starts a header field: a name of printable
// ASCII without colon (RFC 5322 ftext), then a colon (white space before
// the colon is the obsolete syntax, still accepted).
func isField(line []byte) bool {
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		return false
	}
	name := bytes.TrimRight(line[:colon], " \t")
	if len(name) == 0 {
		return false
	}
	for _, c := range name {
		if c < 33 || c > 126 {
			return false
		}
	}
	return true
}

func isContinuation(line []byte) bool {
	return len(line) > 0 && (line[0] == ' ' || line[0] == '\t')
}

// HasHeader reports whether msg starts with a header field (a message
// without one would be all body).
func HasHeader(msg []byte) bool {
	end := bytes.IndexAny(msg, "\r\n")
	if end < 0 {
		end = len(msg)
	}
	return isField(msg[:end])
}

type field struct {
	name string // as written
	raw  []byte // whole field including folded lines and final CRLF
}

type header struct{ fields []field }

// parseHeader reads fields; lines that are not fields (no colon) are kept
// as they are so nothing the client sent is lost.
func parseHeader(b []byte) *header {
	h := &header{fields: make([]field, 0, bytes.Count(b, crlf)+4)} // room for the fields prepare adds
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
			return strings.TrimSpace(unfold(f.raw[bytes.IndexByte(f.raw, ':')+1:])), true
		}
	}
	return "", false
}

// unfold is a field's value without its CRLFs (the final one and those
// of folded lines), in one allocation for the usual one-line field.
func unfold(v []byte) string {
	v = bytes.TrimSuffix(v, crlf)
	if bytes.Contains(v, crlf) {
		return strings.ReplaceAll(string(v), "\r\n", "")
	}
	return string(v)
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
