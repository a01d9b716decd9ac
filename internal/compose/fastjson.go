package compose

import (
	"strings"

	"github.com/posthorn/posthorn/internal/strictjson"
)

// The fast path of decoding a Message (see strictjson.FastDecoder): one
// pass over the bytes for the usual shape of a request. It gives what
// the UnmarshalJSON methods give; anything else (null, a case-variant or
// repeated key, ...) fails the lexer and the caller decodes the general
// way, which also writes the error.

// MessageFields is the number of Message's JSON fields: DecodeField
// returns 0 to MessageFields-1, so a caller can give its own fields the
// numbers after.
const MessageFields = 10

// DecodeField reads the value of the field named key (exactly as the JSON
// tag spells it) and returns the field's number, or -1 (nothing read)
// when key is not one of Message's.
func (m *Message) DecodeField(l *strictjson.Lexer, key []byte) int {
	switch string(key) {
	case "from":
		m.From = decodeAddress(l)
		return 0
	case "to":
		m.To = decodeAddressList(l)
		return 1
	case "cc":
		m.Cc = decodeAddressList(l)
		return 2
	case "bcc":
		m.Bcc = decodeAddressList(l)
		return 3
	case "reply_to":
		m.ReplyTo = decodeAddressList(l)
		return 4
	case "subject":
		m.Subject = l.String()
		return 5
	case "text":
		m.Text = l.String()
		return 6
	case "html":
		m.HTML = l.String()
		return 7
	case "headers":
		m.Headers = DecodeStringMap(l)
		return 8
	case "attachments":
		m.Attachments = decodeAttachments(l)
		return 9
	}
	return -1
}

// DecodeStringMap reads an object of strings into a new map (an empty
// one for {}), as encoding/json does for a nil map.
func DecodeStringMap(l *strictjson.Lexer) map[string]string {
	out := map[string]string{}
	l.Open('{')
	for n := 0; l.More('}', n); n++ {
		k := l.Key()
		if _, dup := out[string(k)]; dup {
			l.Fail()
		}
		out[string(k)] = l.String()
	}
	return out
}

func decodeAddress(l *strictjson.Lexer) Address {
	if l.Peek() == '"' {
		return addressFromString(l.String())
	}
	var name, email string
	var seen [2]bool
	l.Open('{')
	for n := 0; l.More('}', n); n++ {
		k := l.Key()
		var i int
		switch string(k) {
		case "name":
			name = l.String()
		case "email":
			i = 1
			email = l.String()
		default:
			l.Fail()
		}
		if seen[i] {
			l.Fail()
		}
		seen[i] = true
	}
	return addressFromObject(name, email)
}

func decodeAddressList(l *strictjson.Lexer) AddressList {
	if l.Peek() != '[' {
		return AddressList{decodeAddress(l)}
	}
	list := AddressList{}
	l.Open('[')
	for n := 0; l.More(']', n); n++ {
		list = append(list, decodeAddress(l))
	}
	return list
}

func decodeAttachments(l *strictjson.Lexer) []Attachment {
	out := []Attachment{}
	l.Open('[')
	for n := 0; l.More(']', n); n++ {
		var a Attachment
		var seen [4]bool
		l.Open('{')
		for k := 0; l.More('}', k); k++ {
			var i int
			switch string(l.Key()) {
			case "filename":
				a.Filename = l.String()
			case "content_type":
				i = 1
				a.ContentType = l.String()
			case "content":
				i = 2
				a.Content, a.badContent = decodeBase64(l.String())
			case "content_id":
				i = 3
				a.ContentID = l.String()
			default:
				l.Fail()
			}
			if seen[i] {
				l.Fail()
			}
			seen[i] = true
		}
		out = append(out, a)
	}
	return out
}

// addressFromString is an address given as a string; one that does not
// parse is kept as given so that Validate can name the field.
func addressFromString(s string) Address {
	p, err := ParseAddress(s)
	if err != nil {
		return Address{Email: s}
	}
	return p
}

// addressFromObject is an address given as {"name", "email"}.
func addressFromObject(name, email string) Address {
	a := Address{Name: name, Email: email}
	if c, err := canonicalEmail(strings.TrimSpace(email)); err == nil {
		a.Email = c
	}
	return a
}
