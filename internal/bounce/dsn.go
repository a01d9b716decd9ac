package bounce

import (
	"regexp"
	"strconv"
	"strings"
)

// fieldBlocks splits a delivery-status or feedback-report body into its
// groups of fields (separated by blank lines). Lines that are not fields
// are skipped; a block that holds no field is dropped.
func fieldBlocks(body string) []header {
	var blocks []header
	var cur header
	flush := func() {
		if len(cur) > 0 {
			blocks = append(blocks, cur)
			cur = nil
		}
	}
	for _, line := range strings.Split(body, "\n") {
		if strings.TrimSpace(line) == "" {
			flush()
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			if len(cur) > 0 {
				last := &cur[len(cur)-1]
				if len(last.value) < 8<<10 {
					last.value += " " + strings.TrimSpace(line)
				}
			}
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok || !validFieldName([]byte(name)) {
			continue
		}
		if len(cur) < maxFields {
			cur = append(cur, field{name: strings.TrimSpace(name), value: strings.TrimSpace(value)})
		}
		if len(blocks) > maxParts {
			break
		}
	}
	flush()
	return blocks
}

// parseDSN reads an RFC 3464 / RFC 6533 report.
func parseDSN(p *parser, m *message, rep *Report) {
	rep.Kind = KindDSN
	rep.Format = "rfc3464"
	if m.status.mediaType == "message/global-delivery-status" {
		rep.Format = "rfc6533"
	}
	body, _ := toUTF8(m.status.params["charset"], m.status.body)
	var blocks []header
	for _, b := range fieldBlocks(body) {
		blocks = append(blocks, splitRecipients(b)...)
	}
	var textRcpts []Recipient // the notice read as text, to fill gaps
	textDone := false
	for _, b := range blocks {
		if v := b.get("Reporting-MTA"); v != "" && rep.ReportingMTA == "" {
			rep.ReportingMTA = typedValue(v)
		}
		if v := b.get("Original-Envelope-Id"); v != "" && rep.OriginalEnvelopeID == "" {
			rep.OriginalEnvelopeID = v
		}
		final, orig := b.get("Final-Recipient"), b.get("Original-Recipient")
		if final == "" {
			final = b.get("X-Actual-Recipient")
		}
		if final == "" && orig == "" {
			continue
		}
		r := Recipient{
			Address:    cleanAddress(typedValue(final)),
			Action:     strings.ToLower(firstWord(b.get("Action"))),
			Status:     findStatus(b.get("Status")),
			RemoteMTA:  typedValue(b.get("Remote-MTA")),
			Diagnostic: strings.TrimSpace(typedValue(b.get("Diagnostic-Code"))),
		}
		if o := cleanAddress(typedValue(orig)); o != "" {
			if r.Address == "" || !validAddress(r.Address) && validAddress(o) {
				r.Address = o
			} else if !strings.EqualFold(o, r.Address) {
				r.OriginalRecipient = o
			}
		}
		if !validAddress(r.Address) {
			// "|/usr/bin/prog user@example.com", a mailbox file path...
			if a := reAddr.FindString(final + " " + orig); a != "" {
				r.Address = cleanAddress(a)
			} else if xf := m.hdr.get("X-Failed-Recipients"); xf != "" && !strings.Contains(xf, ",") {
				r.Address = cleanAddress(xf)
			}
		}
		if !validAddress(r.Address) {
			p.warn("recipient without a usable address: " + clip(final, 100))
			continue
		}
		if len(rep.Recipients) >= maxRecipients {
			p.warn("too many recipients; the rest are ignored")
			break
		}
		if !textDone {
			tr := &Report{}
			parseText(m, tr)
			textRcpts = tr.Recipients
			textDone = true
		}
		for _, t := range textRcpts {
			if !strings.EqualFold(t.Address, r.Address) {
				continue
			}
			// The notice often says more than the report: the command
			// that failed, the server's whole reply.
			if r.Diagnostic == "" || len(r.Diagnostic) < 12 {
				r.Diagnostic = strings.TrimSpace(r.Diagnostic + " " + t.Diagnostic)
			}
			if r.Status == "" {
				r.Status = findStatus(t.Diagnostic)
			}
			r.Command = extractCommand(r.Diagnostic)
			if r.Command == "" {
				r.Command = extractCommand(t.Diagnostic)
			}
			break
		}
		rep.Recipients = mergeRecipient(rep.Recipients, r)
	}
}

const maxRecipients = 500

// splitRecipients splits a block that holds several recipients' fields
// with no blank line between them.
func splitRecipients(b header) []header {
	var out []header
	var cur header
	hasFinal, hasOrig := false, false
	for _, f := range b {
		final := strings.EqualFold(f.name, "Final-Recipient")
		orig := strings.EqualFold(f.name, "Original-Recipient")
		switch {
		case final && hasFinal:
			var moved header
			if n := len(cur); n > 0 && strings.EqualFold(cur[n-1].name, "Original-Recipient") {
				moved = header{cur[n-1]}
				cur = cur[:n-1]
			}
			out = append(out, cur)
			cur, hasOrig = moved, len(moved) > 0
			hasFinal = false
		case orig && hasFinal && hasOrig:
			out = append(out, cur)
			cur, hasFinal, hasOrig = nil, false, false
		}
		hasFinal = hasFinal || final
		hasOrig = hasOrig || orig
		cur = append(cur, f)
	}
	return append(out, cur)
}

// mergeRecipient appends r, or folds it into an entry for the same
// address (some MTAs repeat a block per attempt).
func mergeRecipient(list []Recipient, r Recipient) []Recipient {
	for i := range list {
		if strings.EqualFold(list[i].Address, r.Address) {
			e := &list[i]
			if e.Diagnostic == "" {
				e.Diagnostic = r.Diagnostic
			}
			if e.Status == "" || strings.HasSuffix(e.Status, ".0.0") && r.Status != "" {
				e.Status = r.Status
			}
			if e.Action == "" {
				e.Action = r.Action
			}
			if e.RemoteMTA == "" {
				e.RemoteMTA = r.RemoteMTA
			}
			return list
		}
	}
	return append(list, r)
}

// typedValue drops the "type;" prefix of a DSN field ("rfc822; a@b",
// "dns; mx.example", "smtp; 550 ...").
func typedValue(v string) string {
	if i := strings.IndexByte(v, ';'); i >= 0 && i < 16 && !strings.ContainsAny(v[:i], " @<") {
		return strings.TrimSpace(v[i+1:])
	}
	return strings.TrimSpace(v)
}

func firstWord(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexAny(s, " \t(;"); i >= 0 {
		return s[:i]
	}
	return s
}

var (
	reStatus     = regexp.MustCompile(`(?:^|[^\d.])([245]\.\d{1,3}\.\d{1,3})(?:[^\d.]|\.(?:\D|$)|$)`)
	reUnicodeEsc = regexp.MustCompile(`\\x\{([0-9A-Fa-f]{1,6})\}`)
)

// findStatus returns the first RFC 3463 status code in s.
func findStatus(s string) string {
	if m := reStatus.FindStringSubmatch(s); m != nil {
		return m[1]
	}
	return ""
}

// cleanAddress turns what a report gives as an address into a bare
// addr-spec: brackets, quotes around the whole, RFC 6533 \x{..} escapes,
// trailing dots and comments are removed; the domain is lower-cased.
// xtext ("+2B") is left alone: VERP tokens contain "+HH" sequences.
func cleanAddress(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	if len(s) > 7 && strings.EqualFold(s[:7], "rfc822;") {
		s = strings.TrimSpace(s[7:])
	}
	if i := strings.IndexByte(s, '<'); i >= 0 {
		if j := strings.IndexByte(s[i:], '>'); j > 0 {
			s = s[i+1 : i+j]
		}
	}
	if i := strings.Index(s, " ("); i > 0 {
		s = s[:i]
	}
	if strings.Contains(s, "\\x{") {
		s = reUnicodeEsc.ReplaceAllStringFunc(s, func(m string) string {
			n, err := strconv.ParseUint(reUnicodeEsc.FindStringSubmatch(m)[1], 16, 32)
			if err != nil || n > 0x10FFFF {
				return m
			}
			return string(rune(n))
		})
	}
	s = strings.Trim(s, " \t<>'`,;:.[]")
	if strings.HasPrefix(s, "\"") && strings.HasSuffix(s, "\"") && strings.Count(s, "\"") == 2 && len(s) > 2 {
		s = s[1 : len(s)-1]
	}
	if strings.ContainsAny(s, " \t") && !strings.Contains(s, "\"") {
		if f := strings.Fields(s); len(f) > 0 {
			s = f[0]
		}
	}
	if at := strings.LastIndexByte(s, '@'); at > 0 {
		local := s[:at]
		if len(local) > 2 && local[0] == '"' && local[len(local)-1] == '"' && isDotAtom(local[1:len(local)-1]) {
			local = local[1 : len(local)-1] // quoting that changes nothing
		}
		s = local + "@" + strings.ToLower(s[at+1:])
	}
	if len(s) > 320 {
		return ""
	}
	return s
}

// validAddress reports whether s looks like local@domain.tld.
func validAddress(s string) bool {
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at == len(s)-1 {
		return false
	}
	d := s[at+1:]
	return (strings.Contains(d, ".") || strings.HasPrefix(d, "[")) && !strings.ContainsAny(d, " <>()\",;:")
}

// isDotAtom reports whether s is an RFC 5322 dot-atom (needs no quotes).
func isDotAtom(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80 || strings.ContainsRune("!#$%&'*+-/=?^_`{|}~.", c)) {
			return false
		}
	}
	return true
}
