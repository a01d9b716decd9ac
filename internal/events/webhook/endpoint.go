package webhook

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/posthorn/posthorn/internal/store"
)

// EventTypes are the event types an endpoint may subscribe to.
var EventTypes = subscribable()

// subscribable is every event type of the activity log but webhook_test,
// which is only ever sent to the endpoint it tests.
func subscribable() []string {
	var out []string
	for _, t := range store.EventTypes {
		if t != store.EventWebhookTest {
			out = append(out, t)
		}
	}
	return out
}

// NewEndpoint checks a URL and a list of event types and returns a new
// endpoint with a fresh id and secret. The target address is checked when
// it is dialled, not here: a name may resolve differently later.
func NewEndpoint(tenantID, rawURL string, events []string, now time.Time) (store.WebhookEndpoint, error) {
	var e store.WebhookEndpoint
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Hostname() == "" {
		return e, fmt.Errorf("url %q: want an absolute http or https URL", rawURL)
	}
	if u.User != nil {
		return e, fmt.Errorf("url %q: credentials in the URL are not supported (the signature authenticates posthorn)", rawURL)
	}
	if len(rawURL) > 2000 {
		return e, fmt.Errorf("url longer than 2000 characters")
	}
	var evs []string
	for _, ev := range events {
		ev = strings.TrimSpace(ev)
		if ev == "" {
			continue
		}
		if !slices.Contains(EventTypes, ev) {
			return e, fmt.Errorf("unknown event type %q (known: %s)", ev, strings.Join(EventTypes, ", "))
		}
		if !slices.Contains(evs, ev) {
			evs = append(evs, ev)
		}
	}
	if len(evs) == 0 {
		return e, fmt.Errorf("name at least one event type (known: %s)", strings.Join(EventTypes, ", "))
	}
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return e, err
	}
	secret, err := NewSecret()
	if err != nil {
		return e, err
	}
	return store.WebhookEndpoint{ID: "wh_" + hex.EncodeToString(b), TenantID: tenantID, URL: u.String(), Events: evs, Secret: secret,
		CreatedAt: now.UTC()}, nil
}
