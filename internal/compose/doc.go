// Package compose turns the JSON fields of the sending API (from, to, cc,
// bcc, reply_to, subject, text, html, headers, attachments) into an RFC 5322
// message with a MIME body, ready to be queued as is.
//
// # Input
//
// [Message] is what the API decodes. Addresses accept three JSON spellings:
// "a@example.com", "Name <a@example.com>" and {"name": .., "email": ..};
// to, cc, bcc and reply_to take one address or a list. An e-mail address that
// parses is stored in canonical form (surrounding whitespace and comments
// dropped, the local part quoted only when it must be), so From.Email and
// [Message.Recipients] can be used as the SMTP envelope. Attachment content
// is base64 in JSON (padding optional, line breaks allowed, the URL alphabet
// accepted) and plain bytes in Go. Decoding never fails on a bad value inside
// a well-formed document: a bad address or bad base64 is kept and reported by
// [Message.Validate] as a [FieldError] naming the field ("to[2].email",
// "attachments[0].content"), which is what an API answer needs. Unknown keys
// inside address and attachment objects are refused, like the API's strict
// decoder does for the rest of the request.
//
// # Validation
//
// [Message.Validate] returns the first problem as a *[FieldError]; the codes
// are the Code* constants. Besides syntax (net/mail for the local part, a
// domain with a dot or an address literal, no CR, LF or NUL anywhere), it
// refuses extra headers that would let a caller override or forge what
// posthorn is responsible for:
//
//   - the fields Build writes: From, To, Cc, Bcc, Reply-To, Subject, Date,
//     Message-ID, MIME-Version and every Content-* field (the MIME structure
//     is ours; a top-level Content-Disposition or Content-Language would
//     describe a body the caller did not build);
//   - Sender: the API has no sender field, and a free-form Sender would
//     escape the address checks (it can become a first-class field later);
//   - trace and authentication fields that only MTAs and receivers may add:
//     Return-Path, Received, DKIM-Signature, ARC-*, Authentication-Results
//     and the Resent-* block.
//
// Everything else (In-Reply-To, References, List-Unsubscribe, X-*) is passed
// through after the header-injection check.
//
// # Structure
//
// Build picks the smallest MIME tree that carries the content:
//
//	text only            text/plain
//	html only            text/html
//	text and html        multipart/alternative (text/plain, text/html)
//	inline parts         the text/html becomes multipart/related
//	                     (text/html, inline parts...)
//	other attachments    multipart/mixed (body, attachments...)
//
// The related part sits inside the alternative, around the html only, so a
// reader that shows the plain text does not list the inline images as
// attachments. Inline parts (those with a content_id) in a message without
// html have nothing to be related to and go into multipart/mixed as inline
// parts, keeping their Content-ID.
//
// # Encoding
//
// Text parts are utf-8; they are sent 7bit when they are printable ASCII with
// lines of at most 78 characters and no trailing whitespace, and
// quoted-printable otherwise. CR, LF and CRLF in text and html are all line
// breaks and come out as CRLF; a single-part body always ends with a line
// break (SMTP would add one anyway). Attachments are base64 in 76-character
// lines. Non-ASCII display names, subjects and extra header values are
// RFC 2047 encoded-words (Q, restricted to the characters allowed in a
// phrase, or B when that is at least a quarter shorter, as for CJK text);
// non-ASCII filenames use RFC 2231
// (mime.FormatMediaType), and filenames are limited to 255 bytes so their
// header line stays under 998 characters. A subject is also encoded when it
// starts or ends with whitespace or contains "=?", so every reader gets it
// back exactly. Header lines are folded at 78 characters at single spaces
// (between addresses and inside display names, never inside an e-mail
// address or a quoted Content-Type/Content-Disposition parameter), which
// both RFC 5322 unfolding and Go's textproto undo exactly; an extra header whose value has
// a word too long to fit in 998 characters is refused (CodeHeaderTooLong).
// When To is empty (Bcc-only messages), "To: undisclosed-recipients:;" is
// written, as sendmail does, because spam filters score a missing To.
//
// Encoded display names longer than one encoded-word (75 characters) are
// split into several words; RFC 2047 readers join them, but Python's email
// package (policy.default) puts a space between them in address headers.
//
// Output is deterministic apart from the multipart boundaries, which are
// random (Options.Boundary replaces the generator in tests) and checked not
// to occur in the content they enclose. Attachments without content_type get
// one from mime.TypeByExtension, which also reads the system's mime.types.
package compose
