package classify

import (
	"strings"
	"testing"

	"github.com/posthorn/posthorn/internal/smtpproto"
)

// TestOddReplies covers replies that are malformed, unusual or easy to get
// wrong: multi-line, no enhanced code, non-ASCII, empty text, phase
// spellings.
func TestOddReplies(t *testing.T) {
	for _, c := range []struct {
		name, phase, reply string
		want               Class
	}{
		// Multi-line, LF and CRLF, and words split across lines.
		{"multi-line greylisting CRLF", "rcpt", "451-4.7.1 Please wait\r\n451 4.7.1 Greylisted, try again in 300 seconds\r\n", Deferred},
		{"words across lines", "rcpt", "552-Requested mail action aborted: mailbox\n552 is full", MailboxFull},
		{"multi-line enhanced on first line only", "data", "550-5.7.1 This message was\n550 classified as spam", PolicyBlock},
		// No enhanced code at all.
		{"no enhanced: unknown user", "rcpt", "550 No such user here", HardBounce},
		{"no enhanced: 421", "connect", "421 closing", RateLimited},
		{"no enhanced: storage", "data", "452 Insufficient system storage", Deferred},
		{"no enhanced: 5xx at data", "data", "554 Transaction failed", Deferred},
		{"no enhanced: 5xx at rcpt", "rcpt", "550 Requested action not taken", HardBounce},
		// Empty text.
		{"empty 550 rcpt", "rcpt", "550", HardBounce},
		{"empty 550 mail", "mail", "550", PolicyBlock},
		{"empty 554 data", "data", "554", PolicyBlock},
		{"empty 554 greeting", "connect", "554", PolicyBlock},
		{"empty 421", "ehlo", "421", RateLimited},
		{"empty 451", "rcpt", "451", Deferred},
		{"empty 250", "data", "250", Delivered},
		{"empty 503", "data", "503", ProtocolError},
		// Non-ASCII text.
		{"german 5.1.1", "rcpt", "550 5.1.1 Benutzer unbekannt – Postfach existiert nicht", HardBounce},
		{"russian no code", "rcpt", "550 Пользователь не найден", HardBounce},
		{"chinese spam", "data", "554 5.7.1 邮件被拒绝 (spam)", PolicyBlock},
		{"french mailbox full", "rcpt", "452 4.2.2 Boîte aux lettres pleine", MailboxFull},
		{"french unknown", "rcpt", "550 Utilisateur inconnu", HardBounce},
		{"french throttle", "connect", "421 Trop de connexions", RateLimited},
		// The code decides permanence, the enhanced code the kind.
		{"552 with 4.2.2", "rcpt", "552 4.2.2 mailbox is stuffed", MailboxFull},
		{"525 with 4.7.13", "rcpt", "525 4.7.13 user account is disabled", HardBounce},
		{"enhanced in text", "rcpt", "550 sorry, no mailbox here by that name (#5.1.1 - chkusr)", HardBounce},
		{"syntax of the address", "rcpt", "501 5.1.3 Syntax error in mailbox address", HardBounce},
		{"syntax of the command", "rcpt", "500 5.5.2 Syntax error, command unrecognized", ProtocolError},
		{"doubled code", "rcpt", "550 550 5.7.1 Access denied (state 13).", PolicyBlock},
		// A 5xx that says try later is no bounce.
		{"5xx try later", "rcpt", "550 5.7.1 Temporarily blocked, please try again later", Deferred},
		{"5xx greylisting", "rcpt", "554 5.7.1 Greylisted, please try again in 5 minutes", Deferred},
		{"5xx unusual rate", "data", "550 5.7.28 Our system has detected an unusual rate of unsolicited mail", RateLimited},
		// Addresses do not trigger rules by their local part.
		{"spam in local part", "rcpt", "550 5.1.1 <spam-reports@example.com>: Recipient address rejected: User unknown", HardBounce},
		{"full in local part", "rcpt", "550 <mailboxfull@example.com>: Recipient address rejected: User unknown", HardBounce},
		{"sender in rcpt phase", "rcpt", "550 5.1.0 <b@example.com>: Sender address rejected: User unknown in local recipient table", PolicyBlock},
		// A 354 seen as a final result means the dialogue broke.
		{"354 after data", "data", "354 End data with <CR><LF>.<CR><LF>", ProtocolError},
		// Phase spellings.
		{"phase HELO", "HELO", "550 go away", PolicyBlock},
		{"phase MAIL FROM", "MAIL FROM", "553 no", PolicyBlock},
		{"phase DATA_END", "DATA_END", "554 no", PolicyBlock},
		{"phase data-end", "data-end", "550 5.1.1 user unknown", HardBounce},
		{"phase unknown", "", "550 no", HardBounce},
		{"phase STARTTLS", "StartTLS", "454 4.7.0 TLS not available", TLSError},
		// What the basic classifier did stays true.
		{"basic 250", "rcpt", "250 2.1.5 Ok", Delivered},
		{"basic 4.2.2", "rcpt", "452 4.2.2 mailbox full", MailboxFull},
		{"basic 421 4.7.0", "connect", "421 4.7.0 slow down", RateLimited},
		{"basic 4.7.28", "data", "421 4.7.28 slow down", RateLimited},
		{"basic too many", "rcpt", "451 too many messages", RateLimited},
		{"basic 5.7.1", "rcpt", "550 5.7.1 no", PolicyBlock},
		{"basic 5.1.1", "rcpt", "550 5.1.1 no", HardBounce},
		{"basic 451", "rcpt", "451 4.3.0 try later", Deferred},
	} {
		r, err := smtpproto.ParseReply(c.reply)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if res := Default().Classify(c.phase, r); res.Class != c.want {
			t.Errorf("%s: %q in %q = %s (rule %s), want %s", c.name, c.reply, c.phase, res.Class, res.Rule, c.want)
		}
		if got := Reply(c.phase, r); got != c.want {
			t.Errorf("%s: Reply = %s, want %s", c.name, got, c.want)
		}
	}
}

// TestOddStructs feeds replies that ParseReply would not produce.
func TestOddStructs(t *testing.T) {
	for _, c := range []struct {
		name string
		r    smtpproto.Reply
		want Class
	}{
		{"zero reply", smtpproto.Reply{}, ProtocolError},
		{"code 600", smtpproto.Reply{Code: 600, Text: "user unknown"}, ProtocolError},
		{"code 199", smtpproto.Reply{Code: 199}, ProtocolError},
		{"negative code", smtpproto.Reply{Code: -550, Text: "user unknown"}, ProtocolError},
		{"invalid utf-8", smtpproto.Reply{Code: 550, Text: "user \xff\xfe unknown \xc3"}, HardBounce},
		{"user unknown split by bad byte", smtpproto.Reply{Code: 550, Text: "user\xffunknown"}, HardBounce},
		{"enhanced class mismatch", smtpproto.Reply{Code: 552, Enhanced: "4.2.2", Text: "x"}, MailboxFull},
		{"garbage enhanced", smtpproto.Reply{Code: 550, Enhanced: "five.one.one", Text: "nope"}, HardBounce},
		{"leading zeros", smtpproto.Reply{Code: 550, Enhanced: "5.01.001", Text: "nope"}, HardBounce},
		{"NUL bytes", smtpproto.Reply{Code: 452, Text: "mailbox\x00 full"}, Deferred},
		{"huge text", smtpproto.Reply{Code: 550, Text: "mailbox unavailable " + strings.Repeat("x", 100<<10) + " spam"}, HardBounce},
	} {
		res := Default().Classify("rcpt", c.r)
		if res.Class != c.want {
			t.Errorf("%s: %s (rule %s), want %s", c.name, res.Class, res.Rule, c.want)
		}
	}
}

func TestEnhancedInference(t *testing.T) {
	for s, want := range map[string]string{
		"550 sorry, no mailbox here by that name (#5.1.1 - chkusr)":                  "5.1.1",
		"550 550 5.1.1 user unknown":                                                 "5.1.1",
		"501 Rcpt-To validation failed: RCPT TO not accepted: 5.7.1 no relay":        "5.7.1",
		"550 #5.1.0 Address rejected.":                                               "5.1.0",
		"552 4.2.2 mailbox is stuffed":                                               "5.2.2",
		"451 Message temporarily deferred - 4.16.50":                                 "",
		"421 Messages from 192.0.2.1 temporarily deferred - 4.16.55.1; see https://": "",
		"550 version 5.1.1.2 of the filter":                                          "",
		"250 2.0.0 ok":                                                               "2.0.0",
		"250 ok 5.1.1":                                                               "",
	} {
		res := Default().Classify("rcpt", mustParse(t, s))
		if res.Enhanced != want {
			t.Errorf("%q: enhanced %q, want %q", s, res.Enhanced, want)
		}
		r := mustParse(t, s)
		if wantInferred := want != "" && r.Enhanced == ""; res.Inferred != wantInferred {
			t.Errorf("%q: inferred %v", s, res.Inferred)
		}
	}
}

func TestClassMethods(t *testing.T) {
	for _, c := range Classes() {
		if !c.Valid() {
			t.Errorf("%s not valid", c)
		}
		if c.Permanent() != (c == HardBounce || c == PolicyBlock) {
			t.Errorf("%s: Permanent %v", c, c.Permanent())
		}
		if c.RecipientSide() != (c == MailboxFull) {
			t.Errorf("%s: RecipientSide %v", c, c.RecipientSide())
		}
	}
	if len(Classes()) != 11 || Class("bounced").Valid() || Class("").Valid() {
		t.Error("class list")
	}
}

func BenchmarkClassify(b *testing.B) {
	rows := loadTable(b)
	replies := make([]smtpproto.Reply, 0, len(rows))
	phases := make([]string, 0, len(rows))
	for _, row := range rows {
		if r, err := parseTableReply(row.reply); err == nil {
			replies = append(replies, r)
			phases = append(phases, row.phase)
		}
	}
	c := Default()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		j := i % len(replies)
		c.Classify(phases[j], replies[j])
	}
}
