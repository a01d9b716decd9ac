package adminclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/posthorn/posthorn/internal/api"
)

// Download sends a request without a body and copies a successful answer
// to w as it arrives (a backup), with no overall timeout. It returns the
// bytes copied.
func (c *Client) Download(ctx context.Context, method, path string, w io.Writer) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://posthorn"+path, nil)
	if err != nil {
		return 0, err
	}
	hc := *c.hc
	hc.Timeout = 0 // a large backup takes as long as it takes
	resp, err := hc.Do(req)
	var unsafe *UnsafeSocketError
	if errors.As(err, &unsafe) {
		return 0, unsafe
	}
	if err != nil {
		return 0, fmt.Errorf("cannot reach posthorn's admin socket (is the server running with this --data-dir?): %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		var eb api.ErrorBody
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if json.Unmarshal(data, &eb) == nil && eb.Error.Message != "" {
			return 0, fmt.Errorf("%s", eb.Error.Message)
		}
		return 0, fmt.Errorf("server answered %s", resp.Status)
	}
	return io.Copy(w, resp.Body)
}
