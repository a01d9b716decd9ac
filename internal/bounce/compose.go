package bounce

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/posthorn/posthorn/internal/smtpproto"
)

// Failed describes one recipient a DSN reports.
type Failed struct {
	Recipient string
	Reply     smtpproto.Reply // the last reply; zero when there was none
	Detail    string          // local reason when there was no reply
	RemoteMTA string
	LastTry   time.Time
}

// Compose writes an RFC 3464 delivery status notification telling sender
// that recipients failed. origHeaders are the original message's header
// block (returned as text/rfc822-headers, not the body).
func Compose(reportingMTA, sender string, arrival time.Time, failed []Failed, origHeaders []byte, now time.Time) []byte {
	var b [12]byte
	rand.Read(b[:])
	boundary := "=_dsn_" + hex.EncodeToString(b[:])
	var s strings.Builder
	fmt.Fprintf(&s, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n", reportingMTA)
	fmt.Fprintf(&s, "To: <%s>\r\n", sender)
	s.WriteString("Subject: Undelivered Mail Returned to Sender\r\n")
	s.WriteString("Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n")
	fmt.Fprintf(&s, "Content-Type: multipart/report; report-type=delivery-status; boundary=\"%s\"\r\n\r\n", boundary)
	fmt.Fprintf(&s, "--%s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n", boundary)
	fmt.Fprintf(&s, "This is the mail system at %s.\r\n\r\nYour message could not be delivered to these recipients:\r\n\r\n", reportingMTA)
	for _, f := range failed {
		why := f.Detail
		if f.Reply.Code != 0 {
			why = f.Reply.String()
		}
		fmt.Fprintf(&s, "<%s>: %s\r\n", f.Recipient, oneLine(why))
	}
	fmt.Fprintf(&s, "\r\n--%s\r\nContent-Type: message/delivery-status\r\n\r\n", boundary)
	fmt.Fprintf(&s, "Reporting-MTA: dns; %s\r\nArrival-Date: %s\r\n", reportingMTA, arrival.Format(time.RFC1123Z))
	for _, f := range failed {
		status := f.Reply.Enhanced
		if !strings.HasPrefix(status, "5.") {
			status = "5.4.7" // delivery time expired (RFC 3463)
		}
		fmt.Fprintf(&s, "\r\nFinal-Recipient: rfc822; %s\r\nAction: failed\r\nStatus: %s\r\n", f.Recipient, status)
		if f.RemoteMTA != "" {
			fmt.Fprintf(&s, "Remote-MTA: dns; %s\r\n", f.RemoteMTA)
		}
		if f.Reply.Code != 0 {
			fmt.Fprintf(&s, "Diagnostic-Code: smtp; %s\r\n", oneLine(f.Reply.String()))
		} else if f.Detail != "" {
			fmt.Fprintf(&s, "Diagnostic-Code: x-posthorn; %s\r\n", oneLine(f.Detail))
		}
		if !f.LastTry.IsZero() {
			fmt.Fprintf(&s, "Last-Attempt-Date: %s\r\n", f.LastTry.Format(time.RFC1123Z))
		}
	}
	fmt.Fprintf(&s, "\r\n--%s\r\nContent-Type: text/rfc822-headers\r\n\r\n", boundary)
	s.Write(origHeaders)
	fmt.Fprintf(&s, "\r\n--%s--\r\n", boundary)
	return []byte(s.String())
}

func oneLine(s string) string {
	s = strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
	if len(s) > 900 {
		s = s[:900]
	}
	return s
}
