// Package sendpolicy is the per-tenant policy on what may leave: a
// maximum message size, no executable attachments, and a List-Unsubscribe
// header on low-lane (bulk) mail. It is an accept check: each refusal is
// a clear permanent reply (SMTP 550 5.7.1 or 552 5.3.4, HTTP 422 or 413
// with a code).
//
// Decisions: MIME is parsed with the standard library (mime, mime/multipart,
// net/mail), which reads RFC 2231 parameters and RFC 2047 names; a part
// is an attachment when it has a file name or is not text. Executables
// are recognised by content type, by file name extension and by the first
// bytes of the decoded content (MZ, ELF, Mach-O, "#!"), so a renamed file
// does not pass. A message whose MIME structure cannot be read is not
// refused for that (the receiving side will judge it); only what can be
// read is checked. Nesting is bounded (depth 10, 1000 parts). A message
// the API built without attachments (Submission.TextOnly) is not parsed:
// compose writes only text parts then, and refuses Content-* headers.
package sendpolicy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/http"
	"net/mail"
	"net/textproto"
	"path"
	"strings"

	"github.com/posthorn/posthorn/internal/accept"
	"github.com/posthorn/posthorn/internal/store"
)

// Policy is one tenant's rules.
type Policy struct {
	MaxSize          int  // bytes of the submitted message; 0: no limit beyond smtp.max_message_size
	BlockExecutables bool // refuse executable attachments
	// RequireUnsubscribe refuses low-lane mail without a List-Unsubscribe
	// header (unless posthorn adds one itself to the low lane).
	RequireUnsubscribe bool
}

// Check applies the policy at accept time.
type Check struct {
	Default Policy
	Tenants map[string]Policy // by tenant ID
	// AddsUnsubscribe reports whether posthorn adds List-Unsubscribe to a
	// lane itself ([unsubscribe]).
	AddsUnsubscribe func(store.Lane) bool
}

func refuse(format string, a ...any) *accept.Error {
	return accept.Refusal(550, "5.7.1", fmt.Sprintf(format, a...), http.StatusUnprocessableEntity, "", 0)
}

// Check implements accept.Check.
func (c *Check) Check(_ context.Context, in *accept.CheckInput) (*accept.Verdict, error) {
	pol, ok := c.Tenants[in.Sub.TenantID]
	if !ok {
		pol = c.Default
	}
	if pol.MaxSize > 0 && len(in.Body) > pol.MaxSize {
		return nil, accept.Refusal(552, "5.3.4", fmt.Sprintf("message size %d exceeds this sender's limit of %d bytes", len(in.Body), pol.MaxSize),
			http.StatusRequestEntityTooLarge, "message_too_large", 0)
	}
	if pol.RequireUnsubscribe && in.Lane == store.LaneLow && (c.AddsUnsubscribe == nil || !c.AddsUnsubscribe(in.Lane)) &&
		accept.HeaderValue(in.Body, "List-Unsubscribe") == "" {
		e := refuse("bulk (low lane) mail needs a List-Unsubscribe header")
		e.APICode = "list_unsubscribe_required"
		return nil, e
	}
	if pol.BlockExecutables && !in.Sub.TextOnly {
		if why := FindExecutable(in.Body); why != "" {
			e := refuse("attachment refused: %s", why)
			e.APICode = "attachment_refused"
			return nil, e
		}
	}
	return nil, nil
}

// Limits on the MIME walk.
const (
	maxDepth = 10
	maxParts = 1000
	sniffLen = 512
)

// FindExecutable returns why the message carries an executable, or "".
func FindExecutable(msg []byte) string {
	m, err := mail.ReadMessage(bytes.NewReader(msg))
	if err != nil {
		return ""
	}
	parts := 0
	return walk(textproto.MIMEHeader(m.Header), m.Body, 0, &parts)
}

func walk(h textproto.MIMEHeader, body io.Reader, depth int, parts *int) string {
	*parts++
	if depth > maxDepth || *parts > maxParts {
		return ""
	}
	ct := h.Get("Content-Type")
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || ct == "" {
		mt, params = "text/plain", nil
	}
	mt = strings.ToLower(mt)
	switch {
	case strings.HasPrefix(mt, "multipart/"):
		if params["boundary"] == "" {
			return ""
		}
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextRawPart()
			if err != nil {
				return ""
			}
			if why := walk(p.Header, p, depth+1, parts); why != "" {
				return why
			}
		}
	case mt == "message/rfc822" || mt == "message/global":
		m, err := mail.ReadMessage(decode(h, body))
		if err != nil {
			return ""
		}
		return walk(textproto.MIMEHeader(m.Header), m.Body, depth+1, parts)
	}
	name := fileName(h, params)
	what := fmt.Sprintf("%q", name)
	if name == "" {
		what = "a " + mt + " part"
	}
	if blockedTypes[mt] {
		return fmt.Sprintf("%s has an executable content type (%s)", what, mt)
	}
	if ext := strings.ToLower(strings.TrimPrefix(path.Ext(name), ".")); blockedExt[ext] {
		return fmt.Sprintf("%s is an executable file type (.%s)", what, ext)
	}
	if name == "" && strings.HasPrefix(mt, "text/") {
		return "" // message text, not an attachment
	}
	head := make([]byte, sniffLen)
	n, _ := io.ReadFull(decode(h, body), head)
	if sig := signature(head[:n]); sig != "" {
		return fmt.Sprintf("%s is %s", what, sig)
	}
	return ""
}

// decode undoes the part's Content-Transfer-Encoding.
func decode(h textproto.MIMEHeader, body io.Reader) io.Reader {
	switch strings.ToLower(strings.TrimSpace(h.Get("Content-Transfer-Encoding"))) {
	case "base64":
		return base64.NewDecoder(base64.StdEncoding, &skipSpace{r: bufio.NewReader(body)})
	case "quoted-printable":
		return quotedprintable.NewReader(body)
	}
	return body
}

// skipSpace drops the line breaks and blanks base64 bodies carry.
type skipSpace struct{ r *bufio.Reader }

func (s *skipSpace) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c, err := s.r.ReadByte()
		if err != nil {
			if n > 0 {
				return n, nil
			}
			return 0, err
		}
		if c == '\r' || c == '\n' || c == ' ' || c == '\t' {
			continue
		}
		p[n] = c
		n++
	}
	return n, nil
}

var wordDecoder = &mime.WordDecoder{}

func fileName(h textproto.MIMEHeader, ctParams map[string]string) string {
	name := ""
	if _, p, err := mime.ParseMediaType(h.Get("Content-Disposition")); err == nil {
		name = p["filename"]
	}
	if name == "" {
		name = ctParams["name"]
	}
	if d, err := wordDecoder.DecodeHeader(name); err == nil {
		name = d
	}
	return strings.TrimSpace(name)
}

func signature(b []byte) string {
	switch {
	case bytes.HasPrefix(b, []byte("MZ")):
		return "a Windows executable (MZ signature)"
	case bytes.HasPrefix(b, []byte("\x7fELF")):
		return "an ELF executable"
	case bytes.HasPrefix(b, []byte{0xfe, 0xed, 0xfa, 0xce}), bytes.HasPrefix(b, []byte{0xfe, 0xed, 0xfa, 0xcf}),
		bytes.HasPrefix(b, []byte{0xce, 0xfa, 0xed, 0xfe}), bytes.HasPrefix(b, []byte{0xcf, 0xfa, 0xed, 0xfe}):
		return "a Mach-O executable"
	case bytes.HasPrefix(b, []byte("#!")):
		return "a script (#! line)"
	}
	return ""
}

var blockedTypes = set("application/x-msdownload", "application/x-msdos-program", "application/x-dosexec",
	"application/x-executable", "application/x-sharedlib", "application/x-mach-binary", "application/vnd.microsoft.portable-executable",
	"application/x-ms-installer", "application/x-msi", "application/x-sh", "application/x-shellscript", "application/x-csh",
	"application/x-bat", "application/x-msdos-batch", "application/hta", "application/x-ms-shortcut", "text/vbscript",
	"application/x-vbscript", "text/x-shellscript")

var blockedExt = set("exe", "scr", "com", "pif", "bat", "cmd", "cpl", "dll", "msi", "msp", "js", "jse", "vbs", "vbe",
	"wsf", "wsh", "hta", "ps1", "psm1", "lnk", "reg", "jar", "sh", "app", "gadget", "msc", "scf", "inf")

func set(s ...string) map[string]bool {
	m := make(map[string]bool, len(s))
	for _, k := range s {
		m[k] = true
	}
	return m
}
