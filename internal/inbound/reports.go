package inbound

import (
	"context"
	"strings"

	"github.com/posthorn/posthorn/internal/smtpd"
)

// ReportIntake takes mail sent to the DMARC rua address (internal/dmarc)
// and says what to answer: 250 when stored, 550 5.6.0 for a malformed
// report, 552 for an oversized one.
type ReportIntake interface {
	Take(ctx context.Context, msg []byte) (code int, enhanced, text string)
}

// isReportAddress reports whether to is the rua address, and marks the
// transaction as a report.
func (s *session) isReportAddress(to smtpd.Path) bool {
	if s.srv.cfg.RUA == "" || s.srv.cfg.Reports == nil || !strings.EqualFold(to.Addr.String(), s.srv.cfg.RUA) {
		return false
	}
	s.report = true
	return true
}

// takeReport hands the message to the intake. A transaction with the rua
// address is a report, whatever other recipients it has.
func (s *session) takeReport(body []byte) *smtpd.Error {
	code, enh, text := s.srv.cfg.Reports.Take(context.Background(), body)
	return smtpd.Reply(code, enh, text)
}
