package smtpd

// Drain starts a graceful shutdown while the listener stays open: new
// connections are answered "421 4.3.2 ... shutting down" and closed (a
// client retries later, or another MX, instead of getting "connection
// refused" mid-restart), idle sessions are told the same, and sessions in
// DATA finish their message. Shutdown then closes the listener.
func (s *Server) Drain() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.draining = true
	for c := range s.conns {
		c.shutdown()
	}
}
