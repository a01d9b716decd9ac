package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/api"
	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/testkit"
)

// post sends body to the API as it is (no re-encoding), with a
// Content-Length unless chunked, and returns the status, the headers and
// the raw answer.
func (in *Instance) post(t *testing.T, path string, body []byte, chunked bool) (int, http.Header, []byte) {
	t.Helper()
	var rd io.Reader = bytes.NewReader(body)
	if chunked {
		rd = io.MultiReader(rd) // hides the length: sent chunked
	}
	req, err := http.NewRequest("POST", "http://"+in.HTTP+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+in.Creds.APIKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, data
}

// wantError checks an error answer's status, code and (when given) field.
func wantError(t *testing.T, what string, status int, data []byte, wantStatus int, code, field string) {
	t.Helper()
	var e api.APIError
	json.Unmarshal(data, &e)
	if status != wantStatus || e.Error.Code != code || field != "" && e.Error.Field != field {
		t.Errorf("%s: %d %s, want %d %s (field %q)", what, status, data, wantStatus, code, field)
	}
}

// delivered returns what the MX received for rcpt.
func delivered(t *testing.T, in *Instance, mx *testkit.MXServer, id, rcpt string) string {
	t.Helper()
	if d := in.WaitFinal(id, 20*time.Second); d.Deliveries[0].State != store.Delivered {
		t.Fatalf("%s: %+v", rcpt, d.Deliveries[0])
	}
	for _, m := range mx.Messages() {
		for _, to := range m.To {
			if to == rcpt {
				return string(m.Data)
			}
		}
	}
	t.Fatalf("the MX has no message for %s", rcpt)
	return ""
}

// TestAPIRawMessages: the raw API keeps header and body apart whatever the
// line endings, and refuses what it cannot store faithfully.
func TestAPIRawMessages(t *testing.T) {
	w := newWorld(t, Options{}, "127.0.0.2")
	w.domain("raw.test", "127.0.0.2")
	in, mx := w.in, w.mx["127.0.0.2"]
	raw := func(rcpt, msg string) (int, []byte) {
		body, _ := json.Marshal(map[string]any{"from": "app@app.test", "to": []string{rcpt}, "raw": msg})
		status, _, data := in.post(t, "/v1/messages/raw", body, false)
		return status, data
	}
	sendOK := func(rcpt, msg string) string {
		t.Helper()
		status, data := raw(rcpt, msg)
		var res api.SendResponse
		if json.Unmarshal(data, &res); status != 202 || res.ID == "" {
			t.Fatalf("%q: %d %s", msg, status, data)
		}
		return delivered(t, in, mx, res.ID, rcpt)
	}

	t.Run("header only, no final newline", func(t *testing.T) {
		got := sendOK("a@raw.test", "From: app@app.test\r\nTo: a@raw.test\r\nSubject: no newline")
		if !strings.Contains(got, "\r\nSubject: no newline\r\n") || !strings.Contains(got, "\r\nMessage-ID: <") || !strings.HasSuffix(got, "\r\n\r\n") {
			t.Fatalf("header joined or unterminated:\n%q", got)
		}
	})
	t.Run("body without final newline", func(t *testing.T) {
		got := sendOK("b@raw.test", "From: app@app.test\nSubject: s\n\nlast line")
		if !strings.HasSuffix(got, "\r\n\r\nlast line\r\n") {
			t.Fatalf("body:\n%q", got)
		}
	})
	t.Run("body text right after the fields", func(t *testing.T) {
		// No blank line: the first line that is not a field starts the
		// body, and posthorn's fields go before the blank line it adds.
		got := sendOK("c@raw.test", "From: app@app.test\r\nSubject: s\r\nHello there, no blank line\r\nSecond line\r\n")
		hdr, body, ok := strings.Cut(got, "\r\n\r\n")
		if !ok || !strings.Contains(hdr, "Message-ID: <") || body != "Hello there, no blank line\r\nSecond line\r\n" {
			t.Fatalf("header %q\nbody %q", hdr, body)
		}
	})
	t.Run("no header section", func(t *testing.T) {
		for _, msg := range []string{"Just a body, no header\r\n", "Just a body", "From app@app.test Thu Dec  3 14:00:00 2026\r\nSubject: x\r\n\r\nx\r\n", " folded: first line\r\n\r\nx"} {
			status, data := raw("d@raw.test", msg)
			wantError(t, fmt.Sprintf("%q", msg), status, data, 400, "missing_header", "raw")
		}
	})
	t.Run("line length as in SMTP", func(t *testing.T) {
		// smtp.max_line_length is 2000 octets with CRLF by default.
		long := "From: app@app.test\r\nSubject: long\r\n\r\n" + strings.Repeat("x", 1999) + "\r\n"
		status, data := raw("e@raw.test", long)
		wantError(t, "2001-octet line", status, data, 400, "line_too_long", "raw")
		status, data = raw("e@raw.test", "From: app@app.test\r\nSubject: "+strings.Repeat("y", 1990)+"\r\n\r\nx\r\n")
		wantError(t, "2001-octet header line", status, data, 400, "line_too_long", "raw")
		got := sendOK("e@raw.test", "From: app@app.test\r\nSubject: long\r\n\r\n"+strings.Repeat("x", 1998)+"\r\n")
		if !strings.Contains(got, "\r\n"+strings.Repeat("x", 1998)+"\r\n") {
			t.Fatal("a 2000-octet line was not delivered as sent")
		}
	})
}

// TestAPIInputChecks: send_at, oversize messages and duplicate JSON keys.
func TestAPIInputChecks(t *testing.T) {
	in := Start(t, Options{})
	t.Run("send_at in year 1", func(t *testing.T) {
		for _, at := range []string{"0001-01-01T00:00:00Z", "0001-06-01T00:00:00Z", "2000-01-01T00:00:00+02:00"} {
			status, _, data := in.post(t, "/v1/messages", []byte(`{"from":"app@app.test","to":["a@x.test"],"text":"x","send_at":"`+at+`"}`), false)
			wantError(t, "send "+at, status, data, 400, "send_at_in_past", "send_at")
			status, _, data = in.post(t, "/v1/messages/raw", []byte(`{"to":["a@x.test"],"raw":"Subject: x\r\n\r\nx\r\n","send_at":"`+at+`"}`), false)
			wantError(t, "raw "+at, status, data, 400, "send_at_in_past", "send_at")
		}
		status, _, data := in.post(t, "/v1/messages", []byte(`{"from":"app@app.test","to":["a@x.test"],"text":"x","send_at":null}`), false)
		if status != 202 {
			t.Errorf("send_at null: %d %s", status, data)
		}
	})
	t.Run("duplicate keys", func(t *testing.T) {
		cases := []struct{ path, body, field string }{
			{"/v1/messages", `{"from":"app@app.test","to":["a@x.test"],"text":"a","text":"b"}`, "text"},
			{"/v1/messages", `{"from":"app@app.test","to":["a@x.test"],"To":["b@x.test"],"text":"a"}`, "To"},
			{"/v1/messages", `{"from":{"email":"app@app.test","email":"evil@app.test"},"to":["a@x.test"],"text":"a"}`, "from.email"},
			{"/v1/messages", `{"from":"app@app.test","to":["a@x.test"],"text":"a","headers":{"X-A":"1","X-A":"2"}}`, "headers.X-A"},
			{"/v1/messages/raw", `{"from":"app@app.test","to":["a@x.test"],"raw":"Subject: x\r\n\r\nx\r\n","raw":"Subject: y\r\n\r\ny\r\n"}`, "raw"},
			{"/v1/messages/bulk", `{"messages":[{"from":"app@app.test","to":["a@x.test"],"text":"a"}],"messages":[]}`, "messages"},
			{"/v1/suppressions", `{"entry":"a@x.test","entry":"b@x.test"}`, "entry"},
			{"/v1/dlq/retry", `{"all":false,"all":true}`, "all"},
		}
		for _, c := range cases {
			status, _, data := in.post(t, c.path, []byte(c.body), false)
			wantError(t, c.path+" "+c.body, status, data, 400, "invalid_json", c.field)
		}
		// In a bulk request a duplicate spoils only its item.
		status, _, data := in.post(t, "/v1/messages/bulk", []byte(`{"messages":[{"from":"app@app.test","to":["a@x.test"],"text":"a"},
			{"from":"app@app.test","to":["a@x.test"],"text":"a","lane":"low","Lane":"high"}]}`), false)
		var res api.BulkResponse
		json.Unmarshal(data, &res)
		if status != 200 || res.Accepted != 1 || len(res.Items) != 2 || res.Items[1].Error == nil ||
			res.Items[1].Error.Code != "invalid_json" || res.Items[1].Error.Field != "messages[1].Lane" {
			t.Errorf("bulk item with a duplicate: %d %s", status, data)
		}
		// Keys differing in case are two entries of a map.
		status, _, data = in.post(t, "/v1/messages", []byte(`{"from":"app@app.test","to":["a@x.test"],"text":"a","metadata":{"k":"1","K":"2"}}`), false)
		if status != 202 {
			t.Errorf("metadata k and K: %d %s", status, data)
		}
	})
}

// bulkBody is a bulk request of n valid messages padded with spaces to
// size bytes (when size is larger).
func bulkBody(n, size int, rcpt string) []byte {
	items := make([]map[string]any, n)
	for i := range items {
		items[i] = map[string]any{"from": "app@app.test", "to": []string{rcpt}, "subject": fmt.Sprint("bulk ", i), "text": "hello\n"}
	}
	b, _ := json.Marshal(map[string]any{"messages": items})
	if pad := size - len(b); pad > 0 {
		b = append(b[:len(b)-1], append(bytes.Repeat([]byte(" "), pad), '}')...)
	}
	return b
}

// TestAPIBodyLimits: one request's body is capped (413), all requests'
// bodies together are capped (503 with Retry-After, also for bodies sent
// without a length), and bulk still works under the limits.
func TestAPIBodyLimits(t *testing.T) {
	w := newWorld(t, Options{Config: `
[smtp]
max_message_size = 1048576
[api]
max_bulk = 50
max_bulk_bytes = 2097152
max_inflight_bytes = 3145728
`}, "127.0.0.2")
	w.domain("lim.test", "127.0.0.2")
	in := w.in

	t.Run("413", func(t *testing.T) {
		big := bulkBody(10, 2<<20+1, "a@lim.test")
		status, _, data := in.post(t, "/v1/messages/bulk", big, false)
		wantError(t, "bulk over max_bulk_bytes", status, data, 413, "too_large", "")
		status, _, data = in.post(t, "/v1/messages/bulk", big, true)
		wantError(t, "chunked bulk over max_bulk_bytes", status, data, 413, "too_large", "")
		status, _, data = in.post(t, "/v1/messages/bulk", bulkBody(51, 0, "a@lim.test"), false)
		wantError(t, "51 messages", status, data, 413, "too_many_messages", "messages")
	})

	t.Run("oversize message is 413", func(t *testing.T) {
		// smtp.max_message_size is 1 MiB here: the same answer as for a
		// 30 MB message under the default 25 MiB.
		body, _ := json.Marshal(map[string]any{"from": "app@app.test", "to": []string{"a@lim.test"}, "text": strings.Repeat("0123456789 ", 150000)})
		status, _, data := in.post(t, "/v1/messages", body, false)
		wantError(t, "1.6 MB text", status, data, 413, "too_large", "")
		status, _, data = in.post(t, "/v1/messages/bulk", []byte(`{"messages":[`+string(body)+`]}`), false)
		var res api.BulkResponse
		if json.Unmarshal(data, &res); status != 200 || res.Failed != 1 || res.Items[0].Error.Code != "too_large" {
			t.Errorf("bulk item of 1.6 MB: %d %s", status, data)
		}
		body, _ = json.Marshal(map[string]any{"to": []string{"a@lim.test"}, "raw": "Subject: x\r\n\r\n" + strings.Repeat("0123456789\r\n", 100000)})
		status, _, data = in.post(t, "/v1/messages/raw", body, false)
		wantError(t, "1.2 MB raw", status, data, 413, "too_large", "")
		status, _, data = in.post(t, "/v1/messages", bytes.Repeat([]byte(" "), 4<<20), false)
		wantError(t, "4 MB body", status, data, 413, "too_large", "")
	})

	t.Run("503 when the budget is spent", func(t *testing.T) {
		// Request A announces 2 MiB and waits for 100-continue: once it
		// comes, the server holds A's 2 MiB of the 3 MiB budget.
		c, err := net.Dial("tcp", in.HTTP)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		bodyA := bulkBody(40, 2<<20, "held@lim.test")
		fmt.Fprintf(c, "POST /v1/messages/bulk HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n",
			in.Creds.APIKey, len(bodyA))
		br := bufio.NewReader(c)
		if line, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(line, "HTTP/1.1 100") {
			t.Fatalf("want 100 Continue, got %q %v", line, err)
		}
		br.ReadString('\n') // the blank line after it
		send := []byte(`{"from":"app@app.test","to":["b@lim.test"],"text":"hi"}` + strings.Repeat(" ", 1<<20))
		for _, chunked := range []bool{false, true} {
			status, hdr, data := in.post(t, "/v1/messages", send, chunked)
			wantError(t, fmt.Sprint("send while A is held, chunked ", chunked), status, data, 503, "overloaded", "")
			if hdr.Get("Retry-After") == "" {
				t.Errorf("503 without Retry-After")
			}
		}
		// A completes normally and gives its budget back.
		c.Write(bodyA)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		var res api.BulkResponse
		json.NewDecoder(resp.Body).Decode(&res)
		if resp.StatusCode != 200 || res.Accepted != 40 || res.Failed != 0 {
			t.Fatalf("held bulk: %d %+v", resp.StatusCode, res)
		}
		in.WaitFinal(res.Items[39].ID, 20*time.Second)
		status, _, data := in.post(t, "/v1/messages", send, false)
		if status != 202 {
			t.Fatalf("send after A: %d %s", status, data)
		}
	})

	t.Run("bulk at the limits", func(t *testing.T) {
		body := bulkBody(50, 2<<20, "ok@lim.test")
		for _, chunked := range []bool{false, true} {
			status, _, data := in.post(t, "/v1/messages/bulk", body, chunked)
			var res api.BulkResponse
			json.Unmarshal(data, &res)
			if status != 200 || res.Accepted != 50 || res.Items[49].Index != 49 {
				t.Fatalf("bulk of 50, chunked %v: %d %.300s", chunked, status, data)
			}
			if d := in.WaitFinal(res.Items[0].ID, 20*time.Second); d.Deliveries[0].State != store.Delivered {
				t.Fatalf("bulk item: %+v", d.Deliveries[0])
			}
		}
	})
}
