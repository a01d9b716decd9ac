package ops

import (
	"strings"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/queue"
	"github.com/posthorn/posthorn/internal/shaping"
	"github.com/posthorn/posthorn/internal/store"
)

// TestExplainReady checks the reasons of a due delivery that still waits
// in its destination's ready list, in the order they apply: a pause, the
// rate limit, the destination's connections, all connections, higher
// lanes, its own lane, and none (ready). The end-to-end test covers the
// reasons of deliveries not yet due.
func TestExplainReady(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	d := store.Delivery{ID: 7, Recipient: "a@x.test", Domain: "x.test", Lane: store.LaneLow, State: store.Queued}
	base := queue.Inspection{Place: queue.PlaceReady, Destination: "provider:google", MaxConnections: 500, TotalConnections: 3,
		Throttle: shaping.State{MaxConns: 20, Conns: 4, RatePerMinute: 120}, Connections: 2}
	cases := []struct {
		name   string
		tweak  func(*queue.Inspection)
		reason string
		detail string
		limit  float64
		cur    float64
		ahead  int
	}{
		{"paused", func(in *queue.Inspection) {
			in.Throttle.PausedUntil, in.Throttle.Reason = now.Add(90*time.Second), "421 4.7.28 slow down"
			in.RateWait = time.Second
		}, WhyPaused, `provider:google paused until 2026-12-03T12:01:30Z (in 1m30s) after reply "421 4.7.28 slow down"`, 0, 0, 0},
		{"rate", func(in *queue.Inspection) { in.RateWait, in.SentLastMin = 500*time.Millisecond, 118 },
			WhyRateLimit, "rate limit of 120 messages/minute reached at provider:google (118 sent in the last minute): next send in 500ms", 120, 118, 0},
		{"destination connections", func(in *queue.Inspection) { in.Connections = 4 },
			WhyConnectionLimit, "connection limit reached at provider:google: 4 of 4 connections open and busy", 4, 4, 0},
		{"an idle connection takes it", func(in *queue.Inspection) { in.Connections, in.Idle = 4, 1 }, WhyReady, "due now", 0, 0, 0},
		{"all connections", func(in *queue.Inspection) { in.TotalConnections = 500 },
			WhyConnectionLimit, "connection limit reached for all destinations: 500 of 500 open", 500, 500, 0},
		{"higher lanes", func(in *queue.Inspection) { in.AheadHigher, in.AheadInLane = 12, 3 },
			WhyBehindHigher, "lane low behind 12 higher-priority deliveries to provider:google", 0, 0, 12},
		{"own lane", func(in *queue.Inspection) { in.AheadInLane = 3 },
			WhyBehindInLane, "3 deliveries ahead of it in lane low to provider:google", 0, 0, 3},
		{"ready", func(*queue.Inspection) {}, WhyReady, "due now: the next free connection to provider:google takes it", 0, 0, 0},
	}
	for _, c := range cases {
		in := base
		c.tweak(&in)
		it := explain(d, in, store.Event{}, now)
		if it.Reason != c.reason || !strings.HasPrefix(it.Detail, c.detail) || it.Limit != c.limit || it.Current != c.cur || it.Ahead != c.ahead {
			t.Errorf("%s: %+v", c.name, it)
		}
	}
}
