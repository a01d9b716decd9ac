package server

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/posthorn/posthorn/internal/api/admin"
)

// startSendmail opens the sendmail socket ([sendmail] socket, mode
// socket_mode): it serves only POST /admin/v1/sendmail, the admin API's
// sendmail endpoint, so local users who may not use the admin socket (a
// web server's PHP mail(), cron jobs of other users) can queue mail as the
// sendmail tenant and do nothing else.
func (s *Server) startSendmail(adm *admin.Server) error {
	path := s.cfg.SendmailSocket()
	if path == "" {
		return nil
	}
	os.Remove(path) // a stale socket from a killed run
	ln, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("sendmail socket: %w", err)
	}
	if err := os.Chmod(path, s.cfg.SendmailSocketMode()); err != nil {
		ln.Close()
		return fmt.Errorf("sendmail socket: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("POST /admin/v1/sendmail", adm.SendmailHandler())
	s.sendmail = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go s.sendmail.Serve(ln)
	return nil
}
