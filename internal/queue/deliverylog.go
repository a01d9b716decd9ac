package queue

import (
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/posthorn/posthorn/internal/deliverylog"
	"github.com/posthorn/posthorn/internal/store"
)

// logOutcomes writes the mail log line of each recorded outcome of j (see
// internal/deliverylog); attempted is false for final states reached
// without a new attempt (lifetime expiry). The message's acceptance time
// comes from its ID (a ULID), so the line can give the total delay without
// a store read.
func (s *Scheduler) logOutcomes(j *Job, outs []store.Outcome, attempted bool) {
	var accepted time.Time
	if id, err := ulid.ParseStrict(j.MessageID); err == nil {
		accepted = ulid.Time(id.Time())
	}
	for i, o := range outs {
		if i >= len(j.Rcpts) {
			break
		}
		r := j.Rcpts[i]
		n := r.Attempts + 1
		if !attempted || o.Phase == "queue" || o.State == store.Suppressed {
			n = 0 // decided in the queue, without talking to a server
		}
		deliverylog.LogAttempt(s.log, deliverylog.Attempt{QueueID: j.MessageID, DeliveryID: r.ID, To: r.Addr,
			Attempt: n, Accepted: accepted, Taken: j.taken, Setup: j.setup, Outcome: o})
	}
}
