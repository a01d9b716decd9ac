package classify

import (
	"regexp"
	"strconv"
	"strings"

	"github.com/posthorn/posthorn/internal/smtpproto"
)

// Result is the outcome of classifying one reply: the class and the rule
// that gave it.
type Result struct {
	Class Class `json:"class"`
	// Rule is the name of the rule that matched ("fallback" when none did,
	// which only happens with a replacing rules file without a catch-all).
	Rule string `json:"rule"`
	// Source is where the rule came from: "builtin" or a file path.
	Source string `json:"source"`
	// Pattern is the text expression that matched, if the rule has any.
	Pattern  string `json:"pattern,omitempty"`
	Provider string `json:"provider,omitempty"`
	Note     string `json:"note,omitempty"`
	// Enhanced is the enhanced status code the rules saw; Inferred is set
	// when it was found in the text rather than given by the reply.
	Enhanced string `json:"enhanced,omitempty"`
	Inferred bool   `json:"enhanced_inferred,omitempty"`
	// EscalateAfter is the rule's escalate_after; Escalated is set when
	// ClassifyAttempt applied it.
	EscalateAfter int  `json:"escalate_after,omitempty"`
	Escalated     bool `json:"escalated,omitempty"`
}

// Classify returns the class of reply r received in phase, and the rule
// that decided it. Rules are tried in order; the first that matches wins.
func (c *Classifier) Classify(phase string, r smtpproto.Reply) Result {
	in := prepare(phase, r)
	for _, ru := range c.rules {
		if pat, ok := ru.match(&in); ok {
			return Result{
				Class: ru.Class, Rule: ru.Name, Source: ru.Source, Pattern: pat,
				Provider: ru.Provider, Note: ru.Note,
				Enhanced: in.enhanced, Inferred: in.inferred,
				EscalateAfter: ru.EscalateAfter,
			}
		}
	}
	return Result{Class: fallback(&in), Rule: "fallback", Source: BuiltinSource, Enhanced: in.enhanced, Inferred: in.inferred}
}

// ClassifyAttempt is Classify for the attempt-th attempt (1-based) of a
// delivery. When the matching rule has escalate_after = N and attempt >=
// N, the class is the rule's escalate_to (hard_bounce by default) and
// Escalated is set. This is how a 4xx reply that names the recipient as
// unknown becomes a hard bounce after the server kept saying so: one such
// reply may be a directory hiccup, N of them over hours are not. Callers
// that count only the attempts with this kind of reply escalate later and
// more surely; the delivery's plain attempt count is the simple choice.
func (c *Classifier) ClassifyAttempt(phase string, r smtpproto.Reply, attempt int) Result {
	res := c.Classify(phase, r)
	if res.EscalateAfter > 0 && attempt >= res.EscalateAfter {
		for _, ru := range c.rules {
			if ru.Name == res.Rule {
				res.Class, res.Escalated = ru.EscalateTo, true
				break
			}
		}
	}
	return res
}

// maxText bounds the text the rules look at; SMTP lines are at most 512
// bytes, so only a pathological reply is cut.
const maxText = 16 << 10

// input is a reply prepared for matching.
type input struct {
	phase    string
	code     int
	codeStr  string
	enh      [3]string // class, subject, detail; empty when none
	enhanced string
	inferred bool
	text     string
	folded   string // foldText(text), for the prefilters
}

var (
	// An enhanced status code inside the text: "(#5.1.1 - chkusr)",
	// "550 550 5.1.1 user unknown", "RCPT TO not accepted: 5.7.1 ...".
	// The subject is one digit (RFC 3463 defines 0-7), so Yahoo's
	// "4.16.50" and dotted numbers ("4.16.55.1") are not taken.
	enhancedInText = regexp.MustCompile(`(?:^|[\s(#\[])([245])\.([0-9])\.([0-9]{1,3})(?:$|[\s),;:\]]|\.(?:\s|$))`)
	// Mail addresses, masked so that local parts like "spam@" or
	// "mailboxfull@" cannot trigger rules.
	addressInText = regexp.MustCompile(`[^\s<>"'(),;:\[\]]+@[^\s<>"'(),;:\[\]]+`)
)

func prepare(phase string, r smtpproto.Reply) input {
	in := input{phase: normPhase(phase), code: r.Code}
	if r.Code >= 100 && r.Code <= 999 {
		in.codeStr = strconv.Itoa(r.Code)
	}
	text := r.Text
	if len(text) > maxText {
		text = text[:maxText]
	}
	in.text = strings.Join(strings.Fields(addressInText.ReplaceAllString(text, "x@x")), " ")
	in.folded = foldText(in.text)

	enh := strings.TrimSpace(r.Enhanced)
	if enh != "" && !smtpproto.ValidEnhanced(enh) {
		enh = ""
	}
	if enh == "" && r.Code >= 400 && r.Code < 600 {
		if m := enhancedInText.FindStringSubmatch(text); m != nil {
			enh, in.inferred = m[1]+"."+m[2]+"."+m[3], true
		}
	}
	if enh != "" {
		parts := strings.Split(enh, ".")
		for i := range parts {
			if i > 0 {
				parts[i] = strings.TrimLeft(parts[i], "0")
				if parts[i] == "" {
					parts[i] = "0"
				}
			}
		}
		// The reply code decides permanence; the enhanced code's subject
		// and detail say what kind of failure it is ("552 4.2.2" is a
		// permanent mailbox-full).
		if d := r.Code / 100; (d == 4 || d == 5) && parts[0] != strconv.Itoa(d) {
			parts[0] = strconv.Itoa(d)
		}
		in.enh = [3]string{parts[0], parts[1], parts[2]}
		in.enhanced = strings.Join(parts, ".")
	}
	return in
}

// normPhase lower-cases a phase name and maps the spellings in use to the
// ones the rules know.
func normPhase(p string) string {
	p = strings.ToLower(strings.TrimSpace(p))
	p = strings.NewReplacer("_", "-", " ", "-").Replace(p)
	switch p {
	case "helo", "lhlo":
		return "ehlo"
	case "greeting", "banner", "connection":
		return "connect"
	case "mail-from", "mailfrom":
		return "mail"
	case "rcpt-to", "rcptto":
		return "rcpt"
	case "dataend", "end-of-data", "eod", "body":
		return "data-end"
	case "tls":
		return "starttls"
	}
	return p
}

// compatible keeps rules from giving absurd answers: a 2xx is only ever
// delivered, delivered needs a 2xx, and a permanent class needs a 5xx (a
// 4xx reply never ends a delivery by itself).
func compatible(c Class, code int) bool {
	switch {
	case code >= 200 && code < 300:
		return c == Delivered
	case c == Delivered:
		return false
	case c.Permanent():
		return code >= 500 && code < 600
	}
	return true
}

func (r *rule) match(in *input) (string, bool) {
	if !compatible(r.Class, in.code) {
		return "", false
	}
	if len(r.codes) > 0 && !codeIn(in.codeStr, r.codes) {
		return "", false
	}
	if len(r.phases) > 0 && !phaseIn(in.phase, r.phases) {
		return "", false
	}
	if phaseIn(in.phase, r.notPhases) {
		return "", false
	}
	if len(r.enh) > 0 && !enhIn(in.enh, r.enh) {
		return "", false
	}
	if enhIn(in.enh, r.notEnh) {
		return "", false
	}
	pat, ok := "", len(r.text) == 0
	for i := range r.text {
		if r.text[i].match(in.text, in.folded) {
			pat, ok = r.text[i].src, true
			break
		}
	}
	if !ok {
		return "", false
	}
	for i := range r.notText {
		if r.notText[i].match(in.text, in.folded) {
			return "", false
		}
	}
	return pat, true
}

func codeIn(code string, pats []string) bool {
	if code == "" {
		return false
	}
	for _, p := range pats {
		if (p[0] == code[0]) && (p[1] == 'x' || p[1] == code[1]) && (p[2] == 'x' || p[2] == code[2]) {
			return true
		}
	}
	return false
}

// phaseIn reports whether phase is in list; "data" in a list also covers
// "data-end" (the reply after the message body).
func phaseIn(phase string, list []string) bool {
	for _, p := range list {
		if p == phase || p == "data" && phase == "data-end" {
			return true
		}
	}
	return false
}

func enhIn(e [3]string, pats [][3]string) bool {
	if e[0] == "" {
		return false
	}
	for _, p := range pats {
		if (p[0] == "*" || p[0] == e[0]) && (p[1] == "*" || p[1] == e[1]) && (p[2] == "*" || p[2] == e[2]) {
			return true
		}
	}
	return false
}

// fallback classifies by code alone when no rule matched (only possible
// with a replacing rules file that has no catch-all).
func fallback(in *input) Class {
	switch {
	case in.code >= 200 && in.code < 300:
		return Delivered
	case in.code == 421:
		return RateLimited
	case in.code >= 400 && in.code < 500:
		return Deferred
	case in.code >= 500 && in.code < 600 && in.enh[1] == "7":
		return PolicyBlock
	case in.code >= 500 && in.code < 600:
		return HardBounce
	}
	return ProtocolError
}
