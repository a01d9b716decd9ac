package compose

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"strings"
	"time"
)

// Options are what Build needs besides the message.
type Options struct {
	// MessageID is the Message-ID without angle brackets. When empty, one
	// is made from random bytes and Hostname.
	MessageID string
	Date      time.Time // zero: now
	Hostname  string    // for a generated Message-ID; default "localhost"
	MaxSize   int       // bytes; 0 is no limit
	// Boundary replaces the random boundary generator (tests). Its
	// results must be valid boundaries; one that occurs in the content it
	// would enclose is skipped and the generator called again.
	Boundary func() string
	// Validated says m.Validate() returned nil already (the API checks
	// the message before its other fields): Build does not repeat it.
	Validated bool
}

// Build validates m and renders the complete message: header fields, a
// blank line and the MIME body, with CRLF line endings. Errors about the
// message are *FieldError (from Validate, or CodeTooLarge); errors about
// opts are plain errors.
func Build(m *Message, opts Options) ([]byte, error) {
	if !opts.Validated {
		if err := m.Validate(); err != nil {
			return nil, err
		}
	}
	if opts.MaxSize > 0 && m.minSize() > opts.MaxSize {
		return nil, tooLarge(m.minSize(), opts.MaxSize)
	}
	id, err := messageID(opts)
	if err != nil {
		return nil, err
	}
	date := opts.Date
	if date.IsZero() {
		date = time.Now()
	}
	if opts.Boundary == nil {
		opts.Boundary = randomBoundary
	}

	var fields []string
	add := func(f string, err error) error {
		fields = append(fields, f)
		return err
	}
	if err := add(addressField("From", []Address{m.From})); err != nil {
		return nil, err
	}
	to := m.To
	if len(to) == 0 {
		fields = append(fields, "To: undisclosed-recipients:;\r\n")
	}
	for _, l := range []struct {
		name string
		list []Address
	}{{"To", to}, {"Cc", m.Cc}, {"Reply-To", m.ReplyTo}} {
		if len(l.list) > 0 {
			if err := add(addressField(l.name, l.list)); err != nil {
				return nil, err
			}
		}
	}
	if m.Subject != "" {
		if err := add(subjectField(m.Subject)); err != nil {
			return nil, err
		}
	}
	fields = append(fields, "Date: "+date.Format(time.RFC1123Z)+"\r\n", "Message-ID: <"+id+">\r\n", "MIME-Version: 1.0\r\n")
	for _, name := range sortedKeys(m.Headers) {
		if err := add(extraField(name, m.Headers[name])); err != nil {
			return nil, &FieldError{Field: "headers." + name, Code: CodeHeaderTooLong, Message: err.Error()}
		}
	}

	root, err := m.tree()
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	size := len(root.body) + 2
	if root.lf {
		size += strings.Count(root.body, "\n")
	}
	for _, f := range fields {
		size += len(f)
	}
	for _, f := range root.fields {
		size += len(f) + 2
	}
	if root.subtype != "" {
		size += size / 8 // the children's fields and boundaries
	}
	out.Grow(size)
	for _, f := range fields {
		out.WriteString(f)
	}
	if err := renderTo(&out, root, opts.Boundary); err != nil {
		return nil, err
	}
	if !bytes.HasSuffix(out.Bytes(), []byte("\r\n")) {
		out.WriteString("\r\n")
	}
	if opts.MaxSize > 0 && out.Len() > opts.MaxSize {
		return nil, tooLarge(out.Len(), opts.MaxSize)
	}
	return out.Bytes(), nil
}

func tooLarge(n, limit int) *FieldError {
	return fieldErr("", CodeTooLarge, "the message would be at least %d bytes, over the limit of %d", n, limit)
}

// minSize is a lower bound of the built size: quoted-printable never
// shrinks text, and base64 is 4/3 of the content.
func (m *Message) minSize() int {
	n := len(m.Text) + len(m.HTML)
	for _, a := range m.Attachments {
		n += len(a.Content) / 3 * 4
	}
	return n
}

func messageID(opts Options) (string, error) {
	if id := opts.MessageID; id != "" {
		if len(id) > 250 || strings.IndexFunc(id, func(r rune) bool { return r <= ' ' || r > '~' || r == '<' || r == '>' }) >= 0 {
			return "", fmt.Errorf("compose: invalid Message-ID %q", id)
		}
		return id, nil
	}
	host := opts.Hostname
	if host == "" || !printable(host) || strings.ContainsAny(host, " \t<>@") {
		host = "localhost"
	}
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:]) + "@" + host, nil
}

func randomBoundary() string {
	var b [15]byte
	rand.Read(b[:])
	// "=_" cannot occur in quoted-printable or base64 output.
	return "=_" + hex.EncodeToString(b[:])
}

// part is a node of the MIME tree: a leaf with an encoded body, or a
// multipart with children.
type part struct {
	fields   []string // folded header fields other than a multipart's Content-Type
	body     string
	lf       bool   // body has LF line ends, written as CRLF (text without CR: one copy fewer)
	subtype  string // "mixed", "alternative", "related" for a multipart
	children []*part
}

// tree arranges the message's content (see the package documentation).
func (m *Message) tree() (*part, error) {
	var inline, attached []*part
	for i := range m.Attachments {
		a := &m.Attachments[i]
		p, err := attachmentPart(a)
		if err != nil {
			return nil, fieldErr(fmt.Sprintf("attachments[%d]", i), CodeInvalidContentType, "%v", err)
		}
		if a.ContentID != "" && m.HTML != "" {
			inline = append(inline, p)
		} else {
			attached = append(attached, p)
		}
	}
	var body *part
	if m.HTML != "" {
		body = textPart("text/html", m.HTML)
		if len(inline) > 0 {
			body = &part{subtype: "related", children: append([]*part{body}, inline...)}
		}
	}
	if m.Text != "" {
		text := textPart("text/plain", m.Text)
		if body == nil {
			body = text
		} else {
			body = &part{subtype: "alternative", children: []*part{text, body}}
		}
	}
	if len(attached) == 0 {
		return body, nil
	}
	if body != nil {
		attached = append([]*part{body}, attached...)
	}
	return &part{subtype: "mixed", children: attached}, nil
}

func textPart(mediaType, s string) *part {
	ct := textTypes[mediaType]
	if ct == "" {
		ct = "Content-Type: " + mime.FormatMediaType(mediaType, map[string]string{"charset": "utf-8"}) + "\r\n"
	}
	if strings.IndexByte(s, '\r') < 0 && linesFit(s, "\n") {
		// The usual text: its lines are crlf(s)'s, and renderTo writes
		// them with CRLF straight into the message.
		return &part{fields: []string{ct, "Content-Transfer-Encoding: 7bit\r\n"}, body: s, lf: true}
	}
	s = crlf(s)
	cte, body := "7bit", s
	if !sevenBit(s) {
		var b strings.Builder
		w := quotedprintable.NewWriter(&b)
		w.Write([]byte(s))
		w.Close()
		cte, body = "quoted-printable", b.String()
	}
	return &part{fields: []string{ct, "Content-Transfer-Encoding: " + cte + "\r\n"}, body: body}
}

// textTypes are the Content-Type fields of the text parts, written once.
var textTypes = map[string]string{
	"text/plain": "Content-Type: " + mime.FormatMediaType("text/plain", map[string]string{"charset": "utf-8"}) + "\r\n",
	"text/html":  "Content-Type: " + mime.FormatMediaType("text/html", map[string]string{"charset": "utf-8"}) + "\r\n",
}

// crlf makes every CR, LF and CRLF a CRLF, in one pass.
func crlf(s string) string {
	if strings.IndexByte(s, '\r') < 0 {
		return lfToCRLF(s) // the usual text; IndexByte is much faster than IndexAny
	}
	i := strings.IndexAny(s, "\r\n")
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + strings.Count(s[i:], "\n") + strings.Count(s[i:], "\r") + 2)
	for i >= 0 {
		b.WriteString(s[:i])
		b.WriteString("\r\n")
		if s[i] == '\r' && i+1 < len(s) && s[i+1] == '\n' {
			i++
		}
		s = s[i+1:]
		i = strings.IndexAny(s, "\r\n")
	}
	b.WriteString(s)
	return b.String()
}

// lfToCRLF is crlf for text without CR.
func lfToCRLF(s string) string {
	n := strings.Count(s, "\n")
	if n == 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + n)
	for i := strings.IndexByte(s, '\n'); i >= 0; i = strings.IndexByte(s, '\n') {
		b.WriteString(s[:i])
		b.WriteString("\r\n")
		s = s[i+1:]
	}
	b.WriteString(s)
	return b.String()
}

// sevenBit reports whether CRLF text can go as 7bit: printable ASCII and
// tabs, lines of at most 78 characters without trailing whitespace (which
// transports may strip).
func sevenBit(s string) bool { return linesFit(s, "\r\n") }

// linesFit is sevenBit for lines ending in eol.
func linesFit(s, eol string) bool {
	for {
		line, rest, more := strings.Cut(s, eol)
		if len(line) > foldAt || !printable(line) || line != "" && isWSP(line[len(line)-1]) {
			return false
		}
		if !more {
			return true
		}
		s = rest
	}
}

func attachmentPart(a *Attachment) (*part, error) {
	fields, err := a.fields()
	if err != nil {
		return nil, err
	}
	enc := base64.StdEncoding.EncodeToString(a.Content)
	var body strings.Builder
	body.Grow(len(enc) + len(enc)/76*2)
	for len(enc) > 76 {
		body.WriteString(enc[:76])
		body.WriteString("\r\n")
		enc = enc[76:]
	}
	body.WriteString(enc)
	return &part{fields: fields, body: body.String()}, nil
}

// fields are the attachment's folded header fields.
func (a *Attachment) fields() ([]string, error) {
	mt, params, err := a.mediaType()
	if err != nil {
		return nil, err
	}
	params["name"] = a.Filename
	ct := mime.FormatMediaType(mt, params)
	disp := "attachment"
	if a.ContentID != "" {
		disp = "inline"
	}
	cd := mime.FormatMediaType(disp, map[string]string{"filename": a.Filename})
	if ct == "" || cd == "" {
		return nil, errors.New("the content type or filename cannot be written as a header")
	}
	var fields []string
	for _, f := range [][2]string{{"Content-Type", ct}, {"Content-Transfer-Encoding", "base64"}, {"Content-Disposition", cd}} {
		s, err := fold(f[0], f[1], true)
		if err != nil {
			return nil, err
		}
		fields = append(fields, s)
	}
	if a.ContentID != "" {
		fields = append(fields, "Content-ID: <"+a.ContentID+">\r\n")
	}
	return fields, nil
}

// render writes a part's header fields, a blank line and its body. A
// multipart's boundary is chosen after its children are rendered, so it
// can be checked against everything it encloses.
func render(p *part, boundary func() string) ([]byte, error) {
	var b bytes.Buffer
	if err := renderTo(&b, p, boundary); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// renderTo is render into b: a single part goes straight in, without a
// buffer of its own.
func renderTo(b *bytes.Buffer, p *part, boundary func() string) error {
	for _, f := range p.fields {
		b.WriteString(f)
	}
	if p.subtype == "" {
		b.WriteString("\r\n")
		if !p.lf {
			b.WriteString(p.body)
			return nil
		}
		s := p.body
		for i := strings.IndexByte(s, '\n'); i >= 0; i = strings.IndexByte(s, '\n') {
			b.WriteString(s[:i])
			b.WriteString("\r\n")
			s = s[i+1:]
		}
		b.WriteString(s)
		return nil
	}
	children := make([][]byte, len(p.children))
	for i, c := range p.children {
		r, err := render(c, boundary)
		if err != nil {
			return err
		}
		children[i] = r
	}
	bd, err := pickBoundary(children, boundary)
	if err != nil {
		return err
	}
	ct, err := fold("Content-Type", mime.FormatMediaType("multipart/"+p.subtype, map[string]string{"boundary": bd}), true)
	if err != nil {
		return err
	}
	b.WriteString(ct)
	b.WriteString("\r\n")
	for _, c := range children {
		b.WriteString("--" + bd + "\r\n")
		b.Write(c)
		b.WriteString("\r\n")
	}
	b.WriteString("--" + bd + "--")
	return nil
}

func pickBoundary(children [][]byte, gen func() string) (string, error) {
	for range 100 {
		bd := gen()
		if !validBoundary(bd) {
			return "", fmt.Errorf("compose: invalid boundary %q", bd)
		}
		clash := false
		for _, c := range children {
			if bytes.Contains(c, []byte(bd)) {
				clash = true
				break
			}
		}
		if !clash {
			return bd, nil
		}
	}
	return "", errors.New("compose: no boundary found that does not occur in the content")
}

// validBoundary checks RFC 2046 §5.1.1: 1 to 70 bchars, not ending in space.
func validBoundary(s string) bool {
	if s == "" || len(s) > 70 || s[len(s)-1] == ' ' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("'()+_,-./:=? ", c) >= 0) {
			return false
		}
	}
	return true
}
