package classify

import (
	"sync"

	"github.com/posthorn/posthorn/internal/smtpproto"
)

// Class is the kind of result.
type Class string

// The classes. See the package documentation for what each one means to
// the queue.
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
	// TLSPolicy: the destination's TLS policy (MTA-STS in enforce mode,
	// DANE, or a configured tls_policy) could not be met; assigned by the
	// delivery engine only, never by reply rules.
	TLSPolicy     Class = "tls_policy"
	ProtocolError Class = "protocol_error"
)

// Classes returns every class, in a stable order.
func Classes() []Class {
	return []Class{Delivered, Deferred, RateLimited, MailboxFull, HardBounce, PolicyBlock, ConnectionError, DNSError, TLSError, TLSPolicy, ProtocolError}
}

// Valid reports whether c is one of the eleven classes.
func (c Class) Valid() bool {
	switch c {
	case Delivered, Deferred, RateLimited, MailboxFull, HardBounce, PolicyBlock, ConnectionError, DNSError, TLSError, TLSPolicy, ProtocolError:
		return true
	}
	return false
}

// Permanent reports whether the class ends the delivery without retries:
// hard_bounce (the address is bad) and policy_block (the address is fine,
// the sender or content is refused).
func (c Class) Permanent() bool { return c == HardBounce || c == PolicyBlock }

// RecipientSide reports whether a temporary failure is about the mailbox
// itself rather than the path to it; such deliveries end as soft_bounced
// instead of dead_letter when their lifetime runs out.
func (c Class) RecipientSide() bool { return c == MailboxFull }

var (
	defaultOnce sync.Once
	defaultC    *Classifier
)

// Default returns the classifier built from the rules embedded in the
// binary. It is built once, on first use, and never changes afterwards.
func Default() *Classifier {
	defaultOnce.Do(func() {
		c, err := compile(builtinRules, BuiltinSource, nil)
		if err != nil {
			// The embedded rules are tested; a broken build must not run.
			panic("classify: embedded rules: " + err.Error())
		}
		defaultC = c
	})
	return defaultC
}

// Reply classifies a reply received in phase ("connect", "ehlo", "mail",
// "rcpt", "data", "data-end", ...) with the embedded default rules.
func Reply(phase string, r smtpproto.Reply) Class {
	return Default().Classify(phase, r).Class
}

// ReplyAttempt is Reply for the attempt-th attempt (1-based) of a
// delivery: a rule with escalate_after = N gives its escalate_to class
// from the N-th attempt on. See [Classifier.ClassifyAttempt].
func ReplyAttempt(phase string, r smtpproto.Reply, attempt int) Class {
	return Default().ClassifyAttempt(phase, r, attempt).Class
}
