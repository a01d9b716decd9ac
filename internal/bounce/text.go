package bounce

import (
	"regexp"
	"strings"
)

// Plain-text notices (qmail, Exim, Postfix without DSN, Exchange, Gmail,
// Yahoo...) are read with patterns: the notice is cut where the copy of
// the original message starts, failed recipients are found where notices
// put them (an address alone on a line, "addr: reason", "RCPT TO:<addr>",
// "delivered to addr"...), and the lines after each address, up to the
// next one, are its diagnostic.

const (
	maxNoticeLines = 3000
	maxBlockLines  = 30
	maxDiagnostic  = 1500
	maxCandidates  = 2000
)

const addrPat = `(?:"[^"\n]{1,64}"|[A-Za-z0-9!#$%&'*+/=?^_{|}~.-]{1,128}|=\?[^?\s]{1,20}\?[bBqQ]\?[^?\s]{1,100}\?=)@(?:\[[0-9A-Fa-f.:]{3,60}\]|[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)+)`

var (
	reAddr = regexp.MustCompile(addrPat)
	// Separators before the copy of the original message.
	reSeparator = regexp.MustCompile(`(?i)^\s*(?:[-=_*#]{2,}[ ]*)?(?:` +
		`this is a copy of the message|below this line is a copy|original message follows|` +
		`original message|the original message headers|original message headers|` +
		`the header of the original message|enclosed is a copy of the message|below is a copy of the original message|` +
		`included is a copy of the message header|returned message|undelivered message|unsent message|` +
		`message header follows|original mail|headers of the original message|the original message follows|` +
		`the original email|copy of the original|message headers follow|original headers)\b`)
	reSepNot = regexp.MustCompile(`(?i)original message (?:was|could|has been)\b`)
	// Recipient on a line of its own: "addr", "<addr>", "<addr>:", "Name<mailto:addr>", "addr on Date".
	reAloneAddr = regexp.MustCompile(`^\s*(?:[>*•-]+\s*)?(?:[^<>@\s:]{0,60}<(?:mailto:)?|"?)(` + addrPat + `)>?"?\s*[:.,]?\s*(?:on \S.*|\(\d+\)|\[[^\]]*\]|<` + addrPat + `>)?\s*$`)
	// "name <addr>: reason" (Exim's malformed-address notice).
	reBracketAddr = regexp.MustCompile(`^\s*[^<>\s]+\s+<(` + addrPat + `)>\s*:`)
	// "reason text: addr" at the end of a line.
	reTrailAddr  = regexp.MustCompile(`^\s*[^@:]{3,100}:\s*<?(` + addrPat + `)>?\.?\s*$`)
	reHeaderLine = regexp.MustCompile(`(?i)^\s*(?:to|cc|bcc|from|sender|reply-to|subject|return-path|x-[a-z-]+|mail from|envelope-from|delivered-to|received|message-id|in-reply-to|references|date)\s*:|message-?id`)
	reExpanded   = regexp.MustCompile(`(?i)\((?:expanded|ultimately generated) from[^)]{0,300}\)`)
	// "addr: reason", "<addr>: host x said", "addr... User unknown", "<addr> (reason: ...)".
	reLeadAddr      = regexp.MustCompile(`^\s*(?:[245]\d\d[ -]|[-*]\s*)?<?(` + addrPat + `)>?\s*(?::|\.\.\.|\(|-\s|,\s|\s+\d{3}[ -]|\s+[45]\.\d)`)
	reLeadAddrLoose = regexp.MustCompile(`^\s*<?(` + addrPat + `)>?\s+\S`)
	// Phrases that name the failed recipient.
	rePhraseAddr = regexp.MustCompile(`(?i)\b(?:` +
		`(?:could ?n[o']t|cannot|can't|wasn't|was not|were not|not (?:be )?(?:delivered|relayed))[^.\n]{0,40}?\bto|` +
		`undeliverable to|delivery to|failed to deliver to|unable to deliver (?:your message |this message |mail )?to|` +
		`message to|mail to|recipient|user|mailbox|for|to)\b[\s:]*<?("?` + addrPat + `)|` +
		`\b(?:recipient(?: address)?(?:\(s\))?|rcpt(?: to)?|address(?:ee)?|errors?|failed|failures?|bounced|rejected):\s*<?("?` + addrPat + `)`)
	reRcptTo = regexp.MustCompile(`(?i)\bRCPT\s*TO:?\s*<?(` + addrPat + `)`)
	reSender = regexp.MustCompile(`(?i)(?:mail from:?|from:|sender:?|return-path:|envelope-from|reply-to:|^\s*to:|^\s*cc:|^\s*from\b|sent by|contact)\s*[^@\n]{0,40}$`)
)

type candidate struct {
	addr string
	line int
	tier int
}

// parseText reads a plain-text notice.
func parseText(m *message, rep *Report) {
	rep.Kind = KindDSN
	if rep.Format == "" {
		rep.Format = "text"
	}
	notice, rest := cutOriginal(m.notice)
	notice = reExpanded.ReplaceAllString(clip(notice, 512<<10), "")
	lines := strings.Split(notice, "\n")
	if len(lines) > maxNoticeLines {
		lines = lines[:maxNoticeLines]
	}
	cands := textCandidates(m, lines, notice)
	if len(cands) == 0 {
		// Nothing names the recipient; a returned message sent to one
		// address says who it was.
		var h header
		if m.original != nil {
			if isReport(m.original) {
				return // a bounce inside: analyze reads it
			}
			h = m.original.hdr
		} else if rest != "" {
			h = headersIn(rest)
		}
		if to := addressList(h.get("To")); len(to) == 1 && validAddress(to[0]) {
			rep.Recipients = []Recipient{{Address: to[0], Diagnostic: clip(collapse(notice), maxDiagnostic)}}
		}
		return
	}
	// Diagnostic blocks: from each candidate's line to the next's.
	var starts []int
	for _, c := range cands {
		if c.line >= 0 {
			starts = append(starts, c.line)
		}
	}
	onLine := map[string]bool{}
	for _, c := range cands {
		if c.line >= 0 {
			onLine[strings.ToLower(c.addr)] = true
		}
	}
	for _, c := range cands {
		r := Recipient{Address: c.addr}
		switch {
		case c.line >= 0:
			r.Diagnostic = block(lines, c.line, starts, c.addr)
		case !onLine[strings.ToLower(c.addr)]:
			r.Diagnostic = blockFor(lines, c.addr, starts)
			if r.Diagnostic == "" && len(cands) == 1 {
				r.Diagnostic = clip(collapse(notice), maxDiagnostic)
			}
		}
		rep.Recipients = mergeText(rep.Recipients, r)
		if len(rep.Recipients) >= maxRecipients {
			break
		}
	}
	// A single recipient whose block has no code: the whole notice is
	// about it.
	if len(rep.Recipients) == 1 && !hasCode(rep.Recipients[0].Diagnostic) {
		rep.Recipients[0].Diagnostic = collapse(rep.Recipients[0].Diagnostic + " " + notice)
	}
}

// textCandidates finds the addresses a notice gives as failed, strongest
// kind first.
func textCandidates(m *message, lines []string, notice string) []candidate {
	exclude := excludedAddresses(m)
	var cands []candidate
	failed := map[string]bool{}
	lowNotice := strings.ToLower(notice)
	for _, v := range m.hdr.values("X-Failed-Recipients") {
		for _, a := range strings.Split(v, ",") {
			if a = cleanAddress(a); validAddress(a) && len(failed) < maxRecipients {
				failed[strings.ToLower(a)] = true
				cands = append(cands, candidate{addr: a, line: -1, tier: 4})
			}
		}
	}
	for i, l := range lines {
		if len(cands) >= maxCandidates {
			break
		}
		if len(l) > 2000 {
			l = l[:2000]
		}
		if !strings.Contains(l, "@") {
			continue
		}
		// add records a candidate. Addresses the notice itself names as
		// sender or recipient are skipped unless the line's form leaves no
		// doubt (strong); daemons are always skipped.
		add := func(a string, tier int, strong bool) {
			a = cleanAddress(a)
			la := strings.ToLower(a)
			if !validAddress(a) || isDaemon(la) || exclude[la] && !failed[la] && !strong {
				return
			}
			cands = append(cands, candidate{addr: a, line: i, tier: tier})
		}
		if f, v, ok := strings.Cut(strings.TrimSpace(l), ":"); ok {
			switch strings.ToLower(f) {
			case "final-recipient", "original-recipient", "x-actual-recipient", "failed recipient", "original-rcpt-to":
				add(typedValue(v), 2, true)
				continue
			}
		}
		if mm := reBracketAddr.FindStringSubmatch(l); mm != nil {
			add(mm[1], 2, true)
			continue
		}
		if mm := reAloneAddr.FindStringSubmatch(l); mm != nil {
			add(mm[1], 2, true)
			continue
		}
		if mm := reLeadAddr.FindStringSubmatch(l); mm != nil {
			add(mm[1], 2, true)
			continue
		}
		if mm := reLeadAddrLoose.FindStringSubmatch(l); mm != nil {
			add(mm[1], 2, false)
			continue
		}
		header := reHeaderLine.MatchString(l)
		if mm := reTrailAddr.FindStringSubmatch(l); mm != nil && !header {
			add(mm[1], 2, false)
			continue
		}
		found := false
		for _, mm := range rePhraseAddr.FindAllStringSubmatchIndex(l, 4) {
			if header || reSender.MatchString(l[:mm[0]]) {
				continue
			}
			if mm[2] >= 0 {
				add(l[mm[2]:mm[3]], 2, false)
			} else {
				add(l[mm[4]:mm[5]], 2, false)
			}
			found = true
		}
		if found {
			continue
		}
		for _, mm := range reRcptTo.FindAllStringSubmatch(l, 4) {
			add(mm[1], 1, false)
		}
	}
	// X-Failed-Recipients the text never mentions, while the text names
	// others: trust the text (the header is sometimes stale).
	if len(failed) > 0 {
		textual, mentioned := false, false
		for _, c := range cands {
			if c.tier >= 2 && c.tier < 4 && !failed[strings.ToLower(c.addr)] {
				textual = true
			}
			if c.tier == 4 && strings.Contains(lowNotice, strings.ToLower(c.addr)) {
				mentioned = true
			}
		}
		if textual && !mentioned {
			kept := cands[:0]
			for _, c := range cands {
				if c.tier != 4 {
					kept = append(kept, c)
				}
			}
			cands = kept
		}
	}
	return bestTier(cands)
}

// values returns every value of the named field.
func (h header) values(name string) []string {
	var out []string
	for _, f := range h {
		if strings.EqualFold(f.name, name) {
			out = append(out, f.value)
		}
	}
	return out
}

// bestTier keeps the candidates of the strongest kind found, in order,
// one per address (its first position; later ones add to its block).
func bestTier(cands []candidate) []candidate {
	best := 0
	for _, c := range cands {
		best = max(best, c.tier)
	}
	if best == 4 {
		// X-Failed-Recipients names them; text positions give the blocks.
		named := map[string]bool{}
		for _, c := range cands {
			if c.tier == 4 {
				named[strings.ToLower(c.addr)] = true
			}
		}
		var out []candidate
		for _, c := range cands {
			if c.tier == 4 || named[strings.ToLower(c.addr)] && c.tier >= 1 {
				out = append(out, c)
			}
		}
		return out
	}
	var out []candidate
	for _, c := range cands {
		if c.tier == best {
			out = append(out, c)
		}
	}
	return out
}

// mergeText adds r or appends its block to the same address's entry.
func mergeText(list []Recipient, r Recipient) []Recipient {
	for i := range list {
		if strings.EqualFold(list[i].Address, r.Address) {
			if r.Diagnostic != "" && !strings.Contains(list[i].Diagnostic, r.Diagnostic) {
				list[i].Diagnostic = clip(collapse(list[i].Diagnostic+" "+r.Diagnostic), maxDiagnostic)
			}
			return list
		}
	}
	return append(list, r)
}

// block joins lines[from:] up to the next candidate line or a limit,
// without the address itself when it is alone on its line.
func block(lines []string, from int, starts []int, addr string) string {
	end := min(len(lines), from+maxBlockLines)
	for _, s := range starts {
		if s > from && s < end {
			end = s
		}
	}
	first := lines[from]
	if reAloneAddr.MatchString(first) {
		first = ""
	}
	var b strings.Builder
	// A transcript names the command, and the server's answer to it, a
	// few lines before the recipient's line.
	isStart := func(i int) bool {
		for _, s := range starts {
			if s == i {
				return true
			}
		}
		return false
	}
	for i := from - 1; i >= max(0, from-8); i-- {
		t := strings.TrimSpace(lines[i])
		if t == "" || isStart(i) || strings.Contains(strings.ToLower(t), "while talking to") {
			break
		}
		if strings.HasPrefix(t, ">>> ") {
			for _, l := range lines[i:from] {
				b.WriteString(l)
				b.WriteByte(' ')
			}
			break
		}
	}
	b.WriteString(first)
	for _, l := range lines[from+1 : end] {
		b.WriteByte(' ')
		b.WriteString(l)
	}
	return clip(collapse(b.String()), maxDiagnostic)
}

// blockFor finds addr in the notice and returns the text after it.
func blockFor(lines []string, addr string, starts []int) string {
	la := strings.ToLower(addr)
	for i, l := range lines {
		if strings.Contains(strings.ToLower(l), la) {
			return block(lines, i, starts, addr)
		}
	}
	return ""
}

// excludedAddresses are addresses a notice mentions that are not failed
// recipients: its own sender and recipient, the original sender, daemons.
func excludedAddresses(m *message) map[string]bool {
	ex := map[string]bool{}
	add := func(v string) {
		for _, a := range reAddr.FindAllString(v, 8) {
			ex[strings.ToLower(cleanAddress(a))] = true
		}
	}
	add(m.hdr.get("From"))
	add(m.hdr.get("To"))
	add(m.hdr.get("Return-Path"))
	add(m.hdr.get("Reply-To"))
	add(m.hdr.get("Message-ID"))
	if m.original != nil {
		add(m.original.hdr.get("From"))
		add(m.original.hdr.get("Return-Path"))
		add(m.original.hdr.get("Message-ID"))
	}
	return ex
}

// cutOriginal splits the notice text at the start of the returned copy.
func cutOriginal(s string) (notice, rest string) {
	off := 0
	for off < len(s) {
		end := strings.IndexByte(s[off:], '\n')
		line := s[off:]
		if end >= 0 {
			line = s[off : off+end]
		}
		if off > 0 && len(line) < 120 && reSeparator.MatchString(line) && !reSepNot.MatchString(line) {
			return s[:off], s[off:]
		}
		// A returned header block with no separator before it.
		if off > 0 && reCopyStart.MatchString(line) && end >= 0 {
			next, _, _ := strings.Cut(s[off+end+1:], "\n")
			if reAnyHeader.MatchString(next) || strings.HasPrefix(next, " ") || strings.HasPrefix(next, "\t") {
				return s[:off], s[off:]
			}
		}
		if end < 0 {
			break
		}
		off += end + 1
	}
	return s, ""
}

var (
	reCopyStart = regexp.MustCompile(`(?i)^(?:received|return-path|dkim-signature|message-id|mime-version|x-[a-z0-9-]+):`)
	reAnyHeader = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]{1,40}:`)
)

var reCode = regexp.MustCompile(`\b[45]\d\d\b|\b[45]\.\d{1,3}\.\d{1,3}\b`)

func hasCode(s string) bool { return reCode.MatchString(s) }

// collapse turns runs of white space into one space.
func collapse(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

// isDaemon reports the addresses bounces come from, never recipients.
func isDaemon(la string) bool {
	local, _, _ := strings.Cut(la, "@")
	switch local {
	case "mailer-daemon", "mailer_daemon", "postmaster", "post_master", "mail-daemon", "maildaemon":
		return true
	}
	return false
}
