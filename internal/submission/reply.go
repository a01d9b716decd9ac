package submission

import (
	"github.com/posthorn/posthorn/internal/accept"
	"github.com/posthorn/posthorn/internal/smtpd"
)

// Every reply this listener sends for a policy decision is one of these,
// or comes from replyFor. Internal error text never reaches clients.
var (
	errAuthRequired        = smtpd.Reply(530, "5.7.0", "Authentication required")
	errAuthFailed          = smtpd.Reply(535, "5.7.8", "Authentication credentials invalid")
	errTooManyAuthFailures = smtpd.Reply(421, "4.7.0", "Too many failed logins from your address; try again later")
	errUserLockedOut       = smtpd.Reply(454, "4.7.0", "Too many failed logins for this user; try again later")
	errTemporary           = smtpd.Reply(451, "4.3.0", "Temporary local problem; try again later")
)

// replyFor maps an error from the accept pipeline to the client's reply:
// rejections carry their own (safe) text; anything else is a temporary
// local failure, logged with its detail.
func (s *Server) replyFor(err error) error {
	if rej, ok := accept.IsRejection(err); ok {
		return smtpd.Reply(rej.Code, rej.Enhanced, rej.Msg)
	}
	s.log.Error("accept failed", "err", err)
	return errTemporary
}
