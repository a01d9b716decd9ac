package adminclient

import (
	"context"
	"net"
	"net/http"
	"time"
)

// NewSendmailClient returns a client for the sendmail socket, which any
// local user may be allowed to use (it only queues mail).
func NewSendmailClient(socket string) *Client {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socket)
	}}
	return &Client{hc: &http.Client{Transport: tr, Timeout: 5 * time.Minute}}
}

// StatusError is an error answer of the server.
type StatusError struct {
	Status  int
	Code    string
	Message string
}

func (e *StatusError) Error() string { return e.Message }
