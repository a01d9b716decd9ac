package ops

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/posthorn/posthorn/internal/queue"
	"github.com/posthorn/posthorn/internal/store"
)

// DestinationRow is one destination as operators see it: the
// scheduler's live state (limits, connections, pause) merged with the
// store's pending deliveries, so a destination with mail waiting is
// listed even when the scheduler holds no state for it (all of its
// mail deferred on timers, or nothing tried since a restart).
type DestinationRow struct {
	queue.DestinationInfo
	Domains       []string  `json:"domains"`      // recipient domains with pending mail here
	Pending       int       `json:"pending"`      // pending deliveries in the store (the tenant's, for a tenant's key)
	LastFailure   string    `json:"last_failure"` // the latest attempted pending delivery's reply or error text
	LastFailureAt time.Time `json:"last_failure_at,omitzero"`
}

// Destinations merges live (the scheduler's destinations) with the
// pending deliveries of tenantID ("" every tenant). With a tenant, only
// destinations where it has pending mail are listed, and the counts of
// every tenant's mail (ready, deferred, connections, sent) are left out:
// the pause and limits stay, as they say why its mail waits.
func (q *QueueOps) Destinations(ctx context.Context, tenantID string, live []queue.DestinationInfo) ([]DestinationRow, error) {
	rows := map[string]*DestinationRow{}
	if tenantID == "" {
		for _, d := range live {
			rows[d.Key] = &DestinationRow{DestinationInfo: d, Domains: []string{}}
		}
	}
	obs, ok := q.Store.(store.Observer)
	if !ok {
		return nil, fmt.Errorf("destinations: the store cannot count pending mail by domain")
	}
	pend, err := obs.PendingByDomain(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	liveByKey := map[string]queue.DestinationInfo{}
	for _, d := range live {
		liveByKey[d.Key] = d
	}
	for _, p := range pend {
		key := p.Domain
		if q.Inspect != nil {
			key = q.Inspect.Destination(p.Domain)
		}
		r := rows[key]
		if r == nil {
			info := queue.DestinationInfo{Key: key, Recent: map[string]int{}}
			if l, ok := liveByKey[key]; ok {
				info.Throttle, info.Paused, info.Manual = l.Throttle, l.Paused, l.Manual
			}
			r = &DestinationRow{DestinationInfo: info, Domains: []string{}}
			rows[key] = r
		}
		r.Domains = append(r.Domains, p.Domain)
		r.Pending += p.Pending
		if p.LastFailure != "" && p.LastAttemptAt.After(r.LastFailureAt) {
			r.LastFailure, r.LastFailureAt = p.LastFailure, p.LastAttemptAt
		}
	}
	out := make([]DestinationRow, 0, len(rows))
	for _, r := range rows {
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}
