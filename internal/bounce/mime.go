package bounce

import (
	"bytes"
	"encoding/base64"
	"io"
	"mime"
	"mime/quotedprintable"
	"strings"
	"unicode/utf8"
)

// Limits that bound the work done on one message, whatever it contains.
const (
	// MaxMessageSize is how much of a message is looked at; the rest is
	// ignored (a bounce's notice and report come first).
	MaxMessageSize = 4 << 20
	maxDepth       = 8    // nesting of multiparts and message/rfc822
	maxParts       = 256  // parts in the whole tree
	maxFields      = 1000 // header fields per part
	maxHeaderBytes = 256 << 10
)

// field is one header field, name as written, value unfolded (line breaks
// removed) and RFC 2047-decoded.
type field struct {
	name, value string
}

type header []field

// get returns the first value of the named field ("" when absent).
func (h header) get(name string) string {
	for _, f := range h {
		if strings.EqualFold(f.name, name) {
			return f.value
		}
	}
	return ""
}

func (h header) has(name string) bool {
	for _, f := range h {
		if strings.EqualFold(f.name, name) {
			return true
		}
	}
	return false
}

// part is one node of a parsed MIME tree. Body is the transfer-decoded
// content (charset not converted); children are set for multiparts and
// for message/rfc822-like parts (one child: the embedded message).
type part struct {
	hdr       header
	mediaType string // lower case, "text/plain" when missing
	params    map[string]string
	body      []byte
	children  []*part
}

// parser carries the limits shared by one Parse call.
type parser struct {
	parts    int
	warnings []string
}

func (p *parser) warn(s string) {
	if len(p.warnings) < 20 {
		p.warnings = append(p.warnings, s)
	}
}

// normalizeEOL turns CRLF and lone CR into LF.
func normalizeEOL(b []byte) []byte {
	if bytes.IndexByte(b, '\r') < 0 {
		return b
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c == '\r' {
			if i+1 < len(b) && b[i+1] == '\n' {
				continue
			}
			c = '\n'
		}
		out = append(out, c)
	}
	return out
}

// splitHeader separates a header block from the body. It is lenient: a
// leading mbox "From " line is skipped, and the first line that is neither
// a field nor a continuation ends the header.
func splitHeader(b []byte) (header, []byte) {
	var h header
	rest := b
	first := true
	size := 0
	for len(rest) > 0 {
		line, next := cutLine(rest)
		if first && bytes.HasPrefix(line, []byte("From ")) {
			rest = next
			first = false
			continue
		}
		first = false
		if len(bytes.TrimSpace(line)) == 0 {
			return h, next
		}
		if line[0] == ' ' || line[0] == '\t' {
			if len(h) == 0 {
				return h, rest
			}
			size += len(line)
			if size < maxHeaderBytes {
				last := &h[len(h)-1]
				last.value += " " + strings.TrimSpace(string(line))
			}
			rest = next
			continue
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !validFieldName(line[:colon]) {
			return h, rest
		}
		size += len(line)
		if len(h) < maxFields && size < maxHeaderBytes {
			h = append(h, field{name: string(bytes.TrimSpace(line[:colon])), value: strings.TrimSpace(string(line[colon+1:]))})
		}
		rest = next
	}
	return h, rest
}

func validFieldName(b []byte) bool {
	b = bytes.TrimRight(b, " \t")
	if len(b) == 0 || len(b) > 76 {
		return false
	}
	for _, c := range b {
		if c <= ' ' || c >= 127 || c == ':' {
			return false
		}
	}
	return true
}

// cutLine returns the first line (without "\n") and what follows it.
func cutLine(b []byte) (line, rest []byte) {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		return b[:i], b[i+1:]
	}
	return b, nil
}

var wordDecoder = &mime.WordDecoder{CharsetReader: charsetReader}

// decodeHeaders applies RFC 2047 decoding to every value.
func decodeHeaders(h header) {
	for i := range h {
		if strings.Contains(h[i].value, "=?") {
			if d, err := wordDecoder.DecodeHeader(h[i].value); err == nil {
				h[i].value = d
			}
		}
		h[i].value = strings.ToValidUTF8(h[i].value, "\uFFFD")
	}
}

// parseEntity parses one MIME entity (header and body) into a tree.
func (p *parser) parseEntity(b []byte, depth int, defaultType string) *part {
	h, body := splitHeader(b)
	decodeHeaders(h)
	return p.parseBody(h, body, depth, defaultType)
}

func (p *parser) parseBody(h header, body []byte, depth int, defaultType string) *part {
	p.parts++
	pt := &part{hdr: h, mediaType: defaultType, params: map[string]string{}}
	if ct := h.get("Content-Type"); ct != "" {
		mt, params := parseContentType(ct)
		if mt != "" {
			pt.mediaType = mt
			pt.params = params
		}
	}
	pt.body = p.decodeTransfer(h.get("Content-Transfer-Encoding"), body)
	if depth >= maxDepth || p.parts >= maxParts {
		if depth >= maxDepth {
			p.warn("nesting too deep; inner parts kept as text")
		}
		return pt
	}
	switch {
	case strings.HasPrefix(pt.mediaType, "multipart/"):
		boundary := pt.params["boundary"]
		if boundary == "" {
			// A folded parameter whose continuation lost its indent
			// ended the header; it is the body's first line.
			first, rest := cutLine(pt.body)
			if k, v, ok := strings.Cut(strings.TrimSpace(string(first)), "="); ok && strings.EqualFold(strings.TrimSpace(k), "boundary") {
				boundary = strings.Trim(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), ";")), "\"")
				pt.body = rest
			}
		}
		if boundary == "" {
			pt.mediaType = "text/plain"
			p.warn("multipart without boundary; read as text")
			return pt
		}
		sub := "text/plain"
		if pt.mediaType == "multipart/digest" {
			sub = "message/rfc822"
		}
		for _, chunk := range splitMultipart(pt.body, boundary) {
			if p.parts >= maxParts {
				p.warn("too many parts")
				break
			}
			pt.children = append(pt.children, p.parseEntity(chunk, depth+1, sub))
		}
		if len(pt.children) == 0 {
			p.warn("multipart without its boundary lines; read as text")
			pt.mediaType = "text/plain"
		}
	case isMessageType(pt.mediaType):
		pt.children = append(pt.children, p.parseEntity(pt.body, depth+1, "text/plain"))
	}
	return pt
}

func isMessageType(mt string) bool {
	switch mt {
	case "message/rfc822", "message/global", "message/rfc822-headers", "text/rfc822-headers",
		"message/global-headers", "message/partial-rfc822", "text/rfc822-header":
		return true
	}
	return false
}

// parseContentType is mime.ParseMediaType with a fallback for the broken
// values found in the wild (unquoted specials, duplicate parameters).
func parseContentType(v string) (string, map[string]string) {
	mt, params, err := mime.ParseMediaType(v)
	if err == nil {
		return strings.ToLower(mt), params
	}
	params = map[string]string{}
	segs := strings.Split(v, ";")
	mt = strings.ToLower(strings.TrimSpace(segs[0]))
	if !strings.Contains(mt, "/") || strings.ContainsAny(mt, " \t\"") {
		mt = ""
	}
	for _, s := range segs[1:] {
		k, val, ok := strings.Cut(s, "=")
		if !ok {
			continue
		}
		k = strings.ToLower(strings.TrimSpace(k))
		val = strings.TrimSpace(val)
		if strings.HasPrefix(val, "\"") {
			val = strings.TrimPrefix(val, "\"")
			if i := strings.IndexByte(val, '"'); i >= 0 {
				val = val[:i]
			}
		}
		if _, dup := params[k]; !dup && k != "" {
			params[k] = val
		}
	}
	return mt, params
}

// splitMultipart returns the body parts between boundary lines. Text
// before the first boundary (the preamble) and after the closing one is
// dropped; a missing closing boundary ends the last part at the end.
func splitMultipart(body []byte, boundary string) [][]byte {
	delim := []byte("--" + boundary)
	var parts [][]byte
	start := -1
	rest := body
	pos := 0
	for len(rest) > 0 {
		line, next := cutLine(rest)
		lineStart := pos
		pos += len(rest) - len(next)
		rest = next
		if !bytes.HasPrefix(line, delim) {
			continue
		}
		tail := bytes.TrimRight(line[len(delim):], " \t")
		closing := bytes.Equal(tail, []byte("--"))
		if len(tail) != 0 && !closing {
			continue
		}
		if start >= 0 {
			end := lineStart
			if end > start {
				end-- // the line break before the delimiter belongs to it
			}
			parts = append(parts, body[start:end])
		}
		if closing {
			return parts
		}
		start = pos
	}
	if start >= 0 && start < len(body) {
		parts = append(parts, body[start:])
	}
	return parts
}

// decodeTransfer undoes base64 and quoted-printable leniently: what
// decodes is kept, garbage is skipped.
func (p *parser) decodeTransfer(cte string, body []byte) []byte {
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "base64":
		return decodeBase64(body)
	case "quoted-printable":
		out, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(body)))
		if err != nil {
			p.warn("quoted-printable: " + err.Error())
			return lenientQP(body)
		}
		return out
	}
	return body
}

func decodeBase64(body []byte) []byte {
	clean := make([]byte, 0, len(body))
	for _, c := range body {
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '+', c == '/':
			clean = append(clean, c)
		}
	}
	if len(clean)%4 == 1 {
		clean = clean[:len(clean)-1]
	}
	out, err := base64.RawStdEncoding.DecodeString(string(clean))
	if err != nil {
		return body
	}
	return out
}

// lenientQP decodes =XX escapes and soft breaks, leaving anything else.
func lenientQP(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] != '=' {
			out = append(out, b[i])
			continue
		}
		if i+1 < len(b) && b[i+1] == '\n' {
			i++
			continue
		}
		if i+2 < len(b) && isHex(b[i+1]) && isHex(b[i+2]) {
			out = append(out, unhex(b[i+1])<<4|unhex(b[i+2]))
			i += 2
			continue
		}
		out = append(out, '=')
	}
	return out
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}

// charsetReader converts the single-byte charsets the standard library
// does not know; others are refused (the caller keeps the raw text).
func charsetReader(charset string, r io.Reader) (io.Reader, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxMessageSize))
	if err != nil {
		return nil, err
	}
	s, ok := toUTF8(charset, b)
	if !ok {
		return nil, errUnknownCharset
	}
	return strings.NewReader(s), nil
}

type charsetError struct{}

func (charsetError) Error() string { return "unsupported charset" }

var errUnknownCharset = charsetError{}

// toUTF8 converts b from charset to UTF-8 when the charset is one of the
// ASCII-compatible ones handled here. ok is false for others (ISO-2022-JP,
// Shift_JIS, ...): the text is then returned with invalid bytes replaced,
// which keeps the ASCII a bounce's codes and addresses are written in.
func toUTF8(charset string, b []byte) (string, bool) {
	switch strings.ToLower(strings.Trim(charset, "\" ")) {
	case "", "utf-8", "utf8", "us-ascii", "ascii", "ansi_x3.4-1968":
		return strings.ToValidUTF8(string(b), "\uFFFD"), true
	case "iso-8859-1", "latin1", "iso_8859-1", "latin-1", "iso-8859-15", "windows-1252", "cp1252":
		if utf8.Valid(b) && !hasHighLatin1(b) {
			return string(b), true
		}
		rs := make([]rune, len(b))
		for i, c := range b {
			rs[i] = rune(c)
		}
		return string(rs), true
	}
	return strings.ToValidUTF8(string(b), "\uFFFD"), false
}

func hasHighLatin1(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return true
		}
	}
	return false
}

// text returns a part's body as UTF-8 text, HTML reduced to its text.
func (pt *part) text() string {
	s, _ := toUTF8(pt.params["charset"], pt.body)
	if pt.mediaType == "text/html" {
		s = stripHTML(s)
	}
	return s
}

// stripHTML drops tags, scripts and styles and decodes the common
// entities; enough to read an error message out of an HTML notice.
func stripHTML(s string) string {
	var b strings.Builder
	lower := strings.ToLower(s)
	for i := 0; i < len(s); {
		c := s[i]
		if c != '<' {
			b.WriteByte(c)
			i++
			continue
		}
		for _, skip := range []string{"<script", "<style", "<head"} {
			if strings.HasPrefix(lower[i:], skip) {
				end := strings.Index(lower[i:], "</"+skip[1:])
				if end < 0 {
					return b.String()
				}
				i += end
				break
			}
		}
		end := strings.IndexByte(s[i:], '>')
		if end < 0 {
			break
		}
		tag := lower[i : i+end]
		if strings.HasPrefix(tag, "<br") || strings.HasPrefix(tag, "<p") || strings.HasPrefix(tag, "</p") ||
			strings.HasPrefix(tag, "<div") || strings.HasPrefix(tag, "</div") || strings.HasPrefix(tag, "<tr") ||
			strings.HasPrefix(tag, "</tr") || strings.HasPrefix(tag, "<li") {
			b.WriteByte('\n')
		} else if strings.HasPrefix(tag, "<td") {
			b.WriteByte(' ')
		}
		i += end + 1
	}
	r := strings.NewReplacer("&nbsp;", " ", "&lt;", "<", "&gt;", ">", "&quot;", "\"", "&#39;", "'", "&amp;", "&")
	return r.Replace(b.String())
}

// walk visits the tree depth first, parents before children.
func (pt *part) walk(fn func(*part) bool) {
	if !fn(pt) {
		return
	}
	for _, c := range pt.children {
		c.walk(fn)
	}
}
