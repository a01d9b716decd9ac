package submission

import (
	"context"
	"net/netip"
	"time"
)

// authFailedEvent writes an auth_failed event for a wrong password. The
// lockout bounds how many a client can cause, so this is no write
// amplifier; the write waits at most a few seconds and a failure is only
// logged.
func (s *Server) authFailedEvent(ip netip.Addr, username string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.tenants.RecordAuthFailure(ctx, "smtp", ip.String(), username); err != nil {
		s.log.Warn("record auth_failed event", "err", err)
	}
}
