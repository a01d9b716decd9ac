package compose

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/mail"
	"strings"

	"github.com/posthorn/posthorn/internal/smtpproto"
)

// Address is a mailbox: an optional display name and an e-mail address.
type Address struct {
	Name  string `json:"name,omitempty"`
	Email string `json:"email"`
}

// AddressList is a list of mailboxes; in JSON it may also be given as a
// single address (string or object).
type AddressList []Address

// Attachment is a file part. In JSON, content is base64.
type Attachment struct {
	Filename    string `json:"filename"`
	ContentType string `json:"content_type,omitempty"`
	Content     []byte `json:"content"`
	// ContentID makes the part inline: the html refers to it as cid:<id>.
	ContentID string `json:"content_id,omitempty"`

	badContent bool // content was not base64; reported by Validate
}

// Message is the API's description of a message.
type Message struct {
	From        Address           `json:"from"`
	To          AddressList       `json:"to,omitempty"`
	Cc          AddressList       `json:"cc,omitempty"`
	Bcc         AddressList       `json:"bcc,omitempty"`
	ReplyTo     AddressList       `json:"reply_to,omitempty"`
	Subject     string            `json:"subject,omitempty"`
	Text        string            `json:"text,omitempty"`
	HTML        string            `json:"html,omitempty"`
	Headers     map[string]string `json:"headers,omitempty"`
	Attachments []Attachment      `json:"attachments,omitempty"`
}

// ParseAddress parses "a@example.com" or "Name <a@example.com>" (the display
// name may be quoted or RFC 2047 encoded) and returns the address with its
// e-mail in canonical form.
func ParseAddress(s string) (Address, error) {
	if at := strings.LastIndexByte(s, '@'); at >= 0 && dotAtom(s[:at]) && plainDomain(s[at+1:]) {
		// The usual bare address: net/mail would give it back as it is,
		// so it comes to canonicalEmail(s) either way.
		email, err := canonicalEmail(s)
		if err != nil {
			return Address{}, err
		}
		return Address{Email: email}, nil
	}
	return parseAddress(s)
}

// parseAddress is ParseAddress for any input.
func parseAddress(s string) (Address, error) {
	if strings.ContainsAny(s, "\r\n\x00") {
		return Address{}, errors.New("address contains a line break or NUL")
	}
	if p, err := mail.ParseAddress(s); err == nil {
		at := strings.LastIndexByte(p.Address, '@')
		if at < 0 {
			return Address{}, errors.New("address has no domain")
		}
		email, err := canonicalEmail(smtpproto.QuoteLocal(p.Address[:at]) + p.Address[at:])
		if err != nil {
			return Address{}, err
		}
		return Address{Name: p.Name, Email: email}, nil
	}
	// net/mail does not know IPv6 address literals: split "Name <addr>"
	// ourselves and check the address with our own rules.
	s = strings.TrimSpace(s)
	var name string
	if i := strings.LastIndexByte(s, '<'); i >= 0 && strings.HasSuffix(s, ">") {
		if phrase := strings.TrimSpace(s[:i]); phrase != "" {
			p, err := mail.ParseAddress(phrase + " <x@example.com>")
			if err != nil {
				return Address{}, fmt.Errorf("invalid display name: %v", err)
			}
			name = p.Name
		}
		s = s[i+1 : len(s)-1]
	}
	email, err := canonicalEmail(s)
	if err != nil {
		return Address{}, err
	}
	return Address{Name: name, Email: email}, nil
}

// String renders the address as it would appear in a header (unfolded).
func (a Address) String() string {
	return formatAddress(a, maxWord)
}

// UnmarshalJSON accepts "a@example.com", "Name <a@example.com>" and
// {"name": "Name", "email": "a@example.com"}. An address that does not parse
// is kept as given so that Validate can name the field.
func (a *Address) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		return nil
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*a = addressFromString(s)
		return nil
	}
	var o struct {
		Name  string `json:"name"`
		Email string `json:"email"`
	}
	if err := strictDecode(b, &o); err != nil {
		return fmt.Errorf("address: %w", err)
	}
	*a = addressFromObject(o.Name, o.Email)
	return nil
}

// UnmarshalJSON accepts one address or an array of addresses.
func (l *AddressList) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		*l = nil
		return nil
	case len(b) > 0 && b[0] == '[':
		var list []Address
		if err := json.Unmarshal(b, &list); err != nil {
			return err
		}
		*l = list
		return nil
	}
	var a Address
	if err := a.UnmarshalJSON(b); err != nil {
		return err
	}
	*l = AddressList{a}
	return nil
}

// UnmarshalJSON decodes an attachment with base64 content. Bad base64 is
// not a decoding error: Validate reports it as attachments[i].content.
func (a *Attachment) UnmarshalJSON(b []byte) error {
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		return nil
	}
	var o struct {
		Filename    string  `json:"filename"`
		ContentType string  `json:"content_type"`
		Content     *string `json:"content"`
		ContentID   string  `json:"content_id"`
	}
	if err := strictDecode(b, &o); err != nil {
		return fmt.Errorf("attachment: %w", err)
	}
	*a = Attachment{Filename: o.Filename, ContentType: o.ContentType, ContentID: o.ContentID}
	if o.Content != nil {
		a.Content, a.badContent = decodeBase64(*o.Content)
	}
	return nil
}

// decodeBase64 accepts the standard and URL alphabets, with or without
// padding, with whitespace anywhere. ok is false when s is not base64.
func decodeBase64(s string) (data []byte, bad bool) {
	s = strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
			return -1
		}
		return r
	}, s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if d, err := enc.DecodeString(s); err == nil {
			return d, false
		}
	}
	return nil, true
}

func strictDecode(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("more than one value")
	}
	return nil
}

// Recipients returns the envelope recipients: the e-mails of To, Cc and Bcc
// in that order, each once. Two addresses are the same when their local
// parts are equal and their domains equal but for case.
func (m *Message) Recipients() []string {
	var out []string
	seen := make(map[string]bool)
	for _, list := range []AddressList{m.To, m.Cc, m.Bcc} {
		for _, a := range list {
			if a.Email == "" {
				continue
			}
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
