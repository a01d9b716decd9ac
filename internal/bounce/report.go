package bounce

import (
	"bytes"
	"errors"
	"regexp"
	"strings"

	"github.com/posthorn/posthorn/internal/classify"
)

// Kind says what a message is.
type Kind string

const (
	KindDSN       Kind = "dsn"        // a delivery status notification, standard or not
	KindARF       Kind = "arf"        // a feedback (complaint) report
	KindAutoReply Kind = "auto_reply" // a vacation or other automatic reply: not a bounce
	KindNotBounce Kind = "not_bounce" // anything else
)

// Report is what Parse found in one message.
type Report struct {
	Kind Kind `json:"kind"`
	// Format names the layout that was recognised: "rfc3464", "rfc6533",
	// "text" (a non-standard notice read with patterns), "arf", "rfc3834".
	Format string `json:"format,omitempty"`
	// ReportingMTA and OriginalEnvelopeID are the DSN's per-message fields.
	ReportingMTA       string `json:"reporting_mta,omitempty"`
	OriginalEnvelopeID string `json:"original_envelope_id,omitempty"`
	// Recipients are the failed (or delayed, delivered...) recipients of a
	// DSN, the complained-about recipients of an ARF report, or the author
	// of an automatic reply.
	Recipients []Recipient `json:"recipients,omitempty"`
	// Feedback is set for ARF reports.
	Feedback *Feedback `json:"feedback,omitempty"`
	// Original identifies the message that bounced or was complained about.
	Original Original `json:"original"`
	// Notice is the bounce message's own header: who sent it, to whom (the
	// VERP return path posthorn set is normally its To), its subject.
	Notice Notice `json:"notice"`
	// Warnings lists what could not be read (a part that did not decode, a
	// truncated message); the rest of the report is still valid.
	Warnings []string `json:"warnings,omitempty"`
}

// Recipient is one recipient's result.
type Recipient struct {
	Address string `json:"address"`
	// OriginalRecipient is the DSN's Original-Recipient when it differs.
	OriginalRecipient string `json:"original_recipient,omitempty"`
	Action            string `json:"action,omitempty"`     // failed, delayed, delivered, relayed, expanded
	Status            string `json:"status,omitempty"`     // RFC 3463 code, e.g. 5.1.1
	ReplyCode         int    `json:"reply_code,omitempty"` // SMTP reply code, 0 when none was given
	Diagnostic        string `json:"diagnostic,omitempty"` // the remote server's text or the notice's explanation
	RemoteMTA         string `json:"remote_mta,omitempty"`
	Command           string `json:"command,omitempty"` // SMTP command the failure answered: MAIL, RCPT, DATA...
	// Reason is this package's finer reason (see the Reason constants).
	Reason Reason `json:"reason,omitempty"`
	// Class is the delivery class (classify vocabulary). For a complaint or
	// an automatic reply it is empty.
	Class classify.Class `json:"class,omitempty"`
	// Hard is true when the address itself failed permanently and should
	// be suppressed.
	Hard bool `json:"hard"`

	viaFilter bool // the notice came from a filtering gateway
}

// Feedback holds an ARF report's fields.
type Feedback struct {
	Type                  string   `json:"type"` // abuse, fraud, virus, other, not-spam, opt-out, auth-failure...
	UserAgent             string   `json:"user_agent,omitempty"`
	Version               string   `json:"version,omitempty"`
	OriginalMailFrom      string   `json:"original_mail_from,omitempty"`
	OriginalRcptTo        []string `json:"original_rcpt_to,omitempty"`
	ArrivalDate           string   `json:"arrival_date,omitempty"`
	SourceIP              string   `json:"source_ip,omitempty"`
	ReportedDomain        string   `json:"reported_domain,omitempty"`
	ReportedURI           []string `json:"reported_uri,omitempty"`
	AuthenticationResults string   `json:"authentication_results,omitempty"`
	Incidents             string   `json:"incidents,omitempty"`
}

// Original identifies the returned message, from its returned copy or
// headers (or, for ARF, the report's Original-* fields).
type Original struct {
	MessageID  string `json:"message_id,omitempty"`
	ReturnPath string `json:"return_path,omitempty"` // the envelope sender: posthorn's VERP address
	From       string `json:"from,omitempty"`
	To         string `json:"to,omitempty"`
	Subject    string `json:"subject,omitempty"`
	Date       string `json:"date,omitempty"`
	// Posthorn holds the X-Posthorn-* headers, keyed by canonical name.
	Posthorn map[string]string `json:"posthorn,omitempty"`
}

// Notice is the bounce's own header.
type Notice struct {
	From      string `json:"from,omitempty"`
	To        string `json:"to,omitempty"`
	Subject   string `json:"subject,omitempty"`
	MessageID string `json:"message_id,omitempty"`
	// DeliveredTo is the envelope recipient the receiving MTA recorded
	// (Delivered-To, X-Original-To, Envelope-To): the return path.
	DeliveredTo string `json:"delivered_to,omitempty"`
}

// ErrEmpty is returned for an empty input.
var ErrEmpty = errors.New("bounce: empty message")

// Parse reads one email and reports what it is. It never panics and does
// bounded work; it returns an error only for an empty input. Parts that do
// not decode are skipped and noted in Warnings.
func Parse(raw []byte) (*Report, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, ErrEmpty
	}
	p := &parser{}
	if len(raw) > MaxMessageSize {
		raw = raw[:MaxMessageSize]
		p.warn("message truncated to the first 4 MiB")
	}
	raw = normalizeEOL(raw)
	root := p.parseEntity(raw, 0, "text/plain")
	rep := analyze(p, root, 0)
	for i := range rep.Recipients {
		finish(&rep.Recipients[i], rep.Kind)
	}
	rep.Warnings = append(rep.Warnings, p.warnings...)
	return rep, nil
}

// analyze recognises one message. A notice that names nobody but carries
// another bounce (a forwarded or re-bounced DSN) is read through that one.
func analyze(p *parser, root *part, depth int) *Report {
	m := collect(root)
	rep := &Report{Kind: KindNotBounce}
	rep.Notice = Notice{
		From:      root.hdr.get("From"),
		To:        root.hdr.get("To"),
		Subject:   root.hdr.get("Subject"),
		MessageID: strings.Trim(root.hdr.get("Message-ID"), "<> "),
	}
	for _, name := range []string{"Delivered-To", "X-Original-To", "Envelope-To"} {
		if v := root.hdr.get(name); v != "" {
			rep.Notice.DeliveredTo = v
			break
		}
	}
	switch {
	case parseSES(m, rep):
	case m.feedback != nil || strings.EqualFold(root.params["report-type"], "feedback-report") ||
		strings.EqualFold(root.hdr.get("X-Apple-Unsubscribe"), "true"):
		parseARF(p, m, rep)
	case m.status != nil:
		parseDSN(p, m, rep)
		if len(rep.Recipients) == 0 {
			parseText(m, rep)
		}
	case looksLikeBounce(m):
		parseText(m, rep)
		if len(rep.Recipients) == 0 && !strongBounce(m) && isAutoReply(root.hdr) {
			autoReply(m, rep)
		}
	case isAutoReply(root.hdr):
		autoReply(m, rep)
	}
	fillOriginal(m, rep)
	if rep.Kind == KindDSN && filteringGateway(root.hdr) {
		for i := range rep.Recipients {
			rep.Recipients[i].viaFilter = true
		}
	}
	if rep.Kind == KindDSN && len(rep.Recipients) == 0 && depth < 2 {
		if inner := embeddedBounce(p, m); inner != nil {
			sub := analyze(p, inner, depth+1)
			if sub.Kind == KindDSN && len(sub.Recipients) > 0 {
				sub.Notice = rep.Notice
				return sub
			}
		}
	}
	return rep
}

var reEmbeddedReport = regexp.MustCompile(`(?im)^content-type:\s*multipart/report`)

// embeddedBounce returns a bounce carried inside this one: the returned
// message when it is a report, or a report quoted as text.
func embeddedBounce(p *parser, m *message) *part {
	if o := m.original; o != nil && isReport(o) {
		return o
	}
	loc := reEmbeddedReport.FindStringIndex(m.notice)
	if loc == nil {
		return nil
	}
	// Walk back to the start of the header block holding that field.
	lines := strings.Split(m.notice[:loc[0]], "\n")
	start := len(lines) - 1
	for start > 0 {
		l := lines[start-1]
		if l == "" || !(reAnyHeader.MatchString(l) || strings.HasPrefix(l, " ") || strings.HasPrefix(l, "\t") || strings.HasPrefix(l, "From ")) {
			break
		}
		start--
	}
	text := strings.Join(lines[start:], "\n") + m.notice[loc[0]:]
	return p.parseEntity([]byte(text), 1, "text/plain")
}

// message is the parsed tree reduced to what the recognisers need.
type message struct {
	root     *part
	hdr      header
	status   *part   // message/delivery-status or message/global-delivery-status
	feedback *part   // message/feedback-report
	original *part   // the returned message or its headers (the embedded entity)
	texts    []*part // text parts of the notice, in order, outside the returned message
	notice   string  // the notice text: the text parts joined, returned copy cut off
}

// collect walks the tree once. Returned messages are not searched for
// reports or notice text: they are the original mail, not the bounce.
func collect(root *part) *message {
	m := &message{root: root, hdr: root.hdr}
	var html []*part
	root.walk(func(pt *part) bool {
		switch mt := pt.mediaType; {
		case mt == "message/delivery-status" || mt == "message/global-delivery-status":
			if m.status == nil {
				m.status = pt
			}
			return false
		case mt == "message/feedback-report":
			if m.feedback == nil {
				m.feedback = pt
			}
			return false
		case isMessageType(mt):
			if m.original == nil && len(pt.children) > 0 {
				m.original = pt.children[0]
			}
			return false
		case mt == "text/html":
			if !isAttachment(pt) {
				html = append(html, pt)
			}
		case strings.HasPrefix(mt, "text/") && mt != "text/rfc822-headers":
			if !isAttachment(pt) || pt == root {
				m.texts = append(m.texts, pt)
			}
		}
		return true
	})
	if len(m.texts) == 0 {
		m.texts = html
	}
	var b strings.Builder
	for _, t := range m.texts {
		if b.Len() > 0 {
			b.WriteString("\n")
		}
		b.WriteString(t.text())
		if b.Len() > 1<<20 {
			break
		}
	}
	m.notice = unquote(b.String())
	if m.status == nil {
		// Delivery-status fields written into the text (no MIME part).
		if loc := reInlineDSN.FindStringIndex(m.notice); loc != nil {
			m.status = &part{mediaType: "message/delivery-status", params: map[string]string{}, body: []byte(m.notice[loc[0]:])}
		}
	}
	return m
}

var reInlineDSN = regexp.MustCompile(`(?im)^(?:reporting-mta:.*\n(?:.+\n)*?\s*\n?)?(?:final|original)-recipient:[ \t]*rfc822;`)

func isAttachment(pt *part) bool {
	return strings.HasPrefix(strings.ToLower(pt.hdr.get("Content-Disposition")), "attachment")
}

// isReport reports whether an embedded message is itself a bounce.
func isReport(o *part) bool {
	return o.mediaType == "multipart/report" || reDaemon.MatchString(o.hdr.get("From"))
}

// unquote removes one level of "> " quoting from a notice that is mostly
// quoted (a bounce forwarded by a person).
func unquote(s string) string {
	lines := strings.Split(s, "\n")
	quoted, text := 0, 0
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		text++
		if strings.HasPrefix(l, ">") {
			quoted++
		}
	}
	if text < 5 || quoted*2 < text {
		return s
	}
	for i, l := range lines {
		if strings.HasPrefix(l, ">") {
			l = strings.TrimPrefix(l[1:], " ")
		}
		lines[i] = l
	}
	return strings.Join(lines, "\n")
}
