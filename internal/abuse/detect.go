package abuse

import (
	"fmt"
	"sort"
	"time"
)

// Rules say when a sender's traffic looks like a compromised account.
type Rules struct {
	// Hour is the length of an hour for quotas and baselines (1h; tests
	// compress it to seconds).
	Hour time.Duration
	// Window is how far back the current rate is measured.
	Window time.Duration
	// BaselineHours is how many hours of history the baseline covers
	// (168: a week).
	BaselineHours int
	// Factor: the current rate (scaled to an hour) above Factor times the
	// baseline (the p95 of the sender's hourly counts) is a jump (0: off)...
	Factor float64
	// ... when the window holds at least MinVolume messages.
	MinVolume int
	// MaxDomains: more distinct recipient domains than this within one
	// window is suspicious on its own (0: off).
	MaxDomains int
	// BounceShare: hard bounces above this share of the recipients the
	// sender was accepted for over the last BounceHours hours, once there
	// are at least BounceMin recipients (0 share: off).
	BounceShare float64
	BounceMin   int
	BounceHours int
}

// Alert is why a sender was flagged, with the figures.
type Alert struct {
	Principal string    `json:"principal"`
	Tenant    string    `json:"tenant"`
	Rule      string    `json:"rule"` // rate_jump, recipient_domains, hard_bounce_share
	At        time.Time `json:"at"`
	// rate_jump
	WindowCount   int     `json:"window_count,omitempty"`
	Window        string  `json:"window"`
	RatePerHour   float64 `json:"rate_per_hour,omitempty"`
	BaselineP95   float64 `json:"baseline_p95_per_hour,omitempty"`
	BaselineHours int     `json:"baseline_hours,omitempty"`
	Factor        float64 `json:"factor,omitempty"`
	// recipient_domains
	Domains    int `json:"recipient_domains,omitempty"`
	MaxDomains int `json:"max_domains,omitempty"`
	// hard_bounce_share
	Recipients  int     `json:"recipients,omitempty"`
	HardBounces int     `json:"hard_bounces,omitempty"`
	Share       float64 `json:"hard_bounce_share,omitempty"`
	MaxShare    float64 `json:"max_hard_bounce_share,omitempty"`
	Hours       int     `json:"over_hours,omitempty"`
}

// history is one sender's recent traffic.
type history struct {
	first   time.Time
	recent  []time.Time          // accepted messages within the window, oldest first
	hours   map[int64]int        // messages per hour index, over the baseline
	domains map[string]time.Time // recipient domain -> last seen
	rcpts   map[int64]int        // recipients accepted per hour index, over BounceHours
	bounces map[int64]int        // hard bounces per hour index
	p95At   int64                // the hour index p95 was computed for
	p95     float64
	p95OK   bool // at least one complete hour of history
}

func newHistory(now time.Time) *history {
	return &history{first: now, hours: map[int64]int{}, domains: map[string]time.Time{}, rcpts: map[int64]int{},
		bounces: map[int64]int{}, p95At: -1}
}

// maxRecent bounds the timestamps kept for one sender's window.
const maxRecent = 200000

// observe adds one message to the history and returns an alert when the
// traffic now breaks a rule.
func (h *history) observe(r *Rules, now time.Time, domains []string) *Alert {
	cut := now.Add(-r.Window)
	i := 0
	for i < len(h.recent) && !h.recent[i].After(cut) {
		i++
	}
	h.recent = append(h.recent[i:], now)
	if len(h.recent) > maxRecent {
		h.recent = h.recent[len(h.recent)-maxRecent:]
	}
	hour := now.UnixNano() / int64(r.Hour)
	h.hours[hour]++
	h.rcpts[hour] += len(domains)
	for _, d := range domains {
		h.domains[d] = now
	}
	if r.MaxDomains > 0 && len(h.domains) > r.MaxDomains {
		for d, t := range h.domains {
			if !t.After(cut) {
				delete(h.domains, d)
			}
		}
		if len(h.domains) > r.MaxDomains {
			return &Alert{Rule: "recipient_domains", At: now, Window: r.Window.String(), Domains: len(h.domains), MaxDomains: r.MaxDomains}
		}
	}
	if h.p95At != hour {
		h.computeBaseline(r, hour)
	}
	n := len(h.recent)
	if !h.p95OK || n < r.MinVolume {
		return nil
	}
	rate := float64(n) * float64(r.Hour) / float64(r.Window)
	base := h.p95
	if base < 1 {
		base = 1 // a sender who sent nothing per hour may still send a little
	}
	if r.Factor > 0 && rate > r.Factor*base {
		return &Alert{Rule: "rate_jump", At: now, WindowCount: n, Window: r.Window.String(), RatePerHour: round2(rate),
			BaselineP95: h.p95, BaselineHours: r.BaselineHours, Factor: r.Factor}
	}
	return nil
}

// computeBaseline takes the p95 of the complete hours since the sender
// was first seen, at most BaselineHours back (hours without mail count as
// zero), and drops older hours.
func (h *history) computeBaseline(r *Rules, hour int64) {
	h.p95At = hour
	firstFull := h.first.UnixNano()/int64(r.Hour) + 1 // the first hour is partial
	from := max(firstFull, hour-int64(r.BaselineHours))
	for k := range h.hours {
		if k < hour-int64(r.BaselineHours) {
			delete(h.hours, k)
		}
	}
	if from >= hour {
		h.p95OK = false
		return
	}
	counts := make([]int, 0, hour-from)
	for k := from; k < hour; k++ {
		counts = append(counts, h.hours[k])
	}
	sort.Ints(counts)
	idx := (len(counts)*95+99)/100 - 1 // nearest rank
	h.p95, h.p95OK = float64(counts[max(idx, 0)]), true
}

// reset forgets the current window (after an operator's release), so
// the burst that was judged is not judged again.
func (h *history) reset() {
	h.recent = h.recent[:0]
	clear(h.domains)
}

// bounced adds hard bounces and returns an alert when their share of
// the sender's recipients over the last BounceHours breaks the rule.
func (h *history) bounced(r *Rules, now time.Time, n int) *Alert {
	hour := now.UnixNano() / int64(r.Hour)
	h.bounces[hour] += n
	if r.BounceShare <= 0 {
		return nil
	}
	from := hour - int64(max(r.BounceHours, 1)) + 1
	rc, bo := 0, 0
	for _, m := range []map[int64]int{h.rcpts, h.bounces} {
		for k := range m {
			if k < from {
				delete(m, k)
			}
		}
	}
	for _, v := range h.rcpts {
		rc += v
	}
	for _, v := range h.bounces {
		bo += v
	}
	if rc < r.BounceMin || rc == 0 {
		return nil
	}
	if share := float64(bo) / float64(rc); share > r.BounceShare {
		return &Alert{Rule: "hard_bounce_share", At: now, Window: (time.Duration(r.BounceHours) * r.Hour).String(), Recipients: rc,
			HardBounces: bo, Share: round2(share), MaxShare: r.BounceShare, Hours: r.BounceHours}
	}
	return nil
}

func round2(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }

func (a *Alert) summary() string {
	switch a.Rule {
	case "recipient_domains":
		return fmt.Sprintf("%d recipient domains within %s (max %d)", a.Domains, a.Window, a.MaxDomains)
	case "hard_bounce_share":
		return fmt.Sprintf("%d hard bounces of %d recipients (%.0f%%, max %.0f%%) over %d hours", a.HardBounces, a.Recipients, a.Share*100, a.MaxShare*100, a.Hours)
	}
	return fmt.Sprintf("%d messages within %s (%.0f/h) against a baseline p95 of %.0f/h (factor %.1f)", a.WindowCount, a.Window, a.RatePerHour, a.BaselineP95, a.Factor)
}
