package inbound

// Drain answers new sessions "421 4.3.2 shutting down" (senders of bounces
// retry later) while the listener stays open; Stop closes it.
func (s *Server) Drain() { s.srv.Drain() }
