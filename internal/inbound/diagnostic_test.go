package inbound

import (
	"testing"

	"github.com/posthorn/posthorn/internal/bounce"
	"github.com/posthorn/posthorn/internal/smtpproto"
)

// TestDiagnosticTextOnce: a report's diagnostic repeats the codes; the
// reply built from it (and the suppression detail) says them once.
func TestDiagnosticTextOnce(t *testing.T) {
	for _, diag := range []string{"smtp; 550 5.1.1 user unknown", "550 5.1.1 user unknown", "550-5.1.1 user unknown", "user unknown"} {
		r := bounce.Recipient{ReplyCode: 550, Status: "5.1.1", Diagnostic: diag}
		reply := smtpproto.Reply{Code: r.ReplyCode, Enhanced: r.Status, Text: diagnosticText(r)}
		if got := reply.String(); got != "550 5.1.1 user unknown" {
			t.Errorf("%q: reply %q, want \"550 5.1.1 user unknown\"", diag, got)
		}
	}
}
