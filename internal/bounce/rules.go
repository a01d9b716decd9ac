package bounce

import "regexp"

type reasonRule struct {
	reason Reason
	re     *regexp.Regexp
}

// rule compiles a pattern that is matched against lower-cased text
// (cheaper than (?i)); patterns must be written in lower case.
func rule(r Reason, pat string) reasonRule {
	return reasonRule{r, regexp.MustCompile(pat)}
}

// rules are tried in order on the diagnostic text; the first match wins.
// The order settles texts that say two things ("550 5.1.1 ... has sent
// to too many recipients", "account disabled ... user unknown"). The
// phrases are the ones real MTAs and providers write; see the corpus
// test for where they come from.
var rules = []reasonRule{
	// Specific phrases that would otherwise be caught by a broader rule
	// further down.
	rule(ReasonUserUnknown, `recipient address rejected: access denied`), // Microsoft 365 directory-based edge blocking (5.4.1)
	rule(ReasonHostUnknown, `account or domain may not exist`),
	rule(ReasonNetwork, `host not found, try again|malformed or unexpected name server`),
	rule(ReasonFiltered, `recipient preference|message filtered`), // Facebook RCP-P2; Amazon SES receiving
	rule(ReasonOnHold, `\bon hold\b`),
	rule(ReasonMailer, `pipe to \||procmail|mailer error|mailer-error|\bexit (?:code|status) \d+`),

	rule(ReasonRateLimited, `rate limit|too many (?:connections|messages|recipients|concurrent)|frequency limited|receiving mail at a rate|`+
		`unexpected volume|\[ts0[1-4]\]|has sent to too many|exceeded the maximum number of connections|try again later.{0,20}rate|throttl`),
	rule(ReasonMailboxFull, `mailbox (?:is |was |)full|mail ?box full|over ?quota|quota exceeded|exceeds? (?:the )?(?:allowed|storage) (?:size|quota)|`+
		`mailfolder is full|insufficient (?:disk |system )?(?:space|storage)|out of storage|not enough (?:disk )?space|storage quota|`+
		`mailbox size limit|number of messages in recipient's mailbox|disk quota|user'?s? (?:mailbox|inbox) is full|quotaexceeded|mailbox exceeds`),
	rule(ReasonTooBig, `message (?:is )?too (?:big|large)|size (?:limit )?exceed|exceeds? (?:fixed )?maximum (?:message )?size|message length exceeds|`+
		`line limit exceeded|recipsizelimit|message size limit|too large for this recipient|message exceeds`),
	rule(ReasonSuspended, `account (?:is |has been |was )?(?:disabled|locked|suspended|inactive|discontinued|deactivated|blocked|expired)|`+
		`disabled (?:recipient|mailbox|user)|mailbox (?:is )?(?:frozen|disabled|inactive|suspended)|tried to reach is (?:disabled|inactive)|`+
		`user account disabled|(?:user|account|mailbox) \S+ temporar(?:y|ily) (?:locked|suspended|disabled)|inbox is out of storage space and inactive|`+
		`compte du destinataire est bloque`),
	rule(ReasonHasMoved, `no longer (?:on server|available|valid)|has moved|not our (?:customer|user)|mailbox has moved`),
	rule(ReasonAuthFailure, `dmarc|\bspf\b|\bdkim\b|fails? (?:to )?pass authentication|authentication checks|unauthenticated email|sender is unauthenticated|`+
		`does not have authentication information`),
	rule(ReasonRequirePTR, `\bptr\b|reverse dns|\brdns\b|ip name lookup failed|reverse lookup|connections not accepted from servers without|service permits|`+
		`mismatches client ip`),
	rule(ReasonRelay, `relay access denied|not (?:configured|permitted|allowed) to relay|relaying (?:denied|not)|relay not permitted|insecure mail relay|`+
		`address is not verified|unable to relay|we do not relay|open relay`),
	rule(ReasonSecurity, `authentication required|authrequired|unauthenticated senders|delivery not authorized|tls required|must issue a starttls|`+
		`encryption required|smtp authentication`),
	rule(ReasonVirus, `virus|malware|infected`),
	rule(ReasonSpam, `spam|\bube\b|unsolicited|blacklisted url|content rejected|mail rejete|considered junk|bulk e-?mail`),
	rule(ReasonPolicy, `polic(?:y|ies)|not allowed|protocol violation|header error|rfc ?5322|multiple addresses in from|duplicate header|8-bit data|`+
		`headers too large|potential security issue|media error|not accepted for policy`),
	rule(ReasonBlocked, `blocked|black ?list|block ?list|dnsbl|spamhaus|refused to talk|banned|client host rejected|not accepting connections|`+
		`service refuse|sender (?:address )?(?:was )?rejected|rejected sender|domain of sender address|unroutable sender|sender domain|`+
		`smtp server of your isp|weren't sent|reputation|not a registered gateway user|`+
		`all recipient addresses rejected|access denied|send mail as|not a member of|permission to post|may not exist, or you may not have permission|`+
		`sending to/from an address|not permitted|\(bl\)|invalid ip for sending|redundant|relay quota|my name was rejected|`+
		`from: domain is invalid|responsible address`),
	rule(ReasonBlocked, `groups\.google\.com|google groups`), // Google Groups refusing a post, in any language
	rule(ReasonNotAccept, `does not accept mail|no mx|null mx|no smtp service|not accepting (?:network )?messages|couldn't find a mail exchanger|`+
		`mx or srv record`),
	rule(ReasonHostUnknown, `host unknown|domain does not exist|no such domain|host not found|host or domain name not found|unrout(?:e)?able address|`+
		`dns lookup failure|illegal host|couldn't find any host|invalid domain|bad destination system|domain is not reachable|`+
		`domain [^ ]+ couldn't be found|domain (?:name )?not found|unknown (?:host|domain)|(?:^|[\s:])[a-z0-9-]+(?:\.[a-z0-9-]+)+ does not exist`),
	rule(ReasonUserUnknown, `user ?unknown|unknown (?:user|recipient|or illegal|local part|address)|no such (?:user|mailbox|recipient|address)|`+
		`(?:user|recipient|mailbox|address) (?:not found|not exist|does not exist|doesn't exist|unknown)|recipnotfound|recipientnotfound|`+
		`address not found|mailbox unavailable|does not exist|invalid (?:recipient|mailbox|user|final delivery)|no mailbox|`+
		`not listed in|doesn't have a .{1,40} account|couldn't be found|illegal alias|bad destination mailbox|not a valid (?:mailbox|user|recipient)|`+
		`addressee unknown|destinataire invalide|inactive email address|unknown address|could not be reached|not registered|no user|`+
		`user not listed|recipient name is not recognized|check if (?:the )?address is correct`),
	rule(ReasonExpired, `expired|retry timeout|too long|giving up|could not deliver for|delivery failed \d+ attempts|failing for a long time|`+
		`not delivered within|will be retried|retried for|unable to deliver this message after|delayed|could not be delivered for more than|`+
		`delivery temporarily suspended|after multiple retries|unable to deliver in|not responding`),
	rule(ReasonNetwork, `timed out|no route to host|connection refused|lost connection|hop count|too many hops|name server|lookup failure|`+
		`network error|routing loop|unable to connect|could not find a gateway|forwarded more than|name service error`),
	rule(ReasonSystem, `system error|internal error|write error|operating system|service not available|temporary failure|could not load|ldap|`+
		`transaction failed|insufficient permission|resources temporarily|local error|duplicated message-id|system problem|try again later`),
	rule(ReasonSyntax, `command parameter not implemented|improper sequence|malformed address|syntax error|bad sequence`),
}

// weakRules are tried when neither the rules nor the status code say
// anything: generic refusals.
var weakRules = []reasonRule{
	rule(ReasonUserUnknown, `recipient address rejected|address rejected|no valid recipients|invalid address|@\S+>? rejected`),
	rule(ReasonBlocked, `\brejected\b|\bdenied\b|\brefused\b`), // includes Gmail's "rejected by the recipient domain"
}

// userUnknownStrong are "no such user" texts that stay so whatever the
// command (Yahoo answers after DATA; a refused RCPT shows up as a failed
// DATA in pipelined transcripts).
var userUnknownStrong = regexp.MustCompile(`doesn't have a .{1,40} account|no valid recipients|need rcpt|rcpt first|valid rcpt command must precede|` +
	`invalid recipient`)
