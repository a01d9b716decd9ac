package bounce

import (
	"net/textproto"
	"regexp"
	"strings"
)

// VERPPrefix is the local-part prefix of posthorn's return paths:
// bounces+<token>@<bounce-domain>.
const VERPPrefix = "bounces+"

// VERPToken returns the token of a VERP address "bounces+TOKEN@domain"
// ("" when addr is not one). Angle brackets and a display name are
// accepted.
func VERPToken(addr string) string {
	a := cleanAddress(addr)
	at := strings.LastIndexByte(a, '@')
	if at <= 0 {
		return ""
	}
	local := a[:at]
	if len(local) <= len(VERPPrefix) || !strings.EqualFold(local[:len(VERPPrefix)], VERPPrefix) {
		return ""
	}
	return local[len(VERPPrefix):]
}

// Token returns the VERP token that ties this report to a delivery: from
// the original message's return path, else from the address the notice
// was delivered or sent to (a bounce goes to the return path), else "".
// The inbound listener knows the envelope recipient better than any
// header; it should prefer VERPToken of that.
func (r *Report) Token() string {
	for _, a := range []string{r.Original.ReturnPath, r.Notice.DeliveredTo, r.Notice.To} {
		for _, x := range addressList(a) {
			if t := VERPToken(x); t != "" {
				return t
			}
		}
		if t := VERPToken(a); t != "" {
			return t
		}
	}
	return ""
}

var reHeaderStart = regexp.MustCompile(`(?im)^(?:return-path|received|message-id|from|to|subject|date|mime-version|x-[a-z0-9-]+|dkim-signature|delivered-to):[ \t]`)

// fillOriginal extracts the returned message's identifiers: from the
// message/rfc822 (or headers) part, else from the headers quoted in a
// plain-text notice after its separator.
func fillOriginal(m *message, rep *Report) {
	var h header
	if m.original != nil {
		h = m.original.hdr
	}
	if len(h) == 0 {
		if _, rest := cutOriginal(m.notice); rest != "" {
			h = headersIn(rest)
		}
	}
	if len(h) == 0 {
		// Attached as text (some MTAs send "Undelivered message.txt").
		m.root.walk(func(pt *part) bool {
			if len(h) == 0 && isAttachment(pt) && strings.HasPrefix(pt.mediaType, "text/") {
				h = headersIn(pt.text())
			}
			return len(h) == 0
		})
	}
	o := &rep.Original
	if len(h) > 0 {
		originalFromHeader(o, h)
	}
	if rep.Feedback != nil && o.ReturnPath == "" && rep.Feedback.OriginalMailFrom != "" {
		o.ReturnPath = rep.Feedback.OriginalMailFrom
	}
	if o.ReturnPath == "" && rep.Kind == KindDSN {
		// Sendmail and others name the envelope sender in the DSN.
		if m.status != nil {
			body, _ := toUTF8("", m.status.body)
			for _, b := range fieldBlocks(body) {
				for _, name := range []string{"X-Postfix-Sender", "X-Original-Mail-From", "X-SendGrid-Sender"} {
					if v := b.get(name); v != "" && o.ReturnPath == "" {
						o.ReturnPath = cleanAddress(typedValue(v))
					}
				}
			}
		}
	}
}

// headersIn finds the first block of header fields in quoted text.
func headersIn(s string) header {
	loc := reHeaderStart.FindStringIndex(clip(s, 256<<10))
	if loc == nil {
		return nil
	}
	h, _ := splitHeader(normalizeEOL([]byte(strings.TrimLeft(s[loc[0]:], " "))))
	decodeHeaders(h)
	return h
}

func canonicalKey(s string) string { return textproto.CanonicalMIMEHeaderKey(s) }

// originalFromHeader copies the identifiers from the returned header.
func originalFromHeader(o *Original, h header) {
	o.MessageID = strings.Trim(strings.TrimSpace(h.get("Message-ID")), "<>")
	o.ReturnPath = strings.TrimSpace(h.get("Return-Path"))
	if o.ReturnPath != "" {
		o.ReturnPath = cleanAddress(o.ReturnPath)
	}
	o.From = h.get("From")
	o.To = h.get("To")
	o.Subject = h.get("Subject")
	o.Date = h.get("Date")
	for _, f := range h {
		if len(f.name) > 11 && strings.EqualFold(f.name[:11], "X-Posthorn-") {
			if o.Posthorn == nil {
				o.Posthorn = map[string]string{}
			}
			k := canonicalKey(f.name)
			if _, dup := o.Posthorn[k]; !dup && len(o.Posthorn) < 50 {
				o.Posthorn[k] = f.value
			}
		}
	}
}
