package server

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/posthorn/posthorn/internal/api"
	"github.com/posthorn/posthorn/internal/delivery"
	"github.com/posthorn/posthorn/internal/events/alerts"
	"github.com/posthorn/posthorn/internal/events/webhook"
	"github.com/posthorn/posthorn/internal/tenant"
)

// startWebhooks starts the webhook sender. It resolves webhook hosts with
// posthorn's resolver (so --dns-server applies to them too).
func (s *Server) startWebhooks(ctx context.Context, res *delivery.Resolver) error {
	w := s.cfg.Webhooks
	sched := make([]time.Duration, len(w.RetrySchedule))
	for i, d := range w.RetrySchedule {
		sched[i] = d.Duration
	}
	guard := &webhook.Guard{AllowPrivate: w.AllowPrivateTargets,
		Resolve: func(ctx context.Context, host string) ([]netip.Addr, error) { return res.LookupIP(ctx, host) }}
	s.webhooks = webhook.New(webhook.Config{Schedule: sched, DisableAfter: w.DisableAfter.Duration, Timeout: w.Timeout.Duration,
		MaxInFlight: w.MaxInFlight, Guard: guard, Log: s.log.With("part", "webhooks")}, s.st)
	if w.AllowPrivateTargets {
		s.log.Warn("webhooks.allow_private_targets is on: webhooks may reach loopback and private addresses")
	}
	return s.webhooks.Start(ctx)
}

// startAlerts starts the alert evaluator when rules are configured: it
// restores firing alerts' actions on the scheduler before it starts.
func (s *Server) startAlerts(ctx context.Context, dl *delivery.Deliverer) error {
	if len(s.cfg.AlertRules) == 0 {
		return nil
	}
	name := s.cfg.Alerts.Tenant
	if name == "" {
		name = tenant.DefaultTenant
	}
	t, err := s.tenants.Resolve(ctx, name)
	if err != nil {
		return fmt.Errorf("alerts.tenant %q: %w", name, err)
	}
	a := alerts.New(alerts.Config{Rules: s.cfg.AlertRules, Interval: s.cfg.Alerts.Interval.Duration, TenantID: t.ID,
		Destination: dl.Destination, Log: s.log.With("part", "alerts")}, s.st, s.sched)
	if err := a.Restore(ctx); err != nil {
		return fmt.Errorf("alerts: %w", err)
	}
	if err := a.Start(ctx); err != nil {
		return err
	}
	s.alerts = a
	return nil
}

// alertsAPI is the alert service for the APIs (nil when none runs).
func (s *Server) alertsAPI() api.AlertService {
	if s.alerts == nil {
		return nil
	}
	return s.alerts
}
