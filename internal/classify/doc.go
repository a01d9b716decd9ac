// Package classify turns the reply a remote SMTP server gave in a delivery
// attempt, with the phase it came in, into one class that decides the
// delivery's next state and feeds traffic shaping.
//
// # What it owns
//
// The eleven classes and what they promise to the queue:
//
//	delivered         2xx: accepted
//	deferred          temporary trouble: retry with backoff; dead_letter when the lifetime ends
//	rate_limited      the destination asks us to slow down: retry on its throttle schedule, halve its limits
//	mailbox_full      the mailbox is full or over quota: retry; soft_bounced when the lifetime ends (RecipientSide)
//	hard_bounce       the address does not exist or is gone: no retry, suppress the address (Permanent)
//	policy_block      the address is fine, the sender, IP or content is refused: no retry (Permanent)
//	connection_error  the path failed (a relay reports timeouts, refused connections)
//	dns_error         name resolution failed
//	tls_error         TLS is required, missing or broken
//	tls_policy        the destination's TLS policy (MTA-STS enforce, DANE, tls_policy) was not met: retry, like deferred
//	protocol_error    the dialogue itself broke (bad sequence, syntax, a 3xx as a final answer)
//
// The delivery engine assigns connection_error, dns_error, tls_error and
// tls_policy itself for local failures; the rules give them for replies that say so.
// The rules that decide the class are data: rules.toml, embedded in the
// binary, extendable or replaceable by a file.
//
// Invariants, enforced by the classifier whatever the rules say: a 2xx is
// always delivered and only a 2xx is; hard_bounce and policy_block need a
// 5xx (a 4xx never ends a delivery by itself, except through escalation,
// below). A Classifier is immutable; [Default] is built once from the
// embedded rules and is safe to share.
//
// # How a reply is read
//
// The phase is normalised: case and "_" are ignored; helo and lhlo are
// ehlo; "mail from" is mail; data-end (the reply after the message body)
// is matched by rules that name data. The text has its lines joined with
// single spaces, mail addresses masked as x@x (so that a local part like
// spam@ or mailboxfull@ cannot trigger a rule) and is cut at 16 KiB. The
// enhanced status code is the reply's own, or, when it has none, the first
// one written in the text ("(#5.1.1 - chkusr)", "550 550 5.1.1 ..."); the
// reply code decides its class digit, so "552 4.2.2" is read as 5.2.2.
//
// # Rule format
//
// A rules file is TOML. Each [[rule]] has a name and a class and any of
// these conditions; all that are given must hold, and within one list any
// entry is enough:
//
//	codes         reply codes: "550", or with x for any digit: "5xx", "45x"
//	enhanced      RFC 3463 codes, * (or x) for any component: "5.1.1", "*.2.2", "5.7.*"
//	not_enhanced  the same, excluding
//	phases        connect, ehlo, mail, rcpt, data (covers data-end), data-end, starttls, auth, rset, quit
//	not_phases    the same, excluding
//	text          regular expressions (RE2, case-insensitive) searched in the text
//	not_text      the same, excluding
//	provider      informational: the provider the rule is about
//	note          informational: why the rule exists
//	escalate_after, escalate_to   see Escalation
//
// A top-level disable = ["name", ...] drops built-in rules. Unknown keys,
// bad classes, bad patterns and duplicate names are errors. Example:
//
//	disable = ["421-generic"]
//
//	[[rule]]
//	name = "our-relay-quota"
//	class = "rate_limited"
//	codes = ["5xx"]
//	text = ['daily quota of \d+ messages']
//	note = "Our smarthost answers 554 when the day's quota is used up."
//
//	[[rule]]
//	name = "421-generic"       # same name as a built-in rule: replaces it
//	class = "deferred"
//	codes = ["421"]
//
// # Precedence
//
// Rules are tried in order and the first that matches decides. The
// built-in order is the policy, in sections: what the code or phase alone
// settles (2xx, 3xx, STARTTLS, AUTH); TLS demanded; protocol syntax
// errors; provider rules (Gmail, Microsoft, Yahoo/AOL, Apple, GMX/web.de,
// Mail.ru, Yandex, Zoho, Comcast, Spectrum, Orange, QQ, NetEase, Mimecast,
// Amazon SES, Facebook, au); rate limits, "try later" and greylisting
// (also on a 5xx: those are no bounces); mailbox full; the sender's side
// (a 5xx to the greeting, EHLO or MAIL, sender texts) and recipient
// filters; the recipient unknown; policy (blocklists, reputation,
// authentication, reverse DNS, relaying, size, format, spam); system and
// connection trouble; the enhanced code alone; the reply code and phase
// alone, ending with a catch-all. "posthorn classify --list" prints the
// order.
//
// [Load] (path, replace=false) puts the file's rules in front of the
// built-in ones: a file rule with the name of a built-in rule replaces it,
// and disable drops built-in rules. With replace=true only the file's
// rules count, and a reply no rule matches is classified by its code
// alone (2xx delivered, 421 rate_limited, other 4xx deferred, 5xx with
// x.7.x policy_block, other 5xx hard_bounce, anything else
// protocol_error); Result.Rule is then "fallback". To extend the rules
// from configuration, pass the configured file to Load at start-up and
// hand the Classifier to whoever classifies; "posthorn classify --rules
// FILE" shows what a file changes before it is deployed.
//
// # Escalation
//
// A 4xx that names the recipient as unknown ("450 4.1.1 ... User unknown
// in virtual alias table") is deferred: servers in soft-bounce mode and
// directory hiccups answer that way. A rule with escalate_after = N turns
// into its escalate_to class (hard_bounce unless given) from the N-th
// attempt on, through [Classifier.ClassifyAttempt] or [ReplyAttempt]; the
// built-in rules do this for 4xx unknown-user replies (text or 4.1.1,
// 4.1.10, never in the MAIL phase nor when the text is about the sender)
// with N = 8, about four hours into the default backoff. [Reply] and
// Classify ignore escalation. Result.Escalated says when it happened.
//
// # Tests
//
// testdata/replies.tsv holds 662 replies with the expected class: the 434
// labelled real replies of the shared smtp-replies corpus (sisimai and
// KumoMTA), 148 provider texts from KumoMTA's bounce and shaping rules,
// and 80 well-known replies of the big providers and of Postfix, Exim and
// Exchange. Where we disagree with a source label the row says why
// (testdata/SOURCES.md). "go test -v -run TestReplyTable" prints the
// accuracy against the original labels and the counts per class. Other
// tests check the invariants above on every row, that every built-in rule
// is reachable, loading, overriding, disabling and replacing rules, file
// errors, escalation, odd replies (multi-line, no enhanced code,
// non-ASCII, invalid UTF-8, empty text, huge text) and that the literal
// prefilters that make matching fast never change an answer. FuzzClassify
// and FuzzPrefilter feed arbitrary input.
package classify
