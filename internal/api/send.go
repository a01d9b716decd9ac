package api

import (
	"encoding/json"
	"time"

	"github.com/posthorn/posthorn/internal/compose"
	"github.com/posthorn/posthorn/internal/store"
)

// SendRequest is the body of POST /v1/messages (and one bulk item).
type SendRequest struct {
	compose.Message
	Lane           string            `json:"lane,omitempty"`
	SendAt         *time.Time        `json:"send_at,omitempty"`
	Tags           []string          `json:"tags,omitempty"`
	Metadata       map[string]string `json:"metadata,omitempty"`
	IdempotencyKey string            `json:"idempotency_key,omitempty"`
}

// RawRequest is the body of POST /v1/messages/raw: a complete message and
// its envelope.
type RawRequest struct {
	From           string            `json:"from"` // envelope sender; "" is the null sender
	To             []string          `json:"to"`   // envelope recipients
	Raw            string            `json:"raw,omitempty"`
	RawBase64      string            `json:"raw_base64,omitempty"`
	Lane           string            `json:"lane,omitempty"`
	SendAt         *time.Time        `json:"send_at,omitempty"`
	Tags           []string          `json:"tags,omitempty"`
	Metadata       map[string]string `json:"metadata,omitempty"`
	IdempotencyKey string            `json:"idempotency_key,omitempty"`
}

// BulkRequest is the body of POST /v1/messages/bulk.
type BulkRequest struct {
	Messages []json.RawMessage `json:"messages"`
}

// BulkItem is the answer for one bulk message, in request order.
type BulkItem struct {
	Index      int              `json:"index"`
	ID         string           `json:"id,omitempty"`
	Recipients []RecipientState `json:"recipients,omitempty"`
	Error      *APIErrorDetail  `json:"error,omitempty"`
}

// BulkResponse answers a bulk send.
type BulkResponse struct {
	Accepted int        `json:"accepted"`
	Failed   int        `json:"failed"`
	Items    []BulkItem `json:"items"`
}

// NeedsUTF8 reports whether an envelope has non-ASCII addresses (it then
// needs SMTPUTF8 on the way out).
func NeedsUTF8(from string, to []string) bool {
	for _, a := range append([]string{from}, to...) {
		for i := 0; i < len(a); i++ {
			if a[i] >= 0x80 {
				return true
			}
		}
	}
	return false
}

// RecipientState is one recipient in a send answer.
type RecipientState struct {
	Email string      `json:"email"`
	State store.State `json:"state"`
}

// SendResponse answers a send.
type SendResponse struct {
	ID         string           `json:"id"`
	Recipients []RecipientState `json:"recipients"`
}

// SendmailRequest is a message from posthorn sendmail: the envelope and
// the message as read from stdin (Bcc already removed with -t).
type SendmailRequest struct {
	Sender     string   `json:"sender"` // "" is the null sender
	Recipients []string `json:"recipients"`
	Message    []byte   `json:"message"` // base64 in JSON
	LocalUser  string   `json:"local_user,omitempty"`
}

// SendmailResponse names the queued message.
type SendmailResponse struct {
	ID         string           `json:"id"`
	Deliveries []store.Delivery `json:"deliveries"`
}
