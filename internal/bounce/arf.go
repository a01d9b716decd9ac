package bounce

import (
	"net/mail"
	"regexp"
	"strings"
)

// parseARF reads an RFC 5965 feedback report (or Apple Mail's one-click
// unsubscribe message, which is an opt-out).
func parseARF(p *parser, m *message, rep *Report) {
	rep.Kind = KindARF
	rep.Format = "arf"
	fb := &Feedback{}
	rep.Feedback = fb
	var rcpts []string
	if m.feedback != nil {
		body, _ := toUTF8(m.feedback.params["charset"], m.feedback.body)
		for _, b := range fieldBlocks(body) {
			for _, f := range b {
				v := f.value
				switch strings.ToLower(f.name) {
				case "feedback-type":
					fb.Type = strings.ToLower(firstWord(v))
				case "user-agent":
					fb.UserAgent = v
				case "version":
					fb.Version = v
				case "original-mail-from":
					fb.OriginalMailFrom = cleanAddress(v)
				case "original-rcpt-to", "removal-recipient":
					if a := cleanAddress(v); a != "" {
						fb.OriginalRcptTo = append(fb.OriginalRcptTo, a)
						rcpts = append(rcpts, a)
					}
				case "arrival-date", "received-date":
					fb.ArrivalDate = v
				case "source-ip":
					fb.SourceIP = v
				case "reported-domain":
					if fb.ReportedDomain == "" {
						fb.ReportedDomain = v
					}
				case "reported-uri":
					if len(fb.ReportedURI) < 20 {
						fb.ReportedURI = append(fb.ReportedURI, v)
					}
				case "authentication-results":
					fb.AuthenticationResults = v
				case "incidents":
					fb.Incidents = v
				}
			}
		}
	} else if strings.EqualFold(m.hdr.get("X-Apple-Unsubscribe"), "true") {
		fb.Type = "opt-out"
		rep.Format = "apple-unsubscribe"
		if a := firstAddress(m.hdr.get("From")); a != "" {
			rcpts = append(rcpts, a)
		}
	}
	if fb.Type == "" {
		fb.Type = "abuse"
		p.warn("feedback report without Feedback-Type; abuse assumed")
	}
	if len(rcpts) == 0 && m.original != nil {
		for _, a := range addressList(m.original.hdr.get("To")) {
			rcpts = append(rcpts, a)
		}
	}
	seen := map[string]bool{}
	for _, a := range rcpts {
		if !validAddress(a) || seen[strings.ToLower(a)] || len(rep.Recipients) >= maxRecipients {
			continue
		}
		seen[strings.ToLower(a)] = true
		rep.Recipients = append(rep.Recipients, Recipient{Address: a})
	}
}

// addressList returns the addr-specs of an address-list header,
// falling back to a pattern scan when net/mail refuses it.
func addressList(v string) []string {
	if strings.TrimSpace(v) == "" {
		return nil
	}
	var out []string
	if list, err := mail.ParseAddressList(v); err == nil {
		for _, a := range list {
			out = append(out, cleanAddress(a.Address))
		}
		return out
	}
	for _, a := range reAddr.FindAllString(v, 50) {
		out = append(out, cleanAddress(a))
	}
	return out
}

func firstAddress(v string) string {
	if l := addressList(v); len(l) > 0 {
		return l[0]
	}
	return ""
}

var (
	reAutoSubject = regexp.MustCompile(`(?i)^(?:auto(?:matic)?[ -]?(?:reply|response|antwort)|auto:|out of (?:the )?office|away from|on vacation|vacation|` +
		`abwesenheit|r[ée]ponse automatique|absence|autoreply|autosvar|automaattinen|risposta automatica|respuesta autom[aá]tica|away until|` +
		`i am (?:out|away)|i'm (?:out|away)|\[auto)`)
	reBounceSubject = regexp.MustCompile(`(?i)undeliver|undelivered|returned mail|delivery (?:status notification|failure|failed|problem|notification|report|has failed|incomplete)|` +
		`failure notice|mail delivery failed|delivery error|could not (?:be )?deliver|non[- ]?delivery|not delivered|mail system error|` +
		`returned to sender|rejected|bounce|warning: (?:could not|message)|delayed mail|mail failure|message (?:not delivered|delivery)|` +
		`delivery unsuccessful|unzustellbar|nicht zustellbar|erreur|error|failed|failure|permanent|unable to deliver|problem delivering|` +
		`message status|notice|deliverability|postmaster|delay`)
	reDaemon = regexp.MustCompile(`(?i)mailer[-_]?daemon|post_?master|mail delivery|mail administrator|mail ?system|mmdf|smtp gateway|` +
		`no-?reply|bounce|devnull|mailer@|mail-?daemon|system administrator|mail server|delivery subsystem|mail robot`)
	reBounceBody = regexp.MustCompile(`(?i)could not be delivered|couldn't be delivered|wasn't delivered|was not delivered|undeliverable|` +
		`delivery (?:has )?failed|permanent (?:fatal )?error|delivery to the following recipient|i'm afraid i wasn't able to deliver|` +
		`unable to deliver|not able to be delivered|failed permanently|did not reach the following|following address(?:es)? failed|` +
		`following addresses had|rejected by|has been delayed|will be retried|giving up|returned mail|delivery status notification|` +
		`could not deliver|message could not be sent|delivery failure|not be delivered|user unknown|mailbox (?:is )?full|` +
		`no such user|not delivered|failed to deliver|delivery problem|invalid user|error message below`)
)

// isAutoReply reports RFC 3834 and the common vacation markers.
func isAutoReply(h header) bool {
	as := strings.ToLower(h.get("Auto-Submitted"))
	switch {
	case strings.HasPrefix(as, "auto-replied"), h.has("X-Autoreply"), h.has("X-Autorespond"), h.has("X-Autoresponder"),
		strings.EqualFold(strings.TrimSpace(h.get("Precedence")), "auto_reply"),
		strings.Contains(strings.ToLower(h.get("X-Auto-Response-Suppress")), "all") && reAutoSubject.MatchString(h.get("Subject")),
		reAutoSubject.MatchString(h.get("Subject")):
		return true
	}
	return false
}

// autoReply reports an automatic reply; its author is the recipient.
func autoReply(m *message, rep *Report) {
	rep.Kind = KindAutoReply
	rep.Format = "rfc3834"
	rep.Recipients = nil
	a := firstAddress(m.hdr.get("From"))
	if a == "" {
		a = firstAddress(m.hdr.get("Reply-To"))
	}
	if validAddress(a) {
		rep.Recipients = []Recipient{{Address: a, Diagnostic: m.hdr.get("Subject")}}
	}
}

// looksLikeBounce reports the signs of a non-standard bounce: who sent
// it, its subject, its body, X-Failed-Recipients.
func looksLikeBounce(m *message) bool {
	if strongBounce(m) {
		return true
	}
	from := m.hdr.get("From")
	subj := m.hdr.get("Subject")
	daemon := reDaemon.MatchString(from) || strings.TrimSpace(m.hdr.get("Return-Path")) == "<>"
	subject := reBounceSubject.MatchString(subj) && !reAutoSubject.MatchString(subj)
	notice, _ := cutOriginal(m.notice)
	body := reBounceBody.MatchString(clip(notice, 64<<10))
	return daemon && (subject || body) || subject && body
}

// strongBounce: markers only a bounce carries.
func strongBounce(m *message) bool {
	return m.hdr.has("X-Failed-Recipients") || strings.EqualFold(m.root.params["report-type"], "delivery-status") ||
		m.hdr.has("X-Mailer-Daemon-Error")
}
