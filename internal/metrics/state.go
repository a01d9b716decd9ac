package metrics

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"

	"github.com/posthorn/posthorn/internal/store"
)

// savedState is the counters as the store keeps them between starts
// (JSON: a float64 and a uint64 read back exactly).
type savedState struct {
	Version int `json:"version"`
	// What the counters were made with; a state made with others is not
	// used (the history is read again).
	TopDestinations int       `json:"top_destinations"`
	Buckets         []float64 `json:"buckets"`

	AttemptCur int64 `json:"attempt_cursor"`
	EventCur   int64 `json:"event_cursor"`
	MessageCur int64 `json:"message_cursor"`

	Attempts   map[string]map[string]uint64 `json:"attempts"` // destination label -> class -> n
	Labelled   []string                     `json:"labelled"`
	Hard       uint64                       `json:"hard"`
	Soft       uint64                       `json:"soft"`
	Complaints uint64                       `json:"complaints"`
	DeadTotal  uint64                       `json:"dead_total"`
	Accepted   map[string]uint64            `json:"accepted"`
	Suppressed map[string]uint64            `json:"suppressed"`
	Latency    map[string]savedHistogram    `json:"latency"`
}

type savedHistogram struct {
	Counts []uint64 `json:"counts"`
	Sum    float64  `json:"sum"`
	N      uint64   `json:"n"`
}

const stateVersion = 1

// state returns the counters to save, or nil while the history is not
// read yet. Caller holds c.mu.
func (c *Collector) state() *savedState {
	if !c.c.loaded {
		return nil
	}
	s := &savedState{Version: stateVersion, TopDestinations: c.cfg.TopDestinations, Buckets: LatencyBuckets,
		AttemptCur: c.c.attemptCur, EventCur: c.c.eventCur, MessageCur: c.c.messageCur,
		Attempts: c.c.attempts, Hard: c.c.hard, Soft: c.c.soft, Complaints: c.c.complaints, DeadTotal: c.c.deadTotal,
		Accepted: c.c.accepted, Suppressed: c.c.suppressed, Latency: map[string]savedHistogram{}}
	for d := range c.c.labelled {
		s.Labelled = append(s.Labelled, d)
	}
	sort.Strings(s.Labelled)
	for l, h := range c.c.latency {
		s.Latency[string(l)] = savedHistogram{Counts: h.counts, Sum: h.sum, N: h.n}
	}
	return s
}

// save stores the counters when they moved since the last save.
func (c *Collector) save(ctx context.Context) error {
	c.mu.Lock()
	s := c.state()
	var b []byte
	var err error
	if s != nil && [3]int64{s.AttemptCur, s.EventCur, s.MessageCur} != c.savedAt {
		b, err = json.Marshal(s) // under the lock: the maps are live
	}
	c.mu.Unlock()
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	if b == nil {
		return nil
	}
	if err := c.cfg.Store.SaveMetricsState(ctx, b); err != nil {
		return err
	}
	c.mu.Lock()
	c.savedAt = [3]int64{s.AttemptCur, s.EventCur, s.MessageCur}
	c.mu.Unlock()
	return nil
}

// restore starts the counters from the saved state, when there is one
// that fits; otherwise they stay empty and the history is read. Caller
// holds c.mu.
func (c *Collector) restore(ctx context.Context) error {
	b, err := c.cfg.Store.MetricsState(ctx)
	if err != nil {
		return err
	}
	if b == nil {
		c.cfg.Log.Info("metrics: no saved counters, reading the whole history")
		return nil
	}
	var s savedState
	if err := json.Unmarshal(b, &s); err != nil {
		c.cfg.Log.Warn("metrics: saved counters unreadable, reading the whole history", "err", err)
		return nil
	}
	if s.Version != stateVersion || s.TopDestinations != c.cfg.TopDestinations || !slices.Equal(s.Buckets, LatencyBuckets) {
		c.cfg.Log.Info("metrics: saved counters made with other settings, reading the whole history",
			"version", s.Version, "top_destinations", s.TopDestinations)
		return nil
	}
	for l, h := range s.Latency {
		if len(h.Counts) != len(LatencyBuckets)+1 {
			c.cfg.Log.Warn("metrics: saved counters unreadable, reading the whole history", "lane", l, "buckets", len(h.Counts))
			return nil
		}
	}
	x := &c.c
	x.attemptCur, x.eventCur, x.messageCur = s.AttemptCur, s.EventCur, s.MessageCur
	x.hard, x.soft, x.complaints, x.deadTotal = s.Hard, s.Soft, s.Complaints, s.DeadTotal
	for d, m := range s.Attempts {
		x.attempts[d] = m
	}
	for _, d := range s.Labelled {
		x.labelled[d] = true
	}
	for k, n := range s.Accepted {
		x.accepted[k] = n
	}
	for k, n := range s.Suppressed {
		x.suppressed[k] = n
	}
	for l, h := range s.Latency {
		x.latency[store.Lane(l)] = &histogram{counts: h.Counts, sum: h.Sum, n: h.N}
	}
	x.rawDest, x.loaded = nil, true
	c.savedAt = [3]int64{s.AttemptCur, s.EventCur, s.MessageCur}
	return nil
}
