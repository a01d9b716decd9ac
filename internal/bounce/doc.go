// Package bounce reads asynchronous bounces and complaints: one e-mail in,
// a Report out saying what the message is, which recipients failed, why,
// and which original message it is about.
//
// It owns message parsing for the inbound bounce listener (DESIGN.md
// section 6): the listener hands each message received for the bounce
// domain to Parse, looks the delivery up with the VERP token of the
// envelope recipient (VERPToken) or Report.Token, and records
// suppressions from Recipient.Hard and complaints from Report.Feedback.
// It does no I/O and keeps no state.
//
// # What it recognises
//
//   - RFC 3464 delivery status notifications (multipart/report;
//     report-type=delivery-status) and RFC 6533 internationalised ones
//     (message/global-delivery-status): per-recipient Final-Recipient,
//     Original-Recipient, Action, Status, Diagnostic-Code, Remote-MTA,
//     with the notice text used to fill what the report leaves out (the
//     SMTP command, a fuller reply). Reports whose blocks run together, or
//     that are written as plain text, are read too.
//   - RFC 5965 feedback reports (ARF): Feedback-Type, Original-Rcpt-To (or
//     Removal-Recipient, or the returned message's To), Original-Mail-From,
//     Source-IP, Reported-Domain; Apple Mail's one-click unsubscribe
//     message is reported as an "opt-out" feedback.
//   - Non-standard notices, read with patterns: qmail, Exim, Postfix and
//     Sendmail without DSN, Exchange/Outlook, Gmail and Google Groups,
//     Yahoo, Lotus Domino/Notes, Zoho, Courier, OpenSMTPD, mail.ru, McAfee
//     and other gateways, and Amazon SES JSON notifications (bounce,
//     complaint, delivery; by SNS e-mail, raw or in the SNS envelope).
//     The failed recipient is taken from X-Failed-Recipients or from where
//     notices put it (an address alone on a line, "addr: reason",
//     "<addr>... User unknown", "RCPT TO:<addr>", "delivered to addr"),
//     and the lines that follow it are its diagnostic.
//   - A bounce carried inside another message (a forwarded or re-bounced
//     DSN, "> " quoted or attached) is read through.
//   - Automatic replies (RFC 3834 Auto-Submitted: auto-replied, vacation
//     and out-of-office markers) are KindAutoReply: not a bounce.
//
// For each recipient the reply code and RFC 3463 status are extracted from
// the report or text (a notice without any code gets 4.0.0 or 5.0.0 from
// its wording), a Reason is chosen by phrase rules (rules.go) then by
// status code, and the Reason gives the classify.Class. Hard (suppress the
// address) is set only for permanent failures that are about the address:
// unknown user, unknown or mail-less domain, moved mailbox. A 4xx is never
// hard. A "user unknown" is not taken as hard when it came after DATA
// without an address status, with a mailbox or policy status outside RCPT,
// from a content-filtering gateway, or in the empty-address form Japanese
// carriers use for their domain filters: those are often a filter's
// answer, and suppressing on them would lose good addresses. Where no rule
// applies, classify.Reply decides on the synthesized reply, except that an
// unexplained permanent failure is soft.
//
// # Trust
//
// Anyone can send mail to the bounce domain. A Report says what a message
// claims; the caller acts on it only for the delivery its VERP token
// names, and only for recipients of that delivery.
//
// # Robustness
//
// Line endings may be LF, CRLF or CR. MIME is parsed leniently: missing
// or unterminated boundaries, boundary parameters on an unfolded line,
// bad base64 or quoted-printable, unknown charsets (ASCII-compatible text
// is kept; UTF-8, US-ASCII, ISO-8859-1 and Windows-1252 are converted).
// A part that cannot be read is skipped and noted in Report.Warnings.
// Work is bounded: the first MaxMessageSize bytes are read, nesting is
// limited to 8 levels and 256 parts, header blocks, notice lines,
// candidate addresses and recipients are capped, and all patterns are
// RE2 (linear time). Parse never panics (see the fuzz tests).
//
// # Known limits
//
//   - One message per call: an mbox holding several bounces yields the
//     first one only.
//   - Non-standard notices are read with patterns; a new wording can be
//     missed. Non-ASCII notices in charsets the standard library does not
//     decode (ISO-2022-JP, Shift_JIS...) are read for their ASCII parts
//     only, which is where codes and addresses are.
//   - Mailing-list refusals (FML "you are not a member") are not bounces
//     here.
//   - The reason vocabulary is smaller than sisimai's; TestCorpus scores
//     the package against sisimai's answers for its 590-message corpus and
//     lists every disagreement with its cause.
package bounce
