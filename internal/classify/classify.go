// Package classify turns what happened in a delivery attempt (a reply and
// the phase it came in, or a local error) into one class that decides the
// delivery's next state and, later, feeds traffic shaping.
//
// This is the basic classifier: reply code and enhanced status code only.
// A rule-based classifier with provider rules replaces Reply later; the
// classes and their meaning stay.
package classify

import (
	"strings"

	"github.com/posthorn/posthorn/internal/smtpproto"
)

// Class is the kind of result.
type Class string

const (
	Delivered       Class = "delivered"
	Deferred        Class = "deferred"
	RateLimited     Class = "rate_limited"
	MailboxFull     Class = "mailbox_full"
	HardBounce      Class = "hard_bounce"
	PolicyBlock     Class = "policy_block"
	ConnectionError Class = "connection_error"
	DNSError        Class = "dns_error"
	TLSError        Class = "tls_error"
	ProtocolError   Class = "protocol_error"
)

// Permanent reports whether the class ends the delivery without retries.
func (c Class) Permanent() bool { return c == HardBounce || c == PolicyBlock }

// RecipientSide reports whether a temporary failure is about the mailbox
// itself rather than the path to it; such deliveries end as soft_bounced
// instead of dead_letter when their lifetime runs out.
func (c Class) RecipientSide() bool { return c == MailboxFull }

// Reply classifies a reply received in phase ("connect", "ehlo", "mail",
// "rcpt", "data", "data-end").
func Reply(phase string, r smtpproto.Reply) Class {
	switch {
	case r.Code >= 200 && r.Code < 400:
		return Delivered
	case r.Code >= 400 && r.Code < 500:
		return temporary(r)
	case r.Code >= 500 && r.Code < 600:
		return permanent(r)
	}
	return ProtocolError
}

func temporary(r smtpproto.Reply) Class {
	text := strings.ToLower(r.Text)
	switch {
	case r.Enhanced == "4.2.2" || strings.Contains(text, "mailbox full") || strings.Contains(text, "over quota"):
		return MailboxFull
	case r.Enhanced == "4.7.28" || r.Enhanced == "4.7.0" && r.Code == 421 ||
		strings.Contains(text, "rate limit") || strings.Contains(text, "too many"):
		return RateLimited
	}
	return Deferred
}

func permanent(r smtpproto.Reply) Class {
	if strings.HasPrefix(r.Enhanced, "5.7.") {
		return PolicyBlock
	}
	return HardBounce
}
