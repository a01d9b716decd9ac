package server

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/posthorn/posthorn/internal/delivery"
	"github.com/posthorn/posthorn/internal/metrics"
	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/tenant"
)

// startMetrics builds the Prometheus collector over the store and the
// scheduler, starts the unauthenticated metrics listener when
// metrics_listen is set, and keeps the handler the HTTP listener serves
// at /metrics behind metricsAllowed.
//
// Decision: /metrics on the HTTP listener (which may face the internet,
// beside the public API) answers loopback clients without credentials and
// everyone else only with an API key that has the admin scope; the
// figures name destinations and volumes, never tenants or addresses. The
// metrics listener is meant for a private address and asks for nothing.
// A reverse proxy on the same machine makes every client look like
// loopback: expose /metrics through it only deliberately.
func (s *Server) startMetrics(dl *delivery.Deliverer) error {
	obs, ok := s.st.(store.Observer)
	if !ok {
		return fmt.Errorf("metrics: the store (%T) cannot be observed", s.st)
	}
	s.metrics = metrics.New(metrics.Config{
		Store: obs, Sched: s.sched, Log: s.log.With("part", "metrics"),
		Destination: func(domain, provider string) string {
			if d := dl.Destination(domain); d != domain || provider == "" {
				return d
			}
			return "provider:" + provider
		},
		SuppressionReason: func(tenantID, addr string) string {
			x, _ := s.sup.Check(tenantID, addr)
			return x.Reason
		},
		WebhookOutboxDepth: func() int {
			n, err := s.st.WebhookOutboxDepth(context.Background())
			if err != nil {
				s.log.Error("metrics: webhook outbox depth", "err", err)
			}
			return n
		},
		DNS: func() metrics.DNSStats {
			st := s.res.Stats()
			return metrics.DNSStats{Queries: st.Queries, Retransmits: st.Retransmits, Failures: st.Failures}
		},
		Blocklists: func() []metrics.BlocklistResult {
			var out []metrics.BlocklistResult
			for _, l := range s.BlocklistListings() {
				out = append(out, metrics.BlocklistResult{List: l.List, Target: l.Target, Listed: l.Listed})
			}
			return out
		},
	})
	s.metrics.Start()
	h := s.metrics.Handler()
	s.metricsH = metrics.Protect(h, s.metricsAllowed)
	if s.cfg.MetricsListen == "" {
		return nil
	}
	ln, err := net.Listen("tcp", s.cfg.MetricsListen)
	if err != nil {
		return fmt.Errorf("metrics listen %s: %w", s.cfg.MetricsListen, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	s.metricsSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go s.metricsSrv.Serve(ln)
	s.log.Info("metrics listening", "addr", ln.Addr().String())
	return nil
}

// metricsAllowed says whether r may read /metrics on the HTTP listener:
// from loopback, or with an API key that has the admin scope.
func (s *Server) metricsAllowed(r *http.Request) bool {
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
			return true
		}
	}
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || strings.TrimSpace(token) == "" {
		return false
	}
	key, err := s.tenants.CheckAPIKey(r.Context(), strings.TrimSpace(token))
	return err == nil && tenant.HasScope(key, tenant.ScopeAdmin)
}

// stopMetrics stops the metrics listener and the collector.
func (s *Server) stopMetrics(ctx context.Context) error {
	var err error
	if s.metricsSrv != nil {
		err = s.metricsSrv.Shutdown(ctx)
	}
	if s.metrics != nil {
		s.metrics.Stop()
	}
	return err
}
