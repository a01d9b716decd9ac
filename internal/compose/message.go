// Package compose builds RFC 5322 / MIME messages from the HTTP API's JSON
// fields and validates those fields first. Structure: text alone is
// text/plain, html alone text/html, both multipart/alternative (text
// first); inline attachments (with a content_id) wrap the html in
// multipart/related; other attachments wrap everything in multipart/mixed.
// Non-ASCII header text becomes RFC 2047 encoded words, text bodies
// quoted-printable (7bit when plain ASCII with short lines), attachments
// base64. Every line ends in CRLF.
package compose

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"mime"
	"net/mail"
	"path/filepath"
	"strings"
)

// Address is a mailbox with an optional display name. In JSON it is
// either a string ("a@b.example" or "Name <a@b.example>") or an object
// {"name": ..., "email": ...}.
type Address struct {
	Name  string `json:"name,omitempty"`
	Email string `json:"email"`
}

// UnmarshalJSON accepts a string or an object.
func (a *Address) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		if p, err := mail.ParseAddress(s); err == nil {
			a.Name, a.Email = p.Name, p.Address
			return nil
		}
		a.Name, a.Email = "", s // validated later, with a field name
		return nil
	}
	type plain Address
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return fmt.Errorf("an address is a string or {\"name\", \"email\"}")
	}
	*a = Address(p)
	return nil
}

// AddressList is one address or a list of them in JSON.
type AddressList []Address

// UnmarshalJSON accepts one address or an array.
func (l *AddressList) UnmarshalJSON(b []byte) error {
	if t := strings.TrimSpace(string(b)); strings.HasPrefix(t, "[") {
		var list []Address
		if err := json.Unmarshal(b, &list); err != nil {
			return err
		}
		*l = list
		return nil
	}
	var a Address
	if err := json.Unmarshal(b, &a); err != nil {
		return err
	}
	*l = AddressList{a}
	return nil
}

// Attachment is a file; Content is base64 in JSON. A ContentID makes it
// an inline part of the HTML (cid: references).
type Attachment struct {
	Filename    string `json:"filename"`
	ContentType string `json:"content_type,omitempty"`
	Content     string `json:"content"`
	ContentID   string `json:"content_id,omitempty"`
	data        []byte
}

// Message is what the API's send request says about the message itself.
type Message struct {
	From        Address           `json:"from"`
	To          AddressList       `json:"to"`
	Cc          AddressList       `json:"cc,omitempty"`
	Bcc         AddressList       `json:"bcc,omitempty"`
	ReplyTo     AddressList       `json:"reply_to,omitempty"`
	Subject     string            `json:"subject,omitempty"`
	Text        string            `json:"text,omitempty"`
	HTML        string            `json:"html,omitempty"`
	Headers     map[string]string `json:"headers,omitempty"`
	Attachments []Attachment      `json:"attachments,omitempty"`
}

// FieldError is a validation failure with the field it concerns.
type FieldError struct {
	Field   string
	Code    string
	Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

func fieldErr(field, code, format string, a ...any) *FieldError {
	return &FieldError{Field: field, Code: code, Message: fmt.Sprintf(format, a...)}
}

// reserved are header fields posthorn writes itself.
var reserved = map[string]bool{"from": true, "to": true, "cc": true, "bcc": true, "subject": true, "date": true,
	"message-id": true, "mime-version": true, "content-type": true, "content-transfer-encoding": true, "reply-to": true,
	"received": true, "return-path": true, "sender": true, "dkim-signature": true}

// Validate checks every field and returns the first problem as a
// *FieldError. It also decodes attachments.
func (m *Message) Validate() error {
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
		return fieldErr("to", "missing_field", "at least one recipient (to, cc or bcc) is required")
	}
	if m.Text == "" && m.HTML == "" && len(m.Attachments) == 0 {
		return fieldErr("text", "missing_field", "text, html or an attachment is required")
	}
	if strings.ContainsAny(m.Subject, "\r\n\x00") {
		return fieldErr("subject", "header_injection", "the subject must not contain CR, LF or NUL")
	}
	if strings.ContainsRune(m.Text, 0) {
		return fieldErr("text", "invalid_text", "text must not contain NUL")
	}
	if strings.ContainsRune(m.HTML, 0) {
		return fieldErr("html", "invalid_text", "html must not contain NUL")
	}
	for name, v := range m.Headers {
		f := "headers." + name
		if !validFieldName(name) {
			return fieldErr(f, "invalid_header", "%q is not a valid header field name", name)
		}
		if reserved[strings.ToLower(name)] {
			return fieldErr(f, "reserved_header", "%s is set by posthorn and cannot be given in headers", name)
		}
		if strings.ContainsAny(v, "\r\n\x00") {
			return fieldErr(f, "header_injection", "header values must not contain CR, LF or NUL")
		}
	}
	for i := range m.Attachments {
		a := &m.Attachments[i]
		f := fmt.Sprintf("attachments[%d]", i)
		if a.Filename == "" {
			return fieldErr(f+".filename", "missing_field", "an attachment needs a filename")
		}
		if strings.ContainsAny(a.Filename, "\r\n\x00\"\\/") {
			return fieldErr(f+".filename", "invalid_filename", "the filename has characters that are not allowed")
		}
		data, err := base64.StdEncoding.DecodeString(a.Content)
		if err != nil {
			return fieldErr(f+".content", "invalid_base64", "content is not valid base64")
		}
		a.data = data
		if a.ContentType == "" {
			a.ContentType = mime.TypeByExtension(strings.ToLower(filepath.Ext(a.Filename)))
			if a.ContentType == "" {
				a.ContentType = "application/octet-stream"
			}
		}
		if _, _, err := mime.ParseMediaType(a.ContentType); err != nil || strings.ContainsAny(a.ContentType, "\r\n") {
			return fieldErr(f+".content_type", "invalid_content_type", "content_type %q does not parse", a.ContentType)
		}
		if strings.ContainsAny(a.ContentID, "\r\n\x00<> ") {
			return fieldErr(f+".content_id", "invalid_content_id", "content_id must not contain spaces, angle brackets or control characters")
		}
	}
	return nil
}

func checkAddress(field string, a Address) *FieldError {
	if a.Email == "" {
		return fieldErr(field, "missing_field", "an email address is required")
	}
	if strings.ContainsAny(a.Email+a.Name, "\r\n\x00") {
		return fieldErr(field, "header_injection", "addresses must not contain CR, LF or NUL")
	}
	p, err := mail.ParseAddress("<" + a.Email + ">")
	if err != nil || p.Address != a.Email {
		return fieldErr(field+".email", "invalid_address", "%q is not a valid email address", a.Email)
	}
	at := strings.LastIndexByte(a.Email, '@')
	domain := a.Email[at+1:]
	if !strings.Contains(domain, ".") && !strings.HasPrefix(domain, "[") {
		return fieldErr(field+".email", "invalid_address", "%q has no fully qualified domain", a.Email)
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

// Recipients are the envelope recipients: to, cc and bcc, without repeats.
func (m *Message) Recipients() []string {
	seen := map[string]bool{}
	var out []string
	for _, l := range []AddressList{m.To, m.Cc, m.Bcc} {
		for _, a := range l {
			key := a.Email
			if at := strings.LastIndexByte(key, '@'); at >= 0 {
				key = key[:at] + strings.ToLower(key[at:])
			}
			if !seen[key] {
				seen[key] = true
				out = append(out, a.Email)
			}
		}
	}
	return out
}
