package compose

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/posthorn/posthorn/internal/smtpproto"
)

func validMessage() *Message {
	return &Message{
		From:        Address{Name: "Zoë", Email: "zoe@example.com"},
		To:          AddressList{{Email: "ann@example.org"}, {Name: "Bob", Email: "bob@example.org"}},
		Cc:          AddressList{{Email: "carol@example.net"}},
		Bcc:         AddressList{{Email: "dave@example.net"}},
		ReplyTo:     AddressList{{Email: "replies@example.com"}},
		Subject:     "Grüße ✓\tTab",
		Text:        "hello\r\nbare \r CR",
		HTML:        "<p>hello</p>",
		Headers:     map[string]string{"X-Tag": "a", "List-Unsubscribe": "<mailto:u@example.com>", "In-Reply-To": "<x@y.example>", "X-Empty": ""},
		Attachments: []Attachment{{Filename: "a.pdf", Content: []byte("%PDF")}, {Filename: "logo.png", ContentID: "logo@x", Content: pngBytes}},
	}
}

func TestValidate(t *testing.T) {
	long := strings.Repeat("a", 65)
	cases := []struct {
		name   string
		mutate func(*Message)
		field  string
		code   string
	}{
		{"no from", func(m *Message) { m.From = Address{} }, "from", CodeMissingField},
		{"from without email", func(m *Message) { m.From.Email = "" }, "from.email", CodeMissingField},
		{"recipient without email", func(m *Message) { m.To[1].Email = "" }, "to[1].email", CodeMissingField},
		{"no recipients", func(m *Message) { m.To, m.Cc, m.Bcc = nil, nil, nil }, "to", CodeMissingField},
		{"no content", func(m *Message) { m.Text, m.HTML, m.Attachments = "", "", nil }, "text", CodeMissingField},
		{"not an address", func(m *Message) { m.To[1].Email = "not an address" }, "to[1].email", CodeInvalidAddress},
		{"no dot in domain", func(m *Message) { m.From.Email = "user@localhost" }, "from.email", CodeInvalidAddress},
		{"no domain", func(m *Message) { m.Cc[0].Email = "user" }, "cc[0].email", CodeInvalidAddress},
		{"hyphen label", func(m *Message) { m.Bcc[0].Email = "a@-x.example" }, "bcc[0].email", CodeInvalidAddress},
		{"empty label", func(m *Message) { m.ReplyTo[0].Email = "a@x..example" }, "reply_to[0].email", CodeInvalidAddress},
		{"underscore in domain", func(m *Message) { m.To[0].Email = "a@x_y.example" }, "to[0].email", CodeInvalidAddress},
		{"bare IP", func(m *Message) { m.To[0].Email = "a@192.0.2.1" }, "to[0].email", CodeInvalidAddress},
		{"bad literal", func(m *Message) { m.To[0].Email = "a@[300.1.1.1]" }, "to[0].email", CodeInvalidAddress},
		{"v4 as IPv6 literal", func(m *Message) { m.To[0].Email = "a@[IPv6:192.0.2.1]" }, "to[0].email", CodeInvalidAddress},
		{"long local part", func(m *Message) { m.To[0].Email = long + "@example.org" }, "to[0].email", CodeInvalidAddress},
		{"leading dot", func(m *Message) { m.To[0].Email = ".a@example.org" }, "to[0].email", CodeInvalidAddress},
		{"display name in email", func(m *Message) { m.To[0].Email = "Ann <ann@example.org>" }, "to[0].email", CodeInvalidAddress},
		{"comment in email", func(m *Message) { m.To[0].Email = "ann@example.org (Ann)" }, "to[0].email", CodeInvalidAddress},
		{"needless quotes", func(m *Message) { m.To[0].Email = `"ann"@example.org` }, "to[0].email", CodeInvalidAddress},
		{"name not UTF-8", func(m *Message) { m.To[1].Name = "\xff" }, "to[1].name", CodeInvalidAddress},
		{"CRLF in email", func(m *Message) { m.To[0].Email = "a@example.org\r\nBcc: v@example.org" }, "to[0].email", CodeHeaderInjection},
		{"LF in name", func(m *Message) { m.From.Name = "Zoë\nBcc: v@example.org" }, "from.name", CodeHeaderInjection},
		{"NUL in name", func(m *Message) { m.Cc[0].Name = "a\x00" }, "cc[0].name", CodeHeaderInjection},
		{"CRLF in subject", func(m *Message) { m.Subject = "hi\r\nBcc: v@example.org" }, "subject", CodeHeaderInjection},
		{"CR in subject", func(m *Message) { m.Subject = "hi\rthere" }, "subject", CodeHeaderInjection},
		{"subject not UTF-8", func(m *Message) { m.Subject = "\xc3" }, "subject", CodeInvalidText},
		{"NUL in text", func(m *Message) { m.Text = "a\x00b" }, "text", CodeInvalidText},
		{"NUL in html", func(m *Message) { m.HTML = "<p>\x00</p>" }, "html", CodeInvalidText},
		{"html not UTF-8", func(m *Message) { m.HTML = "\xfe" }, "html", CodeInvalidText},
		{"header name with space", func(m *Message) { m.Headers = map[string]string{"Bad Name": "x"} }, "headers.Bad Name", CodeInvalidHeader},
		{"header name with colon", func(m *Message) { m.Headers = map[string]string{"X:Y": "x"} }, "headers.X:Y", CodeInvalidHeader},
		{"empty header name", func(m *Message) { m.Headers = map[string]string{"": "x"} }, "headers.", CodeInvalidHeader},
		{"non-ASCII header name", func(m *Message) { m.Headers = map[string]string{"X-Grüße": "x"} }, "headers.X-Grüße", CodeInvalidHeader},
		{"header name too long", func(m *Message) { m.Headers = map[string]string{"X-" + long + long: "x"} }, "headers.X-" + long + long, CodeInvalidHeader},
		{"header twice", func(m *Message) { m.Headers = map[string]string{"X-A": "1", "x-a": "2"} }, "headers.x-a", CodeInvalidHeader},
		{"header injection CRLF", func(m *Message) { m.Headers = map[string]string{"X-A": "1\r\nBcc: v@example.org"} }, "headers.X-A", CodeHeaderInjection},
		{"header injection LF", func(m *Message) { m.Headers = map[string]string{"X-A": "1\n"} }, "headers.X-A", CodeHeaderInjection},
		{"header NUL", func(m *Message) { m.Headers = map[string]string{"X-A": "\x00"} }, "headers.X-A", CodeHeaderInjection},
		{"header value not UTF-8", func(m *Message) { m.Headers = map[string]string{"X-A": "\xff"} }, "headers.X-A", CodeInvalidText},
		{"header word too long", func(m *Message) { m.Headers = map[string]string{"X-A": strings.Repeat("x", 995)} }, "headers.X-A", CodeHeaderTooLong},
		{"filename missing", func(m *Message) { m.Attachments[0].Filename = "" }, "attachments[0].filename", CodeMissingField},
		{"filename with LF", func(m *Message) { m.Attachments[1].Filename = "a\nb.png" }, "attachments[1].filename", CodeInvalidFilename},
		{"filename too long", func(m *Message) { m.Attachments[0].Filename = strings.Repeat("ü", 128) }, "attachments[0].filename", CodeInvalidFilename},
		{"filename not UTF-8", func(m *Message) { m.Attachments[0].Filename = "\xff.pdf" }, "attachments[0].filename", CodeInvalidFilename},
		{"bad base64", func(m *Message) { m.Attachments[1].badContent = true }, "attachments[1].content", CodeInvalidBase64},
		{"content type does not parse", func(m *Message) { m.Attachments[0].ContentType = "not a type" }, "attachments[0].content_type", CodeInvalidContentType},
		{"content type injection", func(m *Message) { m.Attachments[0].ContentType = "text/plain\r\nBcc: v@example.org" }, "attachments[0].content_type", CodeInvalidContentType},
		{"content type too long", func(m *Message) { m.Attachments[0].ContentType = "text/plain; x=" + strings.Repeat("y", 1000) }, "attachments[0].content_type", CodeInvalidContentType},
		{"multipart attachment", func(m *Message) { m.Attachments[0].ContentType = "multipart/mixed; boundary=x" }, "attachments[0].content_type", CodeInvalidContentType},
		{"message attachment", func(m *Message) { m.Attachments[0].ContentType = "message/rfc822" }, "attachments[0].content_type", CodeInvalidContentType},
		{"content id with brackets", func(m *Message) { m.Attachments[1].ContentID = "<logo@x>" }, "attachments[1].content_id", CodeInvalidContentID},
		{"content id with space", func(m *Message) { m.Attachments[1].ContentID = "lo go" }, "attachments[1].content_id", CodeInvalidContentID},
		{"content id with CRLF", func(m *Message) { m.Attachments[1].ContentID = "a\r\nb" }, "attachments[1].content_id", CodeInvalidContentID},
		{"content id not ASCII", func(m *Message) { m.Attachments[1].ContentID = "lögo" }, "attachments[1].content_id", CodeInvalidContentID},
		{"content id twice", func(m *Message) { m.Attachments[0].ContentID = "logo@x" }, "attachments[1].content_id", CodeInvalidContentID},
	}
	for _, name := range []string{"From", "to", "CC", "Bcc", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type",
		"Content-Transfer-Encoding", "Reply-To", "Sender", "Return-Path", "Received", "DKIM-Signature", "ARC-Seal",
		"Authentication-Results", "Resent-From", "Content-Disposition"} {
		cases = append(cases, struct {
			name   string
			mutate func(*Message)
			field  string
			code   string
		}{"reserved " + name, func(m *Message) { m.Headers = map[string]string{name: "x"} }, "headers." + name, CodeReservedHeader})
	}
	codes := map[string]bool{}
	for _, c := range cases {
		m := validMessage()
		c.mutate(m)
		err := m.Validate()
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Code != c.code || fe.Field != c.field || fe.Message == "" {
			t.Errorf("%s: got %#v, want %s at %s", c.name, err, c.code, c.field)
			continue
		}
		codes[fe.Code] = true
	}
	for _, code := range []string{CodeMissingField, CodeInvalidAddress, CodeHeaderInjection, CodeInvalidHeader, CodeReservedHeader,
		CodeHeaderTooLong, CodeInvalidText, CodeInvalidFilename, CodeInvalidBase64, CodeInvalidContentType, CodeInvalidContentID} {
		if !codes[code] {
			t.Errorf("no case for %s", code)
		}
	}
	m := validMessage()
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(m, validMessage()) {
		t.Error("Validate changed the message")
	}
	if e := (&FieldError{Field: "to[0].email", Message: "bad"}); e.Error() != "to[0].email: bad" {
		t.Errorf("Error() = %q", e.Error())
	}
}

// TestValidAddresses accepts the unusual but valid, and checks that every
// accepted address is also a valid envelope address for the queue.
func TestValidAddresses(t *testing.T) {
	for _, email := range []string{
		"a@example.com", `"john smith"@example.com`, `"a@b"@example.com`, `"quote\"d"@example.com`, "a+tag@sub.example.co.uk",
		"o'neil@example.ie", "a@[192.0.2.1]", "a@[IPv6:2001:db8::1]", "jösé@bücher.de", "用户@例子.广告", "x@xn--bcher-kva.example",
		strings.Repeat("a", 64) + "@example.com", "a@1.example", "a@example.123x",
	} {
		m := shapeMessage("x", "")
		m.To[0].Email = email
		if err := m.Validate(); err != nil {
			t.Errorf("%s: %v", email, err)
			continue
		}
		if _, err := smtpproto.ParseAddress(email, true); err != nil {
			t.Errorf("%s passes Validate but not the envelope check: %v", email, err)
		}
	}
}

func TestDecodeJSON(t *testing.T) {
	var m Message
	err := json.Unmarshal([]byte(`{
		"from": "Zoë <zoe@example.com>",
		"to": " ann@example.org ",
		"cc": ["B <b@example.org>", {"name": "C", "email": "\"c\"@example.org"}, "\"Dee, D.\" <d@[IPv6:2001:db8::1]>", "e@example.org (Eve)"],
		"bcc": [null, "not an address"],
		"reply_to": {"email": "r@example.com"},
		"attachments": [
			{"filename": "a", "content": "aGk="}, {"filename": "b", "content": "aGk"}, {"filename": "c", "content": "-_8"},
			{"filename": "d", "content": "aGVs\r\nbG8="}, {"filename": "e", "content": "!!!"}, {"filename": "f"}
		]}`), &m)
	if err != nil {
		t.Fatal(err)
	}
	want := Message{
		From: Address{"Zoë", "zoe@example.com"},
		To:   AddressList{{"", "ann@example.org"}},
		Cc:   AddressList{{"B", "b@example.org"}, {"C", "c@example.org"}, {"Dee, D.", "d@[IPv6:2001:db8::1]"}, {"Eve", "e@example.org"}},
		Bcc:  AddressList{{}, {"", "not an address"}}, ReplyTo: AddressList{{"", "r@example.com"}},
		Attachments: []Attachment{{Filename: "a", Content: []byte("hi")}, {Filename: "b", Content: []byte("hi")},
			{Filename: "c", Content: []byte{0xfb, 0xff}}, {Filename: "d", Content: []byte("hello")},
			{Filename: "e", badContent: true}, {Filename: "f"}},
	}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("decoded\n%#v\nwant\n%#v", m, want)
	}
	var fe *FieldError
	if err := m.Validate(); !errors.As(err, &fe) || fe.Field != "bcc[0].email" {
		t.Errorf("null address: %v", err)
	}
	m.Bcc = m.Bcc[1:]
	if err := m.Validate(); !errors.As(err, &fe) || fe.Field != "bcc[0].email" || fe.Code != CodeInvalidAddress {
		t.Errorf("bad address kept for Validate: %v", err)
	}
	m.Bcc = nil
	m.Text = "x"
	if err := m.Validate(); !errors.As(err, &fe) || fe.Field != "attachments[4].content" || fe.Code != CodeInvalidBase64 {
		t.Errorf("bad base64 kept for Validate: %v", err)
	}

	for _, bad := range []string{
		`{"to": {"email": "a@example.org", "mail": "x"}}`,
		`{"to": 42}`,
		`{"attachments": [{"filename": "a", "content": "aGk=", "data": "x"}]}`,
		`{"attachments": [{"filename": "a", "content": 42}]}`,
	} {
		if err := json.Unmarshal([]byte(bad), new(Message)); err == nil {
			t.Errorf("%s decodes", bad)
		}
	}

	// The API embeds Message in its request and decodes strictly: Message
	// must not have an UnmarshalJSON that would hide the outer fields.
	var req struct {
		Message
		Lane string `json:"lane"`
	}
	if err := strictDecode([]byte(`{"from": "a@example.com", "to": "b@example.org", "text": "x", "lane": "bulk"}`), &req); err != nil ||
		req.Lane != "bulk" || req.From.Email != "a@example.com" || len(req.To) != 1 {
		t.Errorf("embedded decoding: %v %+v", err, req)
	}
	if err := strictDecode([]byte(`{"from": "a@example.com", "colour": "red"}`), &req); err == nil {
		t.Error("unknown field accepted")
	}

	// Encoding gives back what decoding takes.
	orig := validMessage()
	b, _ := json.Marshal(orig)
	var back Message
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(&back, orig) {
		t.Errorf("JSON round trip: %v\n%s", err, b)
	}
}

func TestParseAddress(t *testing.T) {
	for in, want := range map[string]Address{
		"a@example.com":                        {"", "a@example.com"},
		"Ann <a@example.com>":                  {"Ann", "a@example.com"},
		`"Ann, B." <a@example.com>`:            {"Ann, B.", "a@example.com"},
		"=?utf-8?q?J=C3=B6rg?= <j@example.de>": {"Jörg", "j@example.de"},
		`<"a b"@example.com>`:                  {"", `"a b"@example.com`},
		"Lit <a@[IPv6:::1]>":                   {"Lit", "a@[IPv6:::1]"},
		"a@[IPv6:2001:db8::1]":                 {"", "a@[IPv6:2001:db8::1]"},
	} {
		got, err := ParseAddress(in)
		if err != nil || got != want {
			t.Errorf("ParseAddress(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "a", "a@b", "a@example.com, b@example.com", "a@example.com\r\n", "Ann <a@b>"} {
		if got, err := ParseAddress(in); err == nil {
			t.Errorf("ParseAddress(%q) = %+v", in, got)
		}
	}
	if s := (Address{Name: "Jörg", Email: "j@example.de"}).String(); s != "=?utf-8?q?J=C3=B6rg?= <j@example.de>" {
		t.Errorf("String() = %q", s)
	}
}

func TestRecipients(t *testing.T) {
	m := &Message{
		To:  AddressList{{Email: "a@Example.COM"}, {Email: "b@example.org"}},
		Cc:  AddressList{{Email: "A@example.com"}, {Email: ""}, {Email: "b@EXAMPLE.org"}},
		Bcc: AddressList{{Email: "a@example.com"}, {Email: "c@example.net"}},
	}
	got := m.Recipients()
	want := []string{"a@Example.COM", "b@example.org", "A@example.com", "c@example.net"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Recipients() = %v, want %v", got, want)
	}
}
