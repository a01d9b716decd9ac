package adminclient

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/posthorn/posthorn/internal/api"
)

// Stream follows a server-sent event stream on the admin socket, calling
// fn with each event's id and data, until ctx ends, fn fails or the
// server ends the stream (nil). lastID, when set, resumes after it.
func (c *Client) Stream(ctx context.Context, path string, query url.Values, lastID string, fn func(id string, data []byte) error) error {
	u := "http://posthorn" + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	hc := *c.hc
	hc.Timeout = 0 // a stream lasts as long as the follower wants
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach posthorn's admin socket (is the server running with this --data-dir?): %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		data, _ := io.ReadAll(resp.Body)
		var eb api.ErrorBody
		if json.Unmarshal(data, &eb) == nil && eb.Error.Message != "" {
			return fmt.Errorf("%s", eb.Error.Message)
		}
		return fmt.Errorf("server answered %s", resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var id string
	var data []byte
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if data != nil {
				if err := fn(id, data); err != nil {
					return err
				}
			}
			id, data = "", nil
		case strings.HasPrefix(line, ":"): // comment: heartbeat
		case strings.HasPrefix(line, "id:"):
			id = strings.TrimSpace(line[3:])
		case strings.HasPrefix(line, "data:"):
			if data != nil {
				data = append(data, '\n')
			}
			data = append(data, strings.TrimPrefix(line[5:], " ")...)
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return sc.Err()
}
