package smtpclient

import (
	"errors"
	"net"
	"strconv"
	"strings"

	"github.com/posthorn/posthorn/internal/smtpproto"
)

// Phase names the step of the SMTP dialogue in which an error happened.
type Phase string

// The phases of a session. PhaseData covers the DATA command and its 354
// reply; PhaseDataEnd covers sending the message body and the reply that
// follows the terminating dot.
const (
	PhaseConnect  Phase = "connect"
	PhaseEhlo     Phase = "ehlo"
	PhaseStartTLS Phase = "starttls"
	PhaseAuth     Phase = "auth"
	PhaseMail     Phase = "mail"
	PhaseRcpt     Phase = "rcpt"
	PhaseData     Phase = "data"
	PhaseDataEnd  Phase = "data-end"
	PhaseRset     Phase = "rset"
	PhaseQuit     Phase = "quit"
)

// Error is the error type returned by Client methods.
//
// Reply is set when the server answered with an unwanted reply; Err is
// set for I/O errors (including timeouts), protocol errors
// (*ProtocolError) and conditions detected by the client itself
// (ErrNotSupported, ErrInvalidArgument, ErrBroken). Both are set when a
// reply was out of sequence (e.g. 354 to RCPT or 250 to DATA): the
// dialogue cannot continue and the Client is Broken.
type Error struct {
	Phase Phase
	Reply *smtpproto.Reply // the server's reply; nil for I/O and local errors
	Err   error            // the cause when there is no reply
	// Temporary reports whether trying again later may succeed: true for
	// 4xx replies, I/O errors, timeouts and protocol errors; false for 5xx
	// replies and for local errors such as a missing extension.
	Temporary bool
	// MaybeDelivered is set when the whole message and its final dot were
	// sent but no proper reply came back (a timeout, the connection
	// closed, garbage): the server may have accepted the message, and
	// sending it again may deliver it twice (RFC 1047). It is not set when
	// the connection was reset: a server that closes with data of ours
	// still unread makes its TCP stack send a reset, so it did not read
	// the final dot.
	MaybeDelivered bool
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("smtp ")
	b.WriteString(string(e.Phase))
	b.WriteString(": ")
	switch {
	case e.Reply != nil && e.Err != nil:
		b.WriteString(e.Reply.String())
		b.WriteString(" (")
		b.WriteString(e.Err.Error())
		b.WriteString(")")
	case e.Reply != nil:
		b.WriteString(e.Reply.String())
	case e.Err != nil:
		b.WriteString(e.Err.Error())
	default:
		b.WriteString("unknown error")
	}
	return b.String()
}

// Unwrap returns Err.
func (e *Error) Unwrap() error { return e.Err }

// Timeout reports whether the error was caused by a deadline expiring.
func (e *Error) Timeout() bool {
	var ne net.Error
	return errors.As(e.Err, &ne) && ne.Timeout()
}

// SentinelError is the type of the package's constant errors; compare with
// errors.Is.
type SentinelError string

func (e SentinelError) Error() string { return string(e) }

const (
	// ErrBroken is returned by every method of a Client that is no
	// longer usable (after Close, an I/O error, a protocol error or a 421
	// reply).
	ErrBroken SentinelError = "smtpclient: connection is broken"
	// ErrNotSupported is wrapped when an operation needs an extension the
	// server did not advertise (SMTPUTF8, STARTTLS, AUTH mechanisms).
	ErrNotSupported SentinelError = "smtpclient: not supported by server"
	// ErrInvalidArgument is wrapped when the caller passed something that
	// cannot be sent, such as an address containing a line break.
	ErrInvalidArgument SentinelError = "smtpclient: invalid argument"
)

// ProtocolError reports a reply that does not follow the SMTP grammar or
// exceeds the client's limits. The connection cannot be resynchronised
// after one, so the Client becomes Broken.
type ProtocolError struct {
	Msg  string // what is wrong
	Line string // the offending line, clipped; may be empty
}

func (e *ProtocolError) Error() string {
	if e.Line == "" {
		return "smtp protocol error: " + e.Msg
	}
	return "smtp protocol error: " + e.Msg + ": " + strconv.Quote(e.Line)
}

func protoErr(msg string, line []byte) *ProtocolError {
	const maxShown = 80
	if len(line) > maxShown {
		line = line[:maxShown]
	}
	return &ProtocolError{Msg: msg, Line: string(line)}
}

// replyError builds the *Error for an unwanted reply.
func replyError(p Phase, r smtpproto.Reply) *Error {
	return &Error{Phase: p, Reply: &r, Temporary: !r.Permanent()}
}

// localError builds the *Error for a condition detected by the client.
func localError(p Phase, err error) *Error {
	return &Error{Phase: p, Err: err, Temporary: false}
}

// outOfSequence marks the Client Broken after a reply that cannot follow
// the command just sent (an intermediate 3xx where a final reply was due,
// or 2xx to DATA): client and server no longer agree on the state.
func (c *Client) outOfSequence(p Phase, r smtpproto.Reply) *Error {
	c.broken = true
	return &Error{Phase: p, Reply: &r, Err: protoErr("reply out of sequence", nil), Temporary: true}
}
