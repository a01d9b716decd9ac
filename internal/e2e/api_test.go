package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/api"
	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/testkit"
)

// call makes an API request and decodes the JSON answer into out.
func (in *Instance) call(t *testing.T, key, method, path string, body any, hdr map[string]string, out any) int {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, "http://"+in.HTTP+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: answer %q: %v", method, path, data, err)
		}
	}
	return resp.StatusCode
}

func apiSend(to ...string) map[string]any {
	return map[string]any{"from": "App <app@app.test>", "to": to, "subject": "Grüße aus Köln", "text": "Hello\n", "html": "<p>Hello</p>"}
}

func TestHTTPSendAPI(t *testing.T) {
	w := newWorld(t, Options{}, "127.0.0.2")
	w.domain("api.test", "127.0.0.2")
	in, key := w.in, w.in.Creds.APIKey
	mx := w.mx["127.0.0.2"]

	t.Run("send and read back", func(t *testing.T) {
		body := apiSend("Zoë <z@api.test>")
		body["attachments"] = []map[string]any{{"filename": "a.txt", "content_type": "text/plain", "content": base64.StdEncoding.EncodeToString([]byte("attached"))}}
		body["tags"] = []string{"welcome"}
		body["metadata"] = map[string]string{"user": "42"}
		var res api.SendResponse
		if code := in.call(t, key, "POST", "/v1/messages", body, nil, &res); code != 202 {
			t.Fatalf("status %d: %+v", code, res)
		}
		if res.ID == "" || len(res.Recipients) != 1 || res.Recipients[0].Email != "z@api.test" || res.Recipients[0].State != store.Queued {
			t.Fatalf("answer: %+v", res)
		}
		in.WaitFinal(res.ID, 20*time.Second)
		var view api.MessageView
		if code := in.call(t, key, "GET", "/v1/messages/"+res.ID, nil, nil, &view); code != 200 {
			t.Fatalf("get: %d", code)
		}
		if view.Recipients[0].State != store.Delivered || len(view.Recipients[0].History) != 1 || view.Tags[0] != "welcome" || view.Metadata["user"] != "42" {
			t.Fatalf("view: %+v", view)
		}
		msgs := waitMessages(t, mx, 1)
		data := string(msgs[len(msgs)-1].Data)
		for _, want := range []string{"multipart/mixed", "multipart/alternative", "=?utf-8?", "a.txt"} {
			if !strings.Contains(data, want) {
				t.Errorf("built message lacks %q:\n%s", want, data)
			}
		}
	})

	t.Run("errors", func(t *testing.T) {
		cases := []struct {
			name   string
			body   any
			key    string
			status int
			code   string
		}{
			{"malformed json", `{"from": `, key, 400, "invalid_json"},
			{"unknown field", `{"from":"a@app.test","to":["b@api.test"],"text":"x","colour":"red"}`, key, 400, "invalid_json"},
			{"bad address", map[string]any{"from": "a@app.test", "to": []string{"not an address"}, "text": "x"}, key, 400, ""},
			{"header injection", map[string]any{"from": "a@app.test", "to": []string{"b@api.test"}, "text": "x", "headers": map[string]string{"X-A": "1\r\nBcc: victim@x.test"}}, key, 400, "header_injection"},
			{"unknown lane", map[string]any{"from": "a@app.test", "to": []string{"b@api.test"}, "text": "x", "lane": "urgent"}, key, 400, "invalid_lane"},
			{"send_at in the past", map[string]any{"from": "a@app.test", "to": []string{"b@api.test"}, "text": "x", "send_at": time.Now().Add(-time.Hour)}, key, 400, "send_at_in_past"},
			{"send_at too far", map[string]any{"from": "a@app.test", "to": []string{"b@api.test"}, "text": "x", "send_at": time.Now().Add(60 * 24 * time.Hour)}, key, 400, "send_at_too_far"},
			{"no key", apiSend("b@api.test"), "", 401, "unauthorized"},
			{"bad key", apiSend("b@api.test"), "ph_nope_nope", 401, "unauthorized"},
		}
		for _, c := range cases {
			var e api.APIError
			status := in.call(t, c.key, "POST", "/v1/messages", c.body, nil, &e)
			if status != c.status || e.Error.Code == "" || (c.code != "" && e.Error.Code != c.code) {
				t.Errorf("%s: status %d %+v, want %d %s", c.name, status, e, c.status, c.code)
			}
		}
		// A read-only key may read but not send.
		var k api.KeyResponse
		in.CLI(&k, "apikey", "create", "--name", "reader", "--scope", "read")
		var e api.APIError
		if status := in.call(t, k.APIKey, "POST", "/v1/messages", apiSend("b@api.test"), nil, &e); status != 403 || e.Error.Code != "missing_scope" {
			t.Errorf("read-only key sending: %d %+v", status, e)
		}
		var list api.ListResponse
		if status := in.call(t, k.APIKey, "GET", "/v1/messages", nil, nil, &list); status != 200 {
			t.Errorf("read-only key listing: %d", status)
		}
	})

	t.Run("idempotency", func(t *testing.T) {
		hdr := map[string]string{"Idempotency-Key": "order-1"}
		var a, b api.SendResponse
		in.call(t, key, "POST", "/v1/messages", apiSend("i@api.test"), hdr, &a)
		if code := in.call(t, key, "POST", "/v1/messages", apiSend("i@api.test"), hdr, &b); code != 202 || a.ID == "" || a.ID != b.ID {
			t.Fatalf("repeat: %d %s vs %s", code, a.ID, b.ID)
		}
		var e api.APIError
		if code := in.call(t, key, "POST", "/v1/messages", apiSend("other@api.test"), hdr, &e); code != 409 || e.Error.Code != "idempotency_conflict" {
			t.Fatalf("different payload: %d %+v", code, e)
		}
		// 20 concurrent clients with one new key queue exactly one message.
		var wg sync.WaitGroup
		ids := make([]string, 20)
		for i := range ids {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				var r api.SendResponse
				in.call(t, key, "POST", "/v1/messages", apiSend("conc@api.test"), map[string]string{"Idempotency-Key": "conc-1"}, &r)
				ids[i] = r.ID
			}(i)
		}
		wg.Wait()
		for _, id := range ids {
			if id == "" || id != ids[0] {
				t.Fatalf("concurrent ids differ: %v", ids)
			}
		}
		var list api.ListResponse
		in.call(t, key, "GET", "/v1/messages?recipient=conc@api.test", nil, nil, &list)
		if len(list.Items) != 1 {
			t.Fatalf("%d messages queued for one idempotency key", len(list.Items))
		}
	})

	t.Run("scheduled and cancel", func(t *testing.T) {
		later := apiSend("s@api.test")
		later["send_at"] = time.Now().Add(time.Hour)
		var res api.SendResponse
		if code := in.call(t, key, "POST", "/v1/messages", later, nil, &res); code != 202 || res.Recipients[0].State != store.Scheduled {
			t.Fatalf("schedule: %d %+v", code, res)
		}
		var list api.QueueList
		in.CLI(&list, "queue", "list", "--state", "scheduled")
		if list.Count != 1 {
			t.Fatalf("scheduled listing: %+v", list)
		}
		var c api.CancelResponse
		if code := in.call(t, key, "DELETE", "/v1/messages/"+res.ID, nil, nil, &c); code != 200 || c.Cancelled != 1 {
			t.Fatalf("cancel: %d %+v", code, c)
		}
		var e api.APIError
		if code := in.call(t, key, "DELETE", "/v1/messages/"+res.ID, nil, nil, &e); code != 409 {
			t.Fatalf("second cancel: %d %+v", code, e)
		}
		soon := apiSend("soon@api.test")
		soon["send_at"] = time.Now().Add(1500 * time.Millisecond)
		in.call(t, key, "POST", "/v1/messages", soon, nil, &res)
		start := time.Now()
		d := in.WaitFinal(res.ID, 20*time.Second)
		if d.Deliveries[0].State != store.Delivered || time.Since(start) < time.Second {
			t.Fatalf("scheduled message: %+v after %s", d.Deliveries[0], time.Since(start))
		}
	})

	t.Run("bulk", func(t *testing.T) {
		items := []any{apiSend("b1@api.test"), map[string]any{"from": "a@app.test", "to": []string{"bad address"}, "text": "x"}, apiSend("b2@api.test")}
		var res api.BulkResponse
		if code := in.call(t, key, "POST", "/v1/messages/bulk", map[string]any{"messages": items}, nil, &res); code != 200 {
			t.Fatalf("bulk: %d", code)
		}
		if res.Accepted != 2 || res.Failed != 1 || res.Items[1].Error == nil || res.Items[0].ID == "" || res.Items[2].ID == "" || res.Items[1].Index != 1 {
			t.Fatalf("bulk answer: %+v", res)
		}
		for _, it := range []api.BulkItem{res.Items[0], res.Items[2]} {
			in.WaitFinal(it.ID, 20*time.Second)
		}
	})

	t.Run("bulk idempotency", func(t *testing.T) {
		keyed := func(to, k string) map[string]any {
			m := apiSend(to)
			m["idempotency_key"] = k
			return m
		}
		send := func(items ...any) api.BulkResponse {
			var res api.BulkResponse
			if code := in.call(t, key, "POST", "/v1/messages/bulk", map[string]any{"messages": items}, nil, &res); code != 200 || len(res.Items) != len(items) {
				t.Fatalf("bulk: %d %+v", code, res)
			}
			return res
		}
		a := send(keyed("bi1@api.test", "bulk-1"), apiSend("bi2@api.test"))
		b := send(keyed("bi1@api.test", "bulk-1"), apiSend("bi2@api.test"))
		if a.Accepted != 2 || b.Accepted != 2 || a.Items[0].ID == "" || a.Items[0].ID != b.Items[0].ID || a.Items[1].ID == b.Items[1].ID {
			t.Fatalf("repeat: %+v then %+v", a, b)
		}
		c := send(keyed("other@api.test", "bulk-1"))
		if c.Failed != 1 || c.Items[0].Error == nil || c.Items[0].Error.Code != "idempotency_conflict" {
			t.Fatalf("same key, other item: %+v", c)
		}
	})

	t.Run("raw", func(t *testing.T) {
		raw := "From: app@app.test\r\nTo: r@api.test\r\nSubject: raw\r\n\r\nraw body\r\n"
		var res api.SendResponse
		if code := in.call(t, key, "POST", "/v1/messages/raw", map[string]any{"from": "bounce@app.test", "to": []string{"r@api.test"}, "raw": raw, "lane": "high"}, nil, &res); code != 202 {
			t.Fatalf("raw: %d", code)
		}
		d := in.WaitFinal(res.ID, 20*time.Second)
		if d.Deliveries[0].State != store.Delivered || d.Message.Lane != store.LaneHigh || d.Message.Sender != "bounce@app.test" {
			t.Fatalf("raw message: %+v %+v", d.Message, d.Deliveries[0])
		}
	})

	t.Run("tenant isolation", func(t *testing.T) {
		var res api.SendResponse
		in.call(t, key, "POST", "/v1/messages", apiSend("iso@api.test"), nil, &res)
		in.CLI(nil, "tenant", "add", "other")
		var k api.KeyResponse
		in.CLI(&k, "apikey", "create", "--tenant", "other", "--scope", "send,read")
		var e api.APIError
		if code := in.call(t, k.APIKey, "GET", "/v1/messages/"+res.ID, nil, nil, &e); code != 404 {
			t.Fatalf("other tenant reads the message: %d", code)
		}
		if code := in.call(t, k.APIKey, "DELETE", "/v1/messages/"+res.ID, nil, nil, &e); code != 404 {
			t.Fatalf("other tenant cancels the message: %d", code)
		}
		var list api.ListResponse
		in.call(t, k.APIKey, "GET", "/v1/messages", nil, nil, &list)
		if len(list.Items) != 0 {
			t.Fatalf("other tenant lists %d deliveries", len(list.Items))
		}
	})

	t.Run("list with cursor", func(t *testing.T) {
		var page api.ListResponse
		seen := map[int64]bool{}
		cursor := ""
		for i := 0; i < 100; i++ {
			page = api.ListResponse{}
			in.call(t, key, "GET", "/v1/messages?limit=2&cursor="+cursor, nil, nil, &page)
			for _, d := range page.Items {
				if seen[d.ID] {
					t.Fatalf("delivery %d listed twice", d.ID)
				}
				seen[d.ID] = true
			}
			if page.NextCursor == "" {
				break
			}
			cursor = page.NextCursor
		}
		var all api.ListResponse
		in.call(t, key, "GET", "/v1/messages?limit=1000", nil, nil, &all)
		if len(seen) != len(all.Items) || len(seen) < 5 {
			t.Fatalf("paged %d, listed %d", len(seen), len(all.Items))
		}
	})
}

// TestLaneHeader: X-Posthorn-Lane sets the lane over SMTP and is removed
// before delivery.
func TestLaneHeader(t *testing.T) {
	w := newWorld(t, Options{}, "127.0.0.2")
	w.domain("lane.test", "127.0.0.2")
	id := w.in.Send("s@app.test", []string{"l@lane.test"}, "X-Posthorn-Lane: high\r\nSubject: lane\r\n\r\nbody\r\n")
	d := w.in.WaitFinal(id, 20*time.Second)
	if d.Message.Lane != store.LaneHigh || d.Deliveries[0].Lane != store.LaneHigh {
		t.Fatalf("lane: %s / %s", d.Message.Lane, d.Deliveries[0].Lane)
	}
	msgs := waitMessages(t, w.mx["127.0.0.2"], 1)
	if strings.Contains(string(msgs[0].Data), "X-Posthorn-Lane") {
		t.Fatal("lane header was delivered")
	}
	var list api.QueueList
	w.in.CLI(&list, "queue", "list", "--state", "all")
	if list.Items[0].Lane != store.LaneHigh {
		t.Fatalf("queue list lane: %s", list.Items[0].Lane)
	}
	_ = fmt.Sprint
	_ = testkit.Reply{}
}

// TestSMTPMessageIDIdempotency: for a user who asks for it, resubmitting
// a message with the same Message-ID is answered with the first queue id
// and delivered once.
func TestSMTPMessageIDIdempotency(t *testing.T) {
	w := newWorld(t, Options{}, "127.0.0.2")
	w.domain("idem.test", "127.0.0.2")
	in := w.in
	var u api.UserResponse
	in.CLI(&u, "user", "add", "app", "--message-id-idempotency")
	send := func(user, pass, body string) string {
		c, err := Dial(in.SMTP)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		expect(t, c, "EHLO app.test", 250, "")
		expect(t, c, "AUTH PLAIN "+plain(user, pass), 235, "")
		id, err := c.Transaction("app@app.test", []string{"r@idem.test"}, body)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	msg := "Message-ID: <order-77@app.test>\r\nSubject: receipt\r\n\r\nthanks\r\n"
	a := send(u.Username, u.Password, msg)
	b := send(u.Username, u.Password, msg)
	if a != b {
		t.Fatalf("resubmission queued again: %s then %s", a, b)
	}
	// The default user does not have it: the same message is queued anew.
	c := send(in.Creds.SMTPUsername, in.Creds.SMTPPassword, msg)
	if c == a {
		t.Fatal("idempotency applied to a user without the option")
	}
	in.WaitFinal(a, 20*time.Second)
	in.WaitFinal(c, 20*time.Second)
	n := 0
	for _, m := range w.mx["127.0.0.2"].Messages() {
		if strings.Contains(string(m.Data), "order-77") {
			n++
		}
	}
	if n != 2 {
		t.Fatalf("MX got %d copies, want 2 (one per user)", n)
	}
}
