package webhook

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/posthorn/posthorn/internal/store"
)

// Payload is the JSON body of every webhook.
type Payload struct {
	Type      string `json:"type"`
	Timestamp string `json:"timestamp"` // when the event happened (RFC 3339, UTC)
	Data      Data   `json:"data"`
}

// Data describes the event; message fields are empty for events of no
// message (alerts, webhook_disabled, webhook_test).
type Data struct {
	EventID    int64             `json:"event_id"`
	Tenant     string            `json:"tenant"`
	MessageID  string            `json:"message_id,omitempty"`
	DeliveryID int64             `json:"delivery_id,omitempty"`
	Recipient  string            `json:"recipient,omitempty"`
	Attempt    int               `json:"attempt,omitempty"`
	MX         string            `json:"mx,omitempty"`
	Reply      *Reply            `json:"reply,omitempty"`
	Class      string            `json:"class,omitempty"`
	Tags       []string          `json:"tags,omitempty"`
	Metadata   map[string]string `json:"metadata,omitempty"`
	Detail     string            `json:"detail,omitempty"`
	// Alert is the alert's state, for alert_fired and alert_resolved.
	Alert json.RawMessage `json:"alert,omitempty"`
}

// Reply is the remote server's answer (or posthorn's local error text).
type Reply struct {
	Code     int    `json:"code,omitempty"`
	Enhanced string `json:"enhanced,omitempty"`
	Text     string `json:"text,omitempty"`
}

// Body builds the payload of one outbox item.
func Body(it store.OutboxItem) ([]byte, error) {
	e := it.Event
	d := Data{EventID: e.ID, Tenant: e.TenantID, MessageID: e.MessageID, DeliveryID: e.DeliveryID, Recipient: e.Recipient,
		Attempt: e.Attempt, MX: e.MX, Class: it.Class, Tags: it.Tags, Metadata: it.Metadata, Detail: e.Detail}
	if e.Reply.Code != 0 || e.Reply.Text != "" {
		d.Reply = &Reply{Code: e.Reply.Code, Enhanced: e.Reply.Enhanced, Text: e.Reply.Text}
	}
	if d.Class != "" && d.Detail == d.Class {
		d.Detail = "" // outcome events keep their class in detail
	}
	if strings.HasPrefix(e.Type, "alert_") && json.Valid([]byte(e.Detail)) {
		d.Alert, d.Detail = json.RawMessage(e.Detail), ""
	}
	return json.Marshal(Payload{Type: e.Type, Timestamp: e.At.UTC().Format(time.RFC3339Nano), Data: d})
}
