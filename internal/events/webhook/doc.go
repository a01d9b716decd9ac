// Package webhook sends posthorn's events to the tenants' HTTP endpoints
// from the store's durable outbox, signed per the Standard Webhooks
// specification.
//
// What it owns and promises:
//   - At least once. The store writes an outbox row per subscribed endpoint
//     in the same transaction as the event, so a crash loses nothing; a row
//     leaves the outbox only after a 2xx answer was recorded. A crash after
//     the 2xx but before that record sends the webhook again: receivers
//     drop duplicates by webhook-id, which is the same on every retry.
//   - Order per message. For one endpoint, the webhooks of one message (its
//     outbox order key is the message id; events of no message share the
//     key "") go one at a time, oldest first: the next is sent only once
//     the previous was delivered or given up. Different messages go in
//     parallel, up to MaxInFlight requests per endpoint.
//   - Retries. A failed request (no answer, or not 2xx; redirects are not
//     followed) is retried after Schedule[n] (plus up to 10% jitter, or a
//     longer Retry-After of a 429 or 503, at most an hour); after
//     the last step the webhook is given up (state failed, still listed).
//     An endpoint whose requests have all failed for DisableAfter, or that
//     answers 410 Gone, is disabled with a webhook_disabled event.
//   - No SSRF. Unless AllowPrivate, a request never reaches a loopback,
//     private, link-local, unspecified, multicast or other special address:
//     names are resolved with posthorn's resolver and every address is
//     checked before it is dialled, and again in the dialer's Control hook
//     on the address actually connected to. Requests have a timeout and
//     only the first 64 KiB of an answer are read.
//
// Every request is recorded (status, latency, first bytes of the answer)
// and listed by `posthorn webhook attempts ID`.
package webhook
