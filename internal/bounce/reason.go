package bounce

import (
	"regexp"
	"strconv"
	"strings"

	"github.com/posthorn/posthorn/internal/classify"
	"github.com/posthorn/posthorn/internal/smtpproto"
)

// Reason is why a recipient failed, finer than a class.
type Reason string

const (
	ReasonUserUnknown Reason = "user_unknown"  // the mailbox does not exist
	ReasonHostUnknown Reason = "host_unknown"  // the domain does not exist
	ReasonNotAccept   Reason = "not_accept"    // the domain accepts no mail (null MX)
	ReasonHasMoved    Reason = "has_moved"     // the mailbox moved, no forwarding
	ReasonMailboxFull Reason = "mailbox_full"  // over quota
	ReasonSuspended   Reason = "suspended"     // the account is disabled or locked
	ReasonTooBig      Reason = "too_big"       // the message is too large
	ReasonFiltered    Reason = "filtered"      // refused after DATA for a reason that may not be the address
	ReasonRateLimited Reason = "rate_limited"  // too many connections, messages or recipients
	ReasonAuthFailure Reason = "auth_failure"  // SPF, DKIM or DMARC
	ReasonRequirePTR  Reason = "require_ptr"   // no or bad reverse DNS for the sending IP
	ReasonRelay       Reason = "relay_denied"  // relaying refused, unverified sender identity
	ReasonSecurity    Reason = "security"      // authentication or TLS required
	ReasonVirus       Reason = "virus"         // a virus was found
	ReasonSpam        Reason = "spam"          // the content was taken for spam
	ReasonPolicy      Reason = "policy"        // other content or protocol policy
	ReasonBlocked     Reason = "blocked"       // the sending IP, host or sender is refused
	ReasonExpired     Reason = "expired"       // the sending MTA gave up retrying
	ReasonNetwork     Reason = "network_error" // DNS or connection failures, loops
	ReasonSystem      Reason = "system_error"  // the remote system failed
	ReasonMailer      Reason = "mailer_error"  // a local delivery program failed
	ReasonSyntax      Reason = "syntax_error"  // an SMTP syntax or sequence error
	ReasonOnHold      Reason = "on_hold"       // the remote side holds the message; no verdict yet
	ReasonDelivered   Reason = "delivered"     // a success notice
	ReasonUndefined   Reason = "undefined"     // nothing recognisable
)

var (
	reReplyEnh  = regexp.MustCompile(`(?:^|[^\d.\-:/])([245]\d\d)(?:[ \-:]+|\s*)['"]?([245]\.\d{1,3}\.\d{1,3})\b`)
	reReplyOnly = regexp.MustCompile(`(?:^|[\s:;'"(\[<>#=])([245][0-5]\d)(?:[ \-:'\]]|$)`)
	reCommand   = regexp.MustCompile(`(?i)in reply to (?:the )?(end of data|rcpt to|mail from|data|helo|ehlo|quit|connect)|` +
		`after (?:the )?(end of data|rcpt to|mail from|data|helo|ehlo|initial connection|quit|rcpt|mail)|` +
		`>>> (rcpt|mail|data|helo|ehlo|quit)|<<< (rcpt|mail|data)|\[(rcpt_to|mail_from|data)\]|(?:our|the) (rcpt to|mail from|final data)|` +
		`while performing the (helo|ehlo)|refused to (talk) to me|failed after i sent the (message)|\((data|rcpt to|mail from)\)|` +
		`error following (rcpt|mail|data)|does not like (recipient)|(sender) was rejected|my (name) was rejected|for (text) command|` +
		`smtp:(rcpt|mail|data)\b|smtp command (rcpt|mail|data)|most progress was (rcpt to|mail from|data)`)
)

// finish fills the codes the report left out, the reason, class and the
// hard decision.
func finish(r *Recipient, kind Kind) {
	r.Diagnostic = clip(collapse(r.Diagnostic), maxDiagnostic)
	if kind != KindDSN {
		return
	}
	d := r.Diagnostic
	code, enh := extractCodes(d)
	if r.ReplyCode == 0 {
		r.ReplyCode = code
	}
	if enh != "" && (r.Status == "" || strings.HasSuffix(r.Status, ".0.0") && enh[0] == r.Status[0]) {
		r.Status = enh
	}
	if r.Status == "" && r.ReplyCode >= 400 {
		r.Status = strconv.Itoa(r.ReplyCode/100) + ".0.0"
	}
	if r.Status == "" {
		r.Status = inferStatus(r)
	}
	if r.Command == "" {
		r.Command = extractCommand(d)
	}
	r.Reason = reasonOf(r)
	r.Class = classOf(r)
	r.Hard = r.Class == classify.HardBounce
}

// extractCodes finds the SMTP reply code and the enhanced status code in
// a diagnostic text.
func extractCodes(d string) (int, string) {
	// The first failure code wins over a success earlier in a transcript.
	var ok []string
	for _, m := range reReplyEnh.FindAllStringSubmatch(d, 20) {
		if m[1][0] != m[2][0] {
			continue
		}
		if m[1][0] != '2' {
			c, _ := strconv.Atoi(m[1])
			return c, m[2]
		}
		if ok == nil {
			ok = m
		}
	}
	code := 0
	for _, m := range reReplyOnly.FindAllStringSubmatch(d, 20) {
		if m[1][0] != '2' {
			code, _ = strconv.Atoi(m[1])
			break
		}
	}
	if code == 0 && ok != nil {
		c, _ := strconv.Atoi(ok[1])
		return c, ok[2]
	}
	enh := findStatus(d)
	if code != 0 && enh != "" && enh[0] != byte('0'+code/100) {
		enh = ""
	}
	return code, enh
}

func extractCommand(d string) string {
	m := reCommand.FindStringSubmatch(d)
	if m == nil {
		return ""
	}
	var v string
	for _, s := range m[1:] {
		if s != "" {
			v = strings.ToLower(s)
			break
		}
	}
	switch {
	case strings.Contains(v, "rcpt"), v == "recipient":
		return "RCPT"
	case strings.Contains(v, "mail"), v == "sender":
		return "MAIL"
	case strings.Contains(v, "data"), v == "message", v == "text":
		return "DATA"
	case v == "helo" || v == "ehlo" || v == "talk" || v == "initial connection" || v == "connect" || v == "name":
		return "CONN"
	case v == "quit":
		return "QUIT"
	}
	return ""
}

// reasonOf decides the reason from the text first, then the codes.
func reasonOf(r *Recipient) Reason {
	switch r.Action {
	case "delivered", "relayed", "expanded":
		return ReasonDelivered
	}
	if strings.HasPrefix(r.Status, "2.") || r.ReplyCode >= 200 && r.ReplyCode < 300 && r.Status == "" {
		return ReasonDelivered
	}
	text := strings.ToLower(r.Diagnostic)
	reason := ReasonUndefined
	for _, ru := range rules {
		if ru.re.MatchString(text) {
			reason = ru.reason
			break
		}
	}
	if reason == ReasonUndefined {
		reason = reasonOfStatus(r.Status)
	}
	if reason == ReasonUndefined {
		for _, ru := range weakRules {
			if ru.re.MatchString(text) {
				reason = ru.reason
				break
			}
		}
	}
	switch {
	case reason == ReasonUserUnknown && userUnknownIsFilter(r, text):
		reason = ReasonFiltered
	case r.Command == "MAIL" && (reason == ReasonUserUnknown || reason == ReasonHostUnknown || reason == ReasonFiltered ||
		reason == ReasonUndefined || reason == ReasonNotAccept || reason == ReasonSuspended || reason == ReasonHasMoved):
		// Refused at MAIL FROM: about the sender, not the recipient.
		reason = ReasonBlocked
	case r.Command == "CONN" && reason == ReasonUndefined && (r.ReplyCode >= 500 || strings.HasPrefix(r.Status, "5.")):
		reason = ReasonBlocked
	}
	return reason
}

var reEmptyUserUnknown = regexp.MustCompile(`(?i)\b550:? : user unknown`)

var reFilterGateway = regexp.MustCompile(`(?i)mcafee|surfcontrol|mxlogic|active!?hunter`)

// filteringGateway reports a notice written by a content-filtering
// gateway (McAfee, SurfControl, MXLogic, Active!hunter...). Such a relay
// reports what the server behind it said, often after the message was
// accepted, so its "user unknown" is weaker evidence.
func filteringGateway(h header) bool {
	if h.has("X-NAI-Header") || h.has("X-AHMAILID") || h.has("X-SEF-Processed") {
		return true
	}
	return reFilterGateway.MatchString(h.get("X-Mailer")) || reFilterGateway.MatchString(h.get("From"))
}

// userUnknownIsFilter tells a "user unknown" that may not be about the
// address: given after the message was sent with no address status (a
// content filter's answer), with a mailbox or policy status (x.2.x,
// x.7.x) outside RCPT, relayed by a filtering gateway without an address
// status, or the empty-address form Japanese carriers use for their
// domain filters ("550 : User unknown").
func userUnknownIsFilter(r *Recipient, text string) bool {
	sub := ""
	if len(r.Status) > 2 {
		sub = r.Status[1:]
	}
	switch {
	case reEmptyUserUnknown.MatchString(text):
		return true
	case r.viaFilter && r.Command != "RCPT" && !strings.HasPrefix(sub, ".1."):
		return true
	case userUnknownStrong.MatchString(text):
		return false
	case r.Command == "DATA" && !strings.HasPrefix(sub, ".1."):
		return true
	case (strings.HasPrefix(sub, ".2.") || strings.HasPrefix(sub, ".7.")) && r.Command != "RCPT":
		// A mailbox or policy status with "user unknown" outside RCPT.
		return true
	}
	return false
}

// reasonOfStatus maps an RFC 3463 code (RFC 3463 and the IANA registry).
func reasonOfStatus(s string) Reason {
	if len(s) < 5 {
		return ReasonUndefined
	}
	switch sub := s[2:]; {
	case sub == "1.1" || sub == "1.0" || sub == "1.3" || sub == "2.1" && s[0] == '5':
		return ReasonUserUnknown
	case sub == "1.2":
		return ReasonHostUnknown
	case sub == "1.6":
		return ReasonHasMoved
	case sub == "1.10":
		return ReasonNotAccept
	case sub == "1.7" || sub == "1.8":
		return ReasonBlocked
	case sub == "2.2":
		return ReasonMailboxFull
	case sub == "2.3" || sub == "3.4":
		return ReasonTooBig
	case sub == "2.1":
		return ReasonSuspended
	case strings.HasPrefix(sub, "3."):
		return ReasonSystem
	case sub == "4.7":
		return ReasonExpired
	case strings.HasPrefix(sub, "4."):
		return ReasonNetwork
	case strings.HasPrefix(sub, "5."):
		return ReasonSyntax
	case strings.HasPrefix(sub, "6."):
		return ReasonPolicy
	case sub == "7.1":
		return ReasonBlocked
	case sub == "7.25" || sub == "7.7":
		return ReasonRequirePTR
	case sub == "7.26" || sub == "7.27" || sub == "7.509" || sub == "7.23" || sub == "7.24":
		return ReasonAuthFailure
	case strings.HasPrefix(sub, "7."):
		return ReasonPolicy
	}
	return ReasonUndefined
}

// classOf maps the reason to a delivery class. A temporary result is
// never a hard bounce. Where the reason says nothing, the classifier used
// for synchronous replies decides, but an unexplained permanent failure is
// not taken as proof the address is bad.
func classOf(r *Recipient) classify.Class {
	temporary := strings.HasPrefix(r.Status, "4.") || r.ReplyCode >= 400 && r.ReplyCode < 500 && r.Status == "" ||
		r.Action == "delayed"
	switch r.Reason {
	case ReasonDelivered:
		return classify.Delivered
	case ReasonUserUnknown, ReasonHostUnknown, ReasonHasMoved, ReasonNotAccept:
		if temporary {
			return classify.Deferred
		}
		return classify.HardBounce
	case ReasonMailboxFull:
		return classify.MailboxFull
	case ReasonRateLimited:
		return classify.RateLimited
	case ReasonAuthFailure, ReasonRequirePTR, ReasonRelay, ReasonSecurity, ReasonVirus, ReasonSpam, ReasonPolicy, ReasonBlocked:
		if temporary && strings.Contains(strings.ToLower(r.Diagnostic), "reputation") {
			return classify.RateLimited
		}
		return classify.PolicyBlock
	case ReasonUndefined:
		code := r.ReplyCode
		if code == 0 && len(r.Status) > 0 {
			code = int(r.Status[0]-'0') * 100
		}
		if code == 0 {
			return classify.Deferred
		}
		c := classify.Reply("data", smtpproto.Reply{Code: code, Enhanced: r.Status, Text: r.Diagnostic})
		if c == classify.HardBounce || c == classify.ProtocolError {
			return classify.Deferred
		}
		return c
	}
	return classify.Deferred
}

var (
	rePermanent = regexp.MustCompile(`(?i)permanent|failed permanently|giv(?:ing|en) up|not going to try again|could not be delivered|undeliverable|` +
		`expired|too long|unable to deliver|failed to deliver|has failed`)
	reTemporary = regexp.MustCompile(`(?i)delayed|will be retried|will retry|temporar|warning|will keep trying|still trying|retry|` +
		`not yet been delivered|deferred`)
)

// inferStatus gives a notice without any code a class digit: 4.0.0 when
// it says the message is only delayed, 5.0.0 otherwise (a bounce).
func inferStatus(r *Recipient) string {
	switch {
	case r.Action == "delayed":
		return "4.0.0"
	case r.Action == "failed", rePermanent.MatchString(r.Diagnostic):
		return "5.0.0"
	case reTemporary.MatchString(r.Diagnostic):
		return "4.0.0"
	}
	return "5.0.0"
}
