package compose

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"sort"
	"strings"
	"time"
)

// Options are what Build needs besides the message.
type Options struct {
	MessageID string // without angle brackets
	Date      time.Time
	Hostname  string
	MaxSize   int           // 0: no limit
	Boundary  func() string // for tests; default random
}

// Build validates m and renders it as a complete message with CRLF line
// endings.
func Build(m *Message, opts Options) ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	if opts.Boundary == nil {
		opts.Boundary = randomBoundary
	}
	var b bytes.Buffer
	header(&b, "From", formatAddress(m.From))
	if len(m.To) > 0 {
		header(&b, "To", formatList(m.To))
	}
	if len(m.Cc) > 0 {
		header(&b, "Cc", formatList(m.Cc))
	}
	if len(m.ReplyTo) > 0 {
		header(&b, "Reply-To", formatList(m.ReplyTo))
	}
	if m.Subject != "" {
		header(&b, "Subject", encodeWord(m.Subject))
	}
	date := opts.Date
	if date.IsZero() {
		date = time.Now()
	}
	header(&b, "Date", date.Format(time.RFC1123Z))
	if opts.MessageID != "" {
		header(&b, "Message-ID", "<"+opts.MessageID+">")
	}
	header(&b, "MIME-Version", "1.0")
	names := make([]string, 0, len(m.Headers))
	for k := range m.Headers {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		header(&b, k, encodeWord(m.Headers[k]))
	}
	writePart(&b, m.root(opts.Boundary))
	if opts.MaxSize > 0 && b.Len() > opts.MaxSize {
		return nil, fieldErr("", "too_large", "the message is %d bytes, over the %d-byte limit", b.Len(), opts.MaxSize)
	}
	return b.Bytes(), nil
}

// part is one node of the MIME tree.
type part struct {
	header   [][2]string
	body     []byte // already encoded, CRLF
	children []*part
	boundary string
}

func (m *Message) root(boundary func() string) *part {
	var body *part
	text, html := textPart("text/plain", m.Text), textPart("text/html", m.HTML)
	switch {
	case m.Text != "" && m.HTML != "":
		body = multi("alternative", boundary(), text, html)
	case m.HTML != "":
		body = html
	case m.Text != "":
		body = text
	}
	var inline, attached []*part
	for i := range m.Attachments {
		a := &m.Attachments[i]
		if a.ContentID != "" && m.HTML != "" {
			inline = append(inline, filePart(a, "inline"))
		} else {
			attached = append(attached, filePart(a, "attachment"))
		}
	}
	if len(inline) > 0 {
		if m.Text != "" {
			// alternative(text, related(html, inline...))
			body = multi("alternative", boundary(), text, multi("related", boundary(), append([]*part{html}, inline...)...))
		} else {
			body = multi("related", boundary(), append([]*part{html}, inline...)...)
		}
	}
	if len(attached) > 0 {
		kids := attached
		if body != nil {
			kids = append([]*part{body}, attached...)
		}
		body = multi("mixed", boundary(), kids...)
	}
	return body
}

func multi(sub, boundary string, kids ...*part) *part {
	return &part{header: [][2]string{{"Content-Type", mime.FormatMediaType("multipart/"+sub, map[string]string{"boundary": boundary})}},
		children: kids, boundary: boundary}
}

func textPart(ctype, s string) *part {
	s = strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n")
	ct := mime.FormatMediaType(ctype, map[string]string{"charset": "utf-8"})
	if plain7bit(s) {
		body := strings.ReplaceAll(s, "\n", "\r\n")
		if !strings.HasSuffix(body, "\r\n") {
			body += "\r\n"
		}
		return &part{header: [][2]string{{"Content-Type", ct}, {"Content-Transfer-Encoding", "7bit"}}, body: []byte(body)}
	}
	var b bytes.Buffer
	w := quotedprintable.NewWriter(&b)
	w.Write([]byte(strings.ReplaceAll(s, "\n", "\r\n")))
	w.Close()
	body := b.Bytes()
	if !bytes.HasSuffix(body, []byte("\r\n")) {
		body = append(body, '\r', '\n')
	}
	return &part{header: [][2]string{{"Content-Type", ct}, {"Content-Transfer-Encoding", "quoted-printable"}}, body: body}
}

// plain7bit: ASCII without control characters (except newlines and tabs)
// and lines short enough to send as they are.
func plain7bit(s string) bool {
	for _, line := range strings.Split(s, "\n") {
		if len(line) > 76 || strings.HasPrefix(line, "From ") || strings.HasPrefix(line, ".") {
			return false
		}
		for i := 0; i < len(line); i++ {
			if c := line[i]; c >= 0x80 || (c < 0x20 && c != '\t') || c == 0x7f {
				return false
			}
		}
	}
	return true
}

func filePart(a *Attachment, disposition string) *part {
	h := [][2]string{
		{"Content-Type", withName(a.ContentType, a.Filename)},
		{"Content-Transfer-Encoding", "base64"},
		{"Content-Disposition", mime.FormatMediaType(disposition, map[string]string{"filename": a.Filename})},
	}
	if disposition == "inline" {
		h = append(h, [2]string{"Content-ID", "<" + a.ContentID + ">"})
	}
	enc := base64.StdEncoding.EncodeToString(a.data)
	var b bytes.Buffer
	for len(enc) > 76 {
		b.WriteString(enc[:76])
		b.WriteString("\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc)
	b.WriteString("\r\n")
	return &part{header: h, body: b.Bytes()}
}

// withName adds the (legacy) name parameter many clients still read.
func withName(ctype, filename string) string {
	t, params, err := mime.ParseMediaType(ctype)
	if err != nil {
		return "application/octet-stream"
	}
	params["name"] = filename
	return mime.FormatMediaType(t, params)
}

func writePart(b *bytes.Buffer, p *part) {
	for _, h := range p.header {
		header(b, h[0], h[1])
	}
	b.WriteString("\r\n")
	if p.children == nil {
		b.Write(p.body)
		return
	}
	for _, c := range p.children {
		b.WriteString("--" + p.boundary + "\r\n")
		writePart(b, c)
		// The CRLF before a delimiter belongs to the delimiter: add one so
		// the part keeps its own final line break.
		b.WriteString("\r\n")
	}
	b.WriteString("--" + p.boundary + "--\r\n")
}

// header writes one field, folding at spaces to keep lines under 78
// characters where it can.
func header(b *bytes.Buffer, name, value string) {
	line := name + ": "
	col := len(line)
	b.WriteString(line)
	words := strings.Split(value, " ")
	for i, w := range words {
		if i > 0 {
			if col+1+len(w) > 76 {
				b.WriteString("\r\n ")
				col = 1
			} else {
				b.WriteByte(' ')
				col++
			}
		}
		b.WriteString(w)
		col += len(w)
	}
	b.WriteString("\r\n")
}

// encodeWord encodes non-ASCII text as RFC 2047 encoded words.
func encodeWord(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return mime.QEncoding.Encode("utf-8", s)
		}
	}
	return s
}

func formatAddress(a Address) string {
	if a.Name == "" {
		return a.Email
	}
	// net/mail quotes ASCII names as needed and encodes non-ASCII ones.
	return (&mail.Address{Name: a.Name, Address: a.Email}).String()
}

func formatList(l AddressList) string {
	parts := make([]string, len(l))
	for i, a := range l {
		parts[i] = formatAddress(a)
	}
	return strings.Join(parts, ", ")
}

func randomBoundary() string {
	var buf [15]byte
	if _, err := rand.Read(buf[:]); err != nil {
		panic(err)
	}
	return "=_posthorn_" + hex.EncodeToString(buf[:])
}
