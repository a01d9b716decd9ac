package server

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/posthorn/posthorn/internal/submission"
)

// stopGrace is how long, after deliveries have finished (or the shutdown
// timeout passed), sessions still in DATA get to commit before they are cut.
const stopGrace = 5 * time.Second

// Shutdown stops posthorn gracefully (SIGTERM): it stops taking mail (new
// SMTP sessions get 421 4.3.2, HTTP requests 503) while the listeners stay
// open, lets the deliveries in flight finish for up to shutdown_timeout,
// then stops everything. Deliveries still being sent at the deadline are
// cancelled and recorded as deferred (or, if even that cannot be written,
// left leased for the next start's recovery), so a deadline loses
// nothing. It returns an error only for a failure beyond the deadline (the
// store could not be closed).
func (s *Server) Shutdown() error {
	timeout := s.current().ShutdownTimeout.Duration
	s.log.Info("shutting down: refusing new mail, waiting for deliveries in flight", "timeout", timeout.String())
	s.ops.draining.Store(true)
	for _, l := range []*submission.Server{s.smtp, s.smtps} {
		if l != nil {
			l.Drain()
		}
	}
	if s.inbound != nil {
		s.inbound.Drain()
	}
	if s.sched != nil {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		err := s.sched.Drain(ctx)
		cancel()
		if err != nil {
			s.log.Warn("shutdown timeout reached with deliveries in flight; they are interrupted and retried after the next start", "timeout", timeout.String())
		} else {
			s.log.Info("deliveries in flight finished")
		}
	}
	// Stop cancels what is still in progress; the grace lets interrupted
	// deliveries record their outcome and sessions in DATA commit.
	ctx, cancel := context.WithTimeout(context.Background(), stopGrace)
	defer cancel()
	err := s.Stop(ctx)
	if err != nil {
		s.log.Warn("stop", "err", err)
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			err = nil // sessions cut or deliveries left leased: logged, nothing lost
		}
	}
	s.log.Info("posthorn stopped")
	return err
}

// refuseWhileDraining answers 503 to HTTP requests once shutdown began,
// so clients (and load balancers polling /healthz) go elsewhere.
func (s *Server) refuseWhileDraining(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.ops.draining.Load() {
			w.Header().Set("Connection", "close")
			w.Header().Set("Retry-After", "30")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(`{"error":{"code":"shutting_down","message":"posthorn is shutting down; try again later"}}` + "\n"))
			return
		}
		h.ServeHTTP(w, r)
	})
}
