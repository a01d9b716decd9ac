package queue

import (
	"strings"

	"github.com/posthorn/posthorn/internal/delivery"
)

// sendTx sends msg to rcpts in one transaction, then sends the recipients
// the server refused with "452 4.5.3 too many recipients" in further
// transactions on the same connection, at once: RFC 5321 §4.5.3.1.10 says
// such a 452 means "try the rest later", and later is the next
// transaction, not the next retry. It goes on while each transaction
// delivers something, so a server that refuses every recipient still ends
// it (they are then deferred as usual).
func sendTx(conn *delivery.Conn, msg delivery.Message, rcpts []string) []delivery.Result {
	out := conn.Send(msg, rcpts)
	idx := make([]int, len(rcpts)) // position in out of each recipient of the last transaction
	for i := range idx {
		idx[i] = i
	}
	last := out
	for conn.Usable() {
		var rest []int
		delivered := false
		for k, r := range last {
			switch {
			case tooManyRecipients(r):
				rest = append(rest, idx[k])
			case r.Reply.Code/100 == 2:
				delivered = true
			}
		}
		if len(rest) == 0 || !delivered {
			break
		}
		again := make([]string, len(rest))
		for k, i := range rest {
			again[k] = rcpts[i]
		}
		last, idx = conn.Send(msg, again), rest
		for k, i := range idx {
			out[i] = last[k]
		}
	}
	return out
}

// tooManyRecipients reports whether r is a RCPT refused for the number of
// recipients in the transaction (452 4.5.3, or a bare 452 saying so), not
// for the recipient itself (452 4.2.2 mailbox full is not one).
func tooManyRecipients(r delivery.Result) bool {
	if r.Phase != "rcpt" || r.Reply.Code != 452 {
		return false
	}
	if r.Reply.Enhanced != "" {
		return r.Reply.Enhanced == "4.5.3"
	}
	return strings.Contains(strings.ToLower(r.Reply.Text), "too many recipients")
}
