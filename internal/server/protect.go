package server

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"time"

	"github.com/posthorn/posthorn/internal/abuse"
	"github.com/posthorn/posthorn/internal/accept"
	"github.com/posthorn/posthorn/internal/queue"
	"github.com/posthorn/posthorn/internal/queue/ops"
	"github.com/posthorn/posthorn/internal/scan"
	"github.com/posthorn/posthorn/internal/sendpolicy"
	"github.com/posthorn/posthorn/internal/store"
)

// protection builds the accept checks that guard what leaves (content
// policy, quotas and the anomaly detector, content scanning), in the order
// they run: the cheap ones first, the scanner's round trip last.
func (s *Server) protection(ctx context.Context, unsubLanes map[store.Lane]bool) ([]accept.Check, error) {
	cfg := &s.cfg
	tenantID := func(what, nameOrID string) (string, error) {
		t, err := s.tenants.Resolve(ctx, nameOrID)
		if err != nil {
			return "", fmt.Errorf("%s: %w", what, err)
		}
		return t.ID, nil
	}

	pc := &sendpolicy.Check{Default: sendpolicy.Policy{MaxSize: cfg.Policy.MaxMessageSize, BlockExecutables: cfg.Policy.BlockExecutables,
		RequireUnsubscribe: cfg.Policy.RequireListUnsubscribe}, Tenants: map[string]sendpolicy.Policy{},
		AddsUnsubscribe: func(l store.Lane) bool { return unsubLanes[l] }}
	for _, t := range cfg.Policy.Tenants {
		id, err := tenantID("policy.tenant", t.Tenant)
		if err != nil {
			return nil, err
		}
		p := pc.Default
		if t.MaxMessageSize != nil {
			p.MaxSize = *t.MaxMessageSize
		}
		if t.BlockExecutables != nil {
			p.BlockExecutables = *t.BlockExecutables
		}
		if t.RequireListUnsubscribe != nil {
			p.RequireUnsubscribe = *t.RequireListUnsubscribe
		}
		pc.Tenants[id] = p
	}
	checks := []accept.Check{pc}

	a := &cfg.Abuse
	ac := abuse.Config{Rules: abuse.Rules{Hour: a.Hour.Duration, Window: a.Window.Duration, BaselineHours: a.BaselineHours,
		Factor: a.Factor, MinVolume: a.MinVolume, MaxDomains: a.MaxRecipientDomains,
		BounceShare: a.BounceShare, BounceMin: a.BounceMinRecipients, BounceHours: a.BounceHours},
		UserQuota: abuse.Quota{PerHour: a.UserQuotaHour, PerDay: a.UserQuotaDay}, TenantQuota: abuse.Quota{PerHour: a.TenantQuotaHour, PerDay: a.TenantQuotaDay},
		Users: map[string]abuse.Quota{}, Tenants: map[string]abuse.Quota{}}
	for _, q := range a.Quotas {
		qq := abuse.Quota{PerHour: q.Hour, PerDay: q.Day}
		switch {
		case q.User != "":
			ac.Users["smtp:"+q.User] = qq
		case q.APIKey != "":
			ac.Users["apikey:"+q.APIKey] = qq
		default:
			id, err := tenantID("abuse.quota", q.Tenant)
			if err != nil {
				return nil, err
			}
			ac.Tenants[id] = qq
		}
	}
	s.guard = abuse.New(ac, s.st, s.log.With("part", "abuse"), time.Now)
	if err := s.guard.Load(ctx); err != nil {
		return nil, err
	}
	if err := s.guard.UseQuotaFile(filepath.Join(cfg.DataDir, "quotas.json")); err != nil {
		return nil, err
	}
	checks = append(checks, s.guard)

	if sc := &cfg.Scan; sc.RspamdURL != "" {
		pol := func(fail, action string, base scan.Policy) scan.Policy {
			if fail != "" {
				base.FailClosed = fail == "closed"
			}
			if action != "" {
				base.HoldRejected = action == "hold"
			}
			return base
		}
		s.scan = &scan.Check{Scanner: &scan.Rspamd{URL: sc.RspamdURL,
			// Connections are kept for every concurrent scan (the default
			// keeps two, and reconnects for the rest).
			HTTP: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, IdleConnTimeout: time.Minute}}}, Timeout: sc.Timeout.Duration,
			Default: pol(sc.Fail, sc.ActionReject, scan.Policy{}), Tenants: map[string]scan.Policy{}, Events: s.st,
			Log: s.log.With("part", "scan"), Now: time.Now}
		for _, t := range sc.Tenants {
			id, err := tenantID("scan.tenant", t.Tenant)
			if err != nil {
				return nil, err
			}
			p := pol(t.Fail, t.ActionReject, s.scan.Default)
			p.Off = t.Off
			s.scan.Tenants[id] = p
		}
		checks = append(checks, s.scan)
		s.log.Info("content scanning on", "rspamd", sc.RspamdURL, "fail", sc.Fail, "action_reject", sc.ActionReject)
	}
	return checks, nil
}

// onFailed tells the detector about hard bounces (the scheduler's
// OnFailed, next to the DSN for the sender).
func (s *Server) onFailed(messageID string, failed []queue.FailedRcpt) {
	s.sendDSN(messageID, failed)
	if s.guard == nil {
		return
	}
	n, tenant := 0, ""
	for _, f := range failed {
		if f.Outcome.State == store.Bounced {
			n++
		}
	}
	if n > 0 {
		if m, err := s.st.GetMessage(context.Background(), "", messageID, false); err == nil {
			tenant = m.TenantID
		}
		s.guard.HardBounced(context.Background(), messageID, tenant, n)
	}
}

// abuseAdmin serves /admin/v1/abuse on the admin socket.
func (s *Server) abuseAdmin(qo *ops.QueueOps) http.Handler {
	a := &abuse.Admin{Guard: s.guard, ReleaseMessages: func(ctx context.Context, ids []string) (int, error) {
		res, err := qo.Release(ctx, ops.Selection{IDs: ids})
		if err != nil {
			return 0, err
		}
		return res.Changed, nil
	}}
	if s.scan != nil {
		a.ScanStats = func() any { return s.scan.Stats() }
	}
	return a.Handler()
}
