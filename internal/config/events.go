package config

import (
	"fmt"
	"strings"
	"time"
)

// Webhooks configures the webhook sender (internal/events/webhook).
type Webhooks struct {
	// AllowPrivateTargets lets webhooks go to loopback, private,
	// link-local and other special addresses. Off by default: an API key
	// holder must not be able to make posthorn call into its own network.
	AllowPrivateTargets bool `toml:"allow_private_targets"`
	// RetrySchedule is the wait before each retry of a failed request;
	// after the last one the webhook is given up (state failed).
	RetrySchedule []Duration `toml:"retry_schedule"`
	// DisableAfter disables an endpoint that has failed every request for
	// this long (a webhook_disabled event tells the tenant).
	DisableAfter Duration `toml:"disable_after"`
	Timeout      Duration `toml:"timeout"`       // per request, connect to last byte
	MaxInFlight  int      `toml:"max_in_flight"` // concurrent requests per endpoint
}

// Alerts configures when threshold rules ([[alert]]) are evaluated.
type Alerts struct {
	Interval Duration `toml:"interval"`
	// Tenant receives the alert events (and so the webhooks); default the
	// default tenant.
	Tenant string `toml:"tenant"`
}

// AlertRule is one [[alert]] threshold rule; see docs/alerts.md.
type AlertRule struct {
	Name string `toml:"name"`
	// Kind: deferral_rate (Threshold is a percentage of attempts to
	// Destination deferred within Window, once MinAttempts were made),
	// oldest_queued (the oldest queued delivery is older than Age) or
	// dead_letters (at least Threshold deliveries became dead letters
	// within Window).
	Kind        string   `toml:"kind"`
	Destination string   `toml:"destination"` // deferral_rate: a domain, "provider:NAME", or "*" for each destination
	Threshold   float64  `toml:"threshold"`
	Window      Duration `toml:"window"`
	MinAttempts int      `toml:"min_attempts"`
	Age         Duration `toml:"age"`
	// Action while firing: "" (none), "throttle" (the destination's rate
	// is capped at Fraction of what it was) or "hold_lane" (nothing in
	// Lane is sent).
	Action   string  `toml:"action"`
	Fraction float64 `toml:"fraction"`
	Lane     string  `toml:"lane"`
}

// Alert kinds and actions.
const (
	AlertDeferralRate = "deferral_rate"
	AlertOldestQueued = "oldest_queued"
	AlertDeadLetters  = "dead_letters"
	ActionThrottle    = "throttle"
	ActionHoldLane    = "hold_lane"
)

// DefaultWebhookSchedule retries for about a day: 10s, 1m, 5m, 30m, 1h,
// 2h, 4h, 8h, 8h (23h46m in all).
func DefaultWebhookSchedule() []Duration {
	var out []Duration
	for _, s := range []string{"10s", "1m", "5m", "30m", "1h", "2h", "4h", "8h", "8h"} {
		d, _ := time.ParseDuration(s)
		out = append(out, Duration{d})
	}
	return out
}

func defaultWebhooks() Webhooks {
	return Webhooks{RetrySchedule: DefaultWebhookSchedule(), DisableAfter: Duration{24 * time.Hour},
		Timeout: Duration{15 * time.Second}, MaxInFlight: 4}
}

func defaultAlerts() Alerts { return Alerts{Interval: Duration{30 * time.Second}} }

// validateEvents checks [webhooks], [alerts] and the [[alert]] rules.
func (c *Config) validateEvents(bad func(string, ...any)) {
	w := &c.Webhooks
	if len(w.RetrySchedule) == 0 {
		bad("webhooks.retry_schedule is empty")
	}
	for _, d := range w.RetrySchedule {
		if d.Duration <= 0 {
			bad("webhooks.retry_schedule: %s is not positive", d)
		}
	}
	if w.DisableAfter.Duration <= 0 || w.Timeout.Duration <= 0 || w.MaxInFlight <= 0 {
		bad("webhooks.disable_after, timeout and max_in_flight must be positive")
	}
	if c.Alerts.Interval.Duration <= 0 {
		bad("alerts.interval must be positive")
	}
	seen := map[string]bool{}
	for i := range c.AlertRules {
		r := &c.AlertRules[i]
		where := fmt.Sprintf("alert %d (%s)", i+1, r.Name)
		if r.Name == "" || strings.ContainsAny(r.Name, " \t/") {
			bad("%s: needs a name without spaces or slashes", where)
		}
		if seen[r.Name] {
			bad("%s: name used twice", where)
		}
		seen[r.Name] = true
		switch r.Kind {
		case AlertDeferralRate:
			if r.Destination == "" {
				bad("%s: deferral_rate needs a destination (a domain, provider:NAME or *)", where)
			}
			if r.Threshold <= 0 || r.Threshold > 100 {
				bad("%s: threshold is a percentage above 0", where)
			}
			if r.Window.Duration <= 0 {
				bad("%s: needs a window", where)
			}
			if r.MinAttempts <= 0 {
				r.MinAttempts = 10
			}
		case AlertDeadLetters:
			if r.Threshold < 1 || r.Window.Duration <= 0 {
				bad("%s: dead_letters needs a threshold of at least 1 and a window", where)
			}
		case AlertOldestQueued:
			if r.Age.Duration <= 0 {
				bad("%s: oldest_queued needs an age", where)
			}
		default:
			bad("%s: kind %q: want deferral_rate, oldest_queued or dead_letters", where, r.Kind)
		}
		switch r.Action {
		case "":
		case ActionThrottle:
			if r.Kind != AlertDeferralRate || r.Destination == "" {
				bad("%s: throttle acts on a deferral_rate rule's destination", where)
			}
			if r.Fraction == 0 {
				r.Fraction = 0.5
			}
			if r.Fraction <= 0 || r.Fraction >= 1 {
				bad("%s: fraction must be between 0 and 1", where)
			}
		case ActionHoldLane:
			switch r.Lane {
			case "high", "normal", "low":
			default:
				bad("%s: hold_lane needs lane = high, normal or low", where)
			}
		default:
			bad("%s: action %q: want throttle or hold_lane", where, r.Action)
		}
	}
}
