package compose

import (
	"errors"
	"fmt"
	"mime"
	"net/mail"
	"net/netip"
	"path"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/posthorn/posthorn/internal/smtpproto"
)

// Error codes of FieldError.
const (
	CodeMissingField       = "missing_field"        // from, a recipient, content, an email or a filename is missing
	CodeInvalidAddress     = "invalid_address"      // an e-mail does not parse, has no dotted domain, or a name is not UTF-8
	CodeHeaderInjection    = "header_injection"     // CR, LF or NUL in the subject, a header value, a name or an e-mail
	CodeInvalidHeader      = "invalid_header"       // a header name that is not an RFC 5322 field name, or given twice
	CodeReservedHeader     = "reserved_header"      // a header posthorn writes or that only MTAs may add
	CodeHeaderTooLong      = "header_too_long"      // a header value with a word too long to fold under 998 characters
	CodeInvalidText        = "invalid_text"         // NUL in text or html, or invalid UTF-8 in text, html, subject or a header
	CodeInvalidFilename    = "invalid_filename"     // control characters, invalid UTF-8 or more than 255 bytes
	CodeInvalidBase64      = "invalid_base64"       // attachment content is not base64
	CodeInvalidContentType = "invalid_content_type" // does not parse, or multipart/* and message/* (they cannot be base64)
	CodeInvalidContentID   = "invalid_content_id"   // not printable ASCII without spaces and <>, or given twice
	CodeTooLarge           = "too_large"            // the built message is over Options.MaxSize
)

// FieldError is a problem with one field of the request. Field is the
// JSON path ("to[2].email", "headers.X-Tag", "attachments[0].content").
type FieldError struct {
	Field   string
	Code    string
	Message string
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Message
	}
	return e.Field + ": " + e.Message
}

func fieldErr(field, code, format string, a ...any) *FieldError {
	return &FieldError{Field: field, Code: code, Message: fmt.Sprintf(format, a...)}
}

// reserved are header fields that cannot be set through Headers (see the
// package documentation), besides the Content-*, ARC-* and Resent-*
// families.
var reserved = map[string]bool{
	"from": true, "to": true, "cc": true, "bcc": true, "reply-to": true, "subject": true, "date": true,
	"message-id": true, "mime-version": true, "sender": true, "return-path": true, "received": true,
	"dkim-signature": true, "authentication-results": true,
}

func isReserved(name string) bool {
	n := strings.ToLower(name)
	if reserved[n] {
		return true
	}
	for _, p := range []string{"content-", "arc-", "resent-"} {
		if strings.HasPrefix(n, p) {
			return true
		}
	}
	return false
}

// Validate checks the message and returns the first problem as a
// *FieldError, or nil. It does not change m.
func (m *Message) Validate() error {
	if m.From.Email == "" && m.From.Name == "" {
		return fieldErr("from", CodeMissingField, "from is required")
	}
	if err := checkAddress("from", m.From); err != nil {
		return err
	}
	for _, l := range []struct {
		name string
		list AddressList
	}{{"to", m.To}, {"cc", m.Cc}, {"bcc", m.Bcc}, {"reply_to", m.ReplyTo}} {
		for i, a := range l.list {
			if err := checkAddress(fmt.Sprintf("%s[%d]", l.name, i), a); err != nil {
				return err
			}
		}
	}
	if len(m.To)+len(m.Cc)+len(m.Bcc) == 0 {
		return fieldErr("to", CodeMissingField, "at least one recipient (to, cc or bcc) is required")
	}
	if strings.ContainsAny(m.Subject, "\r\n\x00") {
		return fieldErr("subject", CodeHeaderInjection, "the subject must not contain CR, LF or NUL")
	}
	if !utf8.ValidString(m.Subject) {
		return fieldErr("subject", CodeInvalidText, "the subject is not valid UTF-8")
	}
	for _, b := range []struct{ name, s string }{{"text", m.Text}, {"html", m.HTML}} {
		if strings.IndexByte(b.s, 0) >= 0 {
			return fieldErr(b.name, CodeInvalidText, "%s must not contain NUL", b.name)
		}
		if !utf8.ValidString(b.s) {
			return fieldErr(b.name, CodeInvalidText, "%s is not valid UTF-8", b.name)
		}
	}
	if m.Text == "" && m.HTML == "" && len(m.Attachments) == 0 {
		return fieldErr("text", CodeMissingField, "text, html or an attachment is required")
	}
	if err := m.checkHeaders(); err != nil {
		return err
	}
	cids := make(map[string]bool)
	for i := range m.Attachments {
		if err := checkAttachment(fmt.Sprintf("attachments[%d]", i), &m.Attachments[i], cids); err != nil {
			return err
		}
	}
	return nil
}

func (m *Message) checkHeaders() error {
	seen := make(map[string]bool, len(m.Headers))
	for _, name := range sortedKeys(m.Headers) {
		v, f := m.Headers[name], "headers."+name
		switch {
		case !validFieldName(name):
			return fieldErr(f, CodeInvalidHeader, "%q is not a header field name (printable ASCII without colon or space, at most 76 characters)", name)
		case seen[strings.ToLower(name)]:
			return fieldErr(f, CodeInvalidHeader, "%s is given twice (header names are case-insensitive)", name)
		case isReserved(name):
			return fieldErr(f, CodeReservedHeader, "%s is set by posthorn or by the receiving servers and cannot be given in headers", name)
		case strings.ContainsAny(v, "\r\n\x00"):
			return fieldErr(f, CodeHeaderInjection, "header values must not contain CR, LF or NUL")
		case !utf8.ValidString(v):
			return fieldErr(f, CodeInvalidText, "the value is not valid UTF-8")
		}
		seen[strings.ToLower(name)] = true
		if _, err := extraField(name, v); err != nil {
			return fieldErr(f, CodeHeaderTooLong, "%v", err)
		}
	}
	return nil
}

func checkAttachment(f string, a *Attachment, cids map[string]bool) error {
	switch {
	case a.Filename == "":
		return fieldErr(f+".filename", CodeMissingField, "an attachment needs a filename")
	case !utf8.ValidString(a.Filename):
		return fieldErr(f+".filename", CodeInvalidFilename, "the filename is not valid UTF-8")
	case len(a.Filename) > 255:
		return fieldErr(f+".filename", CodeInvalidFilename, "the filename is longer than 255 bytes")
	case strings.IndexFunc(a.Filename, unicode.IsControl) >= 0:
		return fieldErr(f+".filename", CodeInvalidFilename, "the filename contains control characters")
	case a.badContent:
		return fieldErr(f+".content", CodeInvalidBase64, "content is not valid base64")
	}
	if _, err := a.fields(); err != nil {
		return fieldErr(f+".content_type", CodeInvalidContentType, "%v", err)
	}
	if a.ContentID != "" {
		if len(a.ContentID) > 250 || strings.IndexFunc(a.ContentID, func(r rune) bool { return r <= ' ' || r > '~' || r == '<' || r == '>' }) >= 0 {
			return fieldErr(f+".content_id", CodeInvalidContentID, "content_id must be printable ASCII without spaces or angle brackets, at most 250 characters")
		}
		if cids[a.ContentID] {
			return fieldErr(f+".content_id", CodeInvalidContentID, "content_id %q is given twice", a.ContentID)
		}
		cids[a.ContentID] = true
	}
	return nil
}

// mediaType is the attachment's content type: as given, else guessed from
// the filename's extension, else application/octet-stream.
func (a *Attachment) mediaType() (string, map[string]string, error) {
	ct := a.ContentType
	if ct == "" {
		ct = mime.TypeByExtension(strings.ToLower(path.Ext(a.Filename)))
		if mt, _, err := mime.ParseMediaType(ct); err != nil || strings.HasPrefix(mt, "multipart/") || strings.HasPrefix(mt, "message/") {
			ct = "application/octet-stream"
		}
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return "", nil, fmt.Errorf("content_type %q does not parse: %v", ct, err)
	}
	if strings.HasPrefix(mt, "multipart/") || strings.HasPrefix(mt, "message/") {
		return "", nil, fmt.Errorf("%s cannot be an attachment's type (it cannot be base64-encoded); use application/octet-stream", mt)
	}
	return mt, params, nil
}

func checkAddress(field string, a Address) error {
	if strings.ContainsAny(a.Email, "\r\n\x00") {
		return fieldErr(field+".email", CodeHeaderInjection, "addresses must not contain CR, LF or NUL")
	}
	if strings.ContainsAny(a.Name, "\r\n\x00") {
		return fieldErr(field+".name", CodeHeaderInjection, "names must not contain CR, LF or NUL")
	}
	if !utf8.ValidString(a.Name) {
		return fieldErr(field+".name", CodeInvalidAddress, "the name is not valid UTF-8")
	}
	if a.Email == "" {
		return fieldErr(field+".email", CodeMissingField, "an email address is required")
	}
	c, err := canonicalEmail(a.Email)
	if err != nil {
		return fieldErr(field+".email", CodeInvalidAddress, "%q is not a valid email address: %v", clip(a.Email), err)
	}
	if c != a.Email {
		return fieldErr(field+".email", CodeInvalidAddress, "%q is not a plain address; write it as %q", clip(a.Email), c)
	}
	return nil
}

// canonicalEmail checks an addr-spec and returns it with the local part
// quoted only when it must be. The local part's syntax is net/mail's; the
// domain must have a dot (or be an address literal), and the lengths are
// those of RFC 5321.
func canonicalEmail(email string) (string, error) {
	if strings.ContainsAny(email, "\r\n\x00") {
		return "", errors.New("contains a line break or NUL")
	}
	if !utf8.ValidString(email) {
		return "", errors.New("not valid UTF-8")
	}
	at := strings.LastIndexByte(email, '@')
	if at < 0 {
		return "", errors.New("no @domain")
	}
	local, domain := email[:at], email[at+1:]
	if err := checkDomain(domain); err != nil {
		return "", err
	}
	if !dotAtom(local) { // net/mail gives a dot-atom back as it is
		p, err := mail.ParseAddress(local + "@example.com")
		if err != nil || p.Name != "" || !strings.HasSuffix(p.Address, "@example.com") {
			return "", errors.New("invalid local part")
		}
		local = strings.TrimSuffix(p.Address, "@example.com")
	}
	if local == "" || len(local) > 64 {
		return "", errors.New("the local part must have 1 to 64 octets")
	}
	c := smtpproto.QuoteLocal(local) + "@" + domain
	if len(c) > 254 {
		return "", errors.New("longer than 254 octets")
	}
	return c, nil
}

func checkDomain(d string) error {
	if strings.HasPrefix(d, "[") {
		inner, ok := strings.CutSuffix(d[1:], "]")
		v6 := false
		if rest, found := strings.CutPrefix(inner, "IPv6:"); found {
			inner, v6 = rest, true
		}
		ip, err := netip.ParseAddr(inner)
		if !ok || err != nil || ip.Is6() != v6 || ip.Zone() != "" {
			return fmt.Errorf("invalid address literal %q", clip(d))
		}
		return nil
	}
	if d == "" || len(d) > 253 {
		return errors.New("the domain must have 1 to 253 octets")
	}
	labels := strings.Split(d, ".")
	if len(labels) < 2 {
		return fmt.Errorf("domain %q is not fully qualified", clip(d))
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("invalid domain %q", clip(d))
		}
		for _, r := range l {
			if !(r < utf8.RuneSelf && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') ||
				r >= utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r))) {
				return fmt.Errorf("invalid character %q in domain", r)
			}
		}
	}
	if strings.Trim(labels[len(labels)-1], "0123456789") == "" {
		return fmt.Errorf("domain %q ends in a number; write an IP address as [192.0.2.1]", clip(d))
	}
	return nil
}

func validFieldName(s string) bool {
	if s == "" || len(s) > 76 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 33 || s[i] > 126 || s[i] == ':' {
			return false
		}
	}
	return true
}

func sortedKeys(h map[string]string) []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := strings.ToLower(keys[i]), strings.ToLower(keys[j])
		return a < b || a == b && keys[i] < keys[j]
	})
	return keys
}

func clip(s string) string {
	if len(s) > 80 {
		for i := 77; i > 0; i-- {
			if utf8.RuneStart(s[i]) {
				return s[:i] + "..."
			}
		}
	}
	return s
}

// dotAtom reports whether s is an RFC 5322 dot-atom of ASCII atext.
func dotAtom(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '.':
			if s[i-1] == '.' {
				return false
			}
		case strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) < 0:
			return false
		}
	}
	return true
}

// plainDomain reports whether s holds only letters, digits, dots and
// hyphens (it may still be an invalid domain).
func plainDomain(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}
