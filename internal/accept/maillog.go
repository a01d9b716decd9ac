package accept

import (
	"github.com/posthorn/posthorn/internal/deliverylog"
	"github.com/posthorn/posthorn/internal/store"
)

// logAccepted writes the mail log line of a queued message, and a
// delivery line for each recipient suppressed at acceptance (its final
// state is reached here, without an attempt).
func (p *Pipeline) logAccepted(sub *Submission, m *store.Message, ds []store.Delivery) {
	if p.Log == nil {
		return
	}
	deliverylog.LogAccepted(p.Log, deliverylog.Accepted{QueueID: m.ID, From: m.Sender, Size: m.Size, Rcpts: len(ds),
		Source: sub.Source, Client: sub.ClientIP, SMTPUser: sub.SMTPUser, Tenant: sub.TenantID})
	for _, d := range ds {
		if d.State == store.Suppressed {
			deliverylog.LogAttempt(p.Log, deliverylog.Attempt{QueueID: m.ID, DeliveryID: d.ID, To: d.Recipient,
				Outcome: store.Outcome{State: d.State, Class: "suppressed", Error: "suppressed at acceptance"}})
		}
	}
}
