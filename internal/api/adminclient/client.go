// Package adminclient is the admin socket's client, what the CLI and
// sendmail use: it checks the socket's owner and the peer's credentials
// before trusting it, and decodes error bodies (api.ErrorBody). The
// request and response types it carries live in internal/api.
package adminclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"syscall"
	"time"

	"github.com/posthorn/posthorn/internal/api"
)

// Client talks to a running posthorn's admin socket.
type Client struct {
	hc *http.Client
}

// NewClient returns a client for the admin socket at path. Before each
// connection it checks that the socket is one posthorn could have made for
// this user: owned by this user or root, mode 0600, and (on Linux) served
// by a process of this user or root. Otherwise another local user may have
// put their own socket there to capture what the CLI sends (passwords given
// to "user add", API keys in answers).
func NewClient(socket string) *Client {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		if err := checkSocket(socket); err != nil {
			return nil, err
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, "unix", socket)
		if err != nil {
			return nil, err
		}
		if err := checkPeer(c, socket); err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	}}
	return &Client{hc: &http.Client{Transport: tr, Timeout: 5 * time.Minute}}
}

// RawBody is a request body sent as it is, not as JSON.
type RawBody struct {
	ContentType string
	Data        []byte
}

// Do sends a request (body marshalled as JSON when not nil, a RawBody as
// it is) and decodes the answer into out (when not nil). Error answers
// become Go errors with the server's message.
func (c *Client) Do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	var rd io.Reader
	contentType := "application/json"
	if raw, ok := body.(RawBody); ok {
		rd, contentType = bytes.NewReader(raw.Data), raw.ContentType
	} else if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	u := "http://posthorn" + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := c.hc.Do(req)
	var unsafe *UnsafeSocketError
	if errors.As(err, &unsafe) {
		return unsafe
	}
	if err != nil {
		return fmt.Errorf("cannot reach posthorn's admin socket (is the server running with this --data-dir?): %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var eb api.ErrorBody
		if json.Unmarshal(data, &eb) == nil && eb.Error.Message != "" {
			return &StatusError{Status: resp.StatusCode, Code: eb.Error.Code, Message: eb.Error.Message}
		}
		return &StatusError{Status: resp.StatusCode, Message: "server answered " + resp.Status}
	}
	if out == nil {
		return nil
	}
	if raw, ok := out.(*json.RawMessage); ok {
		*raw = data
		return nil
	}
	return json.Unmarshal(data, out)
}

// UnsafeSocketError is a refusal to talk to an admin socket that someone
// other than this user (or root) could have made.
type UnsafeSocketError struct {
	Path, Problem string
}

func (e *UnsafeSocketError) Error() string {
	return fmt.Sprintf("refusing to use the admin socket %s: %s; another local user may have replaced it "+
		"(check who can write its directory, remove it and restart posthorn)", e.Path, e.Problem)
}

// checkSocket checks the socket file's type, owner and mode. A missing
// socket is left to the dial (the usual "is the server running?" error).
func checkSocket(path string) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return &UnsafeSocketError{path, "it is not a socket (" + fi.Mode().Type().String() + ")"}
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && !trustedUID(st.Uid) {
		return &UnsafeSocketError{path, fmt.Sprintf("it is owned by uid %d, not by you (uid %d) or root", st.Uid, os.Getuid())}
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return &UnsafeSocketError{path, fmt.Sprintf("its mode is %04o, not 0600 as posthorn makes it", perm)}
	}
	return nil
}

// trustedUID: this user or root.
func trustedUID(uid uint32) bool { return uid == 0 || int64(uid) == int64(os.Getuid()) }

// IsNotFound reports whether err is the server's "not found" answer.
func IsNotFound(err error) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Status == http.StatusNotFound
}
