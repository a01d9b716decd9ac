package api

import (
	"context"
	"errors"
	"time"
)

// Reputation is what the sender reputation endpoints read: source pools
// with their warm-up state, blocklist checks, DMARC report summaries.
// Nil functions answer 404 (the feature is not configured).
type Reputation struct {
	Pools          func() any
	BlocklistCheck func(ctx context.Context) (any, error)
	DMARC          func(ctx context.Context, domain string, since time.Time) (any, error)
}

// ErrBlocklistsOff is returned by BlocklistCheck when monitoring is off.
var ErrBlocklistsOff = errors.New("blocklist monitoring is off: set [blocklists] enabled = true with ip_zones or domain_zones")

// ParseSince reads an RFC 3339 time or a duration back from now; empty
// means the last 30 days.
func ParseSince(s string) (time.Time, bool) {
	if s == "" {
		return time.Now().Add(-30 * 24 * time.Hour), true
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, true
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, true
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return time.Now().Add(-d), true
	}
	return time.Time{}, false
}
