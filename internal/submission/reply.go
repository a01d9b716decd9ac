package submission

import (
	"errors"
	"strconv"
	"strings"

	"github.com/emersion/go-smtp"

	"github.com/posthorn/posthorn/internal/accept"
	"github.com/posthorn/posthorn/internal/smtpproto"
)

// Every reply this listener sends for a policy or error decision is one of
// these, or comes from replyFor. Internal error text never reaches clients.
var (
	errAuthRequired        = reply(530, "5.7.0", "Authentication required")
	errEncryptionRequired  = reply(538, "5.7.11", "Encryption required: use STARTTLS before AUTH")
	errAuthFailed          = reply(535, "5.7.8", "Authentication credentials invalid")
	errTooManyAuthFailures = reply(421, "4.7.0", "Too many failed logins from your address; try again later")
	errUnknownMechanism    = reply(504, "5.5.4", "Unrecognized authentication mechanism")
	errTooBig              = reply(552, "5.3.4", "Message too big for this server")
	errReadFailed          = reply(451, "4.3.0", "Error reading message data; try again")
	errTemporary           = reply(451, "4.3.0", "Temporary local problem; try again later")
)

func reply(code int, enhanced, text string) *smtp.SMTPError {
	return &smtp.SMTPError{Code: code, EnhancedCode: parseEnhanced(enhanced), Message: text}
}

func parseEnhanced(s string) smtp.EnhancedCode {
	var ec smtp.EnhancedCode
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return smtp.EnhancedCodeNotSet
	}
	for i, p := range parts {
		ec[i], _ = strconv.Atoi(p)
	}
	return ec
}

// badAddress is the reply for an address that does not parse.
func badAddress(err error, rcpt bool) error {
	what := "sender"
	enh := "5.1.7"
	if rcpt {
		what, enh = "recipient", "5.1.3"
	}
	if errors.Is(err, smtpproto.ErrNullPath) {
		return reply(501, "5.1.3", "Null recipient not allowed")
	}
	return reply(553, enh, "Bad "+what+" address syntax: "+err.Error())
}

// replyFor maps an error from the accept pipeline to the client's reply:
// rejections carry their own (safe) text; anything else is a temporary
// local failure, logged with its detail.
func (s *Server) replyFor(err error) error {
	if rej, ok := accept.IsRejection(err); ok {
		return reply(rej.Code, rej.Enhanced, rej.Msg)
	}
	s.log.Error("accept failed", "err", err)
	return errTemporary
}
