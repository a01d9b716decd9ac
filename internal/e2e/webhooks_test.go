package e2e

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/api"
	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/testkit"
)

// hookPayload is what a receiver reads from a webhook body.
type hookPayload struct {
	Type      string `json:"type"`
	Timestamp string `json:"timestamp"`
	Data      struct {
		EventID   int64  `json:"event_id"`
		Tenant    string `json:"tenant"`
		MessageID string `json:"message_id"`
		Recipient string `json:"recipient"`
		Attempt   int    `json:"attempt"`
		MX        string `json:"mx"`
		Reply     *struct {
			Code     int    `json:"code"`
			Enhanced string `json:"enhanced"`
			Text     string `json:"text"`
		} `json:"reply"`
		Class    string            `json:"class"`
		Tags     []string          `json:"tags"`
		Metadata map[string]string `json:"metadata"`
		Alert    map[string]any    `json:"alert"`
	} `json:"data"`
}

// hookReceiver is a webhook consumer on loopback that checks every
// request's signature with its own code (not posthorn's): HMAC-SHA256 of
// "id.timestamp.body" keyed with the base64-decoded secret, compared in
// constant time, timestamp within five minutes.
type hookReceiver struct {
	t    *testing.T
	addr string

	mu       sync.Mutex
	secret   string
	srv      *http.Server
	failNext int  // answer 500 to this many more requests
	failAll  bool // answer 503 to every request
	requests int
	badSig   int
	byID     map[string]hookPayload
	order    []string // webhook ids in order of first arrival
	changed  chan struct{}
}

func startReceiver(t *testing.T) *hookReceiver {
	r := &hookReceiver{t: t, byID: map[string]hookPayload{}, changed: make(chan struct{}, 1)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.addr = ln.Addr().String()
	r.serve(ln)
	t.Cleanup(r.down)
	return r
}

func (r *hookReceiver) URL(path string) string { return "http://" + r.addr + path }

func (r *hookReceiver) serve(ln net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(r.handle)}
	r.mu.Lock()
	r.srv = srv
	r.mu.Unlock()
	go srv.Serve(ln)
}

// down closes the listener and every connection: posthorn's requests fail.
func (r *hookReceiver) down() {
	r.mu.Lock()
	srv := r.srv
	r.srv = nil
	r.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

// up listens again on the same address.
func (r *hookReceiver) up() {
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ {
		if ln, err = net.Listen("tcp", r.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		r.t.Fatalf("receiver up again on %s: %v", r.addr, err)
	}
	r.serve(ln)
}

func verifySignature(secret, id, ts string, body []byte, header string) bool {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return false
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || time.Since(time.Unix(sec, 0)).Abs() > 5*time.Minute {
		return false
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(body)
	want := mac.Sum(nil)
	for _, sig := range strings.Fields(header) {
		v, b64, ok := strings.Cut(sig, ",")
		if !ok || v != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(b64)
		if err == nil && hmac.Equal(got, want) {
			return true
		}
	}
	return false
}

func (r *hookReceiver) handle(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	id, ts, sig := req.Header.Get("webhook-id"), req.Header.Get("webhook-timestamp"), req.Header.Get("webhook-signature")
	r.mu.Lock()
	defer r.mu.Unlock()
	defer func() {
		select {
		case r.changed <- struct{}{}:
		default:
		}
	}()
	r.requests++
	if !verifySignature(r.secret, id, ts, body, sig) {
		r.badSig++
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	if r.failAll {
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return
	}
	if r.failNext > 0 {
		r.failNext--
		http.Error(w, "try again later", http.StatusInternalServerError)
		return
	}
	var p hookPayload
	if err := json.Unmarshal(body, &p); err != nil {
		r.t.Errorf("webhook %s: body %q: %v", id, body, err)
	}
	if _, dup := r.byID[id]; !dup {
		r.byID[id] = p
		r.order = append(r.order, id)
	}
	w.WriteHeader(http.StatusNoContent)
}

// wait waits until cond holds (checked under the receiver's lock).
func (r *hookReceiver) wait(what string, timeout time.Duration, cond func() bool) {
	r.t.Helper()
	deadline := time.After(timeout)
	for {
		r.mu.Lock()
		ok := cond()
		r.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-r.changed:
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			r.mu.Lock()
			defer r.mu.Unlock()
			r.t.Fatalf("receiver: %s not reached in %s (%d requests, %d unique)", what, timeout, r.requests, len(r.byID))
		}
	}
}

// webhookConfig is the [webhooks] section of the tests: loopback allowed
// (unless private is false) and quick retries.
func webhookConfig(private bool) string {
	steps := make([]string, 60)
	for i := range steps {
		steps[i] = `"200ms"`
	}
	steps[0], steps[1] = `"50ms"`, `"100ms"`
	return fmt.Sprintf("[webhooks]\nallow_private_targets = %v\nretry_schedule = [%s]\ntimeout = \"2s\"\n", private, strings.Join(steps, ", "))
}

type webhookCreated struct {
	ID     string   `json:"id"`
	Secret string   `json:"secret"`
	URL    string   `json:"url"`
	Events []string `json:"events"`
}

func (in *Instance) addWebhook(t *testing.T, url, events string) webhookCreated {
	t.Helper()
	var c webhookCreated
	in.CLI(&c, "webhook", "add", url, "--events", events)
	if c.ID == "" || !strings.HasPrefix(c.Secret, "whsec_") {
		t.Fatalf("webhook add printed %+v", c)
	}
	return c
}

func (in *Instance) webhookAttempts(t *testing.T, id string) []store.WebhookAttempt {
	t.Helper()
	var res struct {
		Items []store.WebhookAttempt `json:"items"`
	}
	in.CLI(&res, "webhook", "attempts", id)
	return res.Items
}

// expectedHooks lists the ids of the events of types of messages ids.
func (in *Instance) expectedHooks(t *testing.T, ids []string, types ...string) map[int64]store.Event {
	out := map[int64]store.Event{}
	for _, id := range ids {
		for _, e := range in.Show(id).Events {
			if slices.Contains(types, e.Type) {
				out[e.ID] = e
			}
		}
	}
	return out
}

// checkHooks checks the receiver got every expected event once (after
// de-duplication by webhook-id), nothing else, and each message's events
// in the order they happened.
func checkHooks(t *testing.T, r *hookReceiver, want map[int64]store.Event) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.badSig > 0 {
		t.Errorf("%d requests with a bad signature", r.badSig)
	}
	seen := map[int64]string{}
	last := map[string]int64{}
	for _, id := range r.order {
		p := r.byID[id]
		if other, dup := seen[p.Data.EventID]; dup {
			t.Errorf("event %d arrived under two webhook ids: %s and %s", p.Data.EventID, other, id)
		}
		seen[p.Data.EventID] = id
		e, ok := want[p.Data.EventID]
		if !ok {
			t.Errorf("unexpected webhook %s: %+v", id, p)
			continue
		}
		if p.Type != e.Type || p.Data.MessageID != e.MessageID || p.Data.Recipient != e.Recipient {
			t.Errorf("webhook %s: %+v, want event %+v", id, p, e)
		}
		if p.Data.EventID < last[e.MessageID] {
			t.Errorf("message %s: event %d arrived after event %d", e.MessageID, p.Data.EventID, last[e.MessageID])
		}
		last[e.MessageID] = p.Data.EventID
	}
	for id, e := range want {
		if seen[id] == "" {
			t.Errorf("event %d (%s %s) never arrived", id, e.Type, e.Recipient)
		}
	}
}

// TestWebhooks: a receiver that answers 500 to the first requests and is
// down for a while still ends with every event, once each after
// de-duplication, in order per message, each signed; payloads carry the
// reply, class, MX, tags and metadata; every request is listed.
func TestWebhooks(t *testing.T) {
	dns := testkit.StartDNS(t)
	mx := testkit.StartMX(t, "127.0.0.2", 0, testkit.Script{
		DataReplies: []testkit.Reply{{Code: 451, Text: "4.3.0 try again"}, {Code: 451, Text: "4.3.0 try again"}, {Code: 451, Text: "4.3.0 try again"}}})
	dns.SetA("mx.hooks.test", "127.0.0.2")
	dns.SetMX("hooks.test", testkit.MX{Pref: 10, Host: "mx.hooks.test"})
	in := Start(t, Options{DNS: dns.Addr(), DeliveryPort: mx.Port(), RetryMin: 200 * time.Millisecond, RetryMax: 400 * time.Millisecond,
		Config: webhookConfig(true)})
	r := startReceiver(t)
	r.failNext = 5
	hook := in.addWebhook(t, r.URL("/hook"), "queued,deferred,delivered")
	r.mu.Lock()
	r.secret = hook.Secret
	r.mu.Unlock()

	var ids []string
	for i := 0; i < 6; i++ {
		ids = append(ids, in.Send("sender@app.test", []string{fmt.Sprintf("a%d@hooks.test", i), fmt.Sprintf("b%d@hooks.test", i)}, msgBody("hook")))
	}
	r.wait("first webhooks", 20*time.Second, func() bool { return len(r.byID) >= 4 })
	// Down for a while: requests fail to connect and are retried.
	r.down()
	before := len(in.webhookAttempts(t, hook.ID))
	deadline := time.Now().Add(15 * time.Second)
	for {
		as := in.webhookAttempts(t, hook.ID)
		if len(as) > before && as[0].Status == 0 && as[0].Error != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no failed request while the receiver was down: %+v", as[:min(3, len(as))])
		}
		time.Sleep(50 * time.Millisecond)
	}
	// More mail while it is down, sent over the API with tags and metadata.
	for i := 0; i < 3; i++ {
		body := apiSend(fmt.Sprintf("c%d@hooks.test", i))
		body["tags"] = []string{"welcome", "t" + strconv.Itoa(i)}
		body["metadata"] = map[string]string{"user": strconv.Itoa(100 + i)}
		var res struct {
			ID string `json:"id"`
		}
		if code := in.call(t, in.Creds.APIKey, "POST", "/v1/messages", body, nil, &res); code != 202 {
			t.Fatalf("send: %d", code)
		}
		ids = append(ids, res.ID)
	}
	r.up()
	for _, id := range ids {
		in.WaitFinal(id, 30*time.Second)
	}
	want := in.expectedHooks(t, ids, "queued", "deferred", "delivered")
	r.wait("every event", 30*time.Second, func() bool { return len(r.byID) >= len(want) })
	checkHooks(t, r, want)

	// Payload contents: a delivered event names the MX, reply and class;
	// API mail carries its tags and metadata; a deferral its 451.
	r.mu.Lock()
	var delivered, deferred, tagged bool
	for _, p := range r.byID {
		switch {
		case p.Type == "delivered" && p.Data.Reply != nil && p.Data.Reply.Code == 250 && p.Data.MX == "mx.hooks.test" && p.Data.Class == "delivered" && p.Data.Attempt >= 1:
			delivered = true
			if strings.HasPrefix(p.Data.Recipient, "c") && slices.Contains(p.Data.Tags, "welcome") && p.Data.Metadata["user"] != "" {
				tagged = true
			}
		case p.Type == "deferred" && p.Data.Reply != nil && p.Data.Reply.Code == 451 && p.Data.Reply.Enhanced == "4.3.0" && p.Data.Class != "":
			deferred = true
		}
	}
	r.mu.Unlock()
	if !delivered || !deferred || !tagged {
		t.Errorf("payloads: delivered with reply/mx/class %v, deferred with 451 %v, tags and metadata %v", delivered, deferred, tagged)
	}
	// Every request is recorded: the 500s, the refused connections, the 204s.
	var n500, nDown, nOK int
	for _, a := range in.webhookAttempts(t, hook.ID) {
		switch {
		case a.Status == 500 && strings.Contains(a.Response, "try again later"):
			n500++
		case a.Status == 0 && a.Error != "":
			nDown++
		case a.OK && a.Status == 204:
			nOK++
		}
	}
	if n500 != 5 || nDown == 0 || nOK != len(want) {
		t.Errorf("attempts: %d answered 500 (want 5), %d failed to connect, %d ok (want %d)", n500, nDown, nOK, len(want))
	}
}

// TestWebhooksSurviveCrash: posthorn is SIGKILLed with a full outbox (the
// receiver refused everything); after the restart every webhook arrives.
func TestWebhooksSurviveCrash(t *testing.T) {
	dns := testkit.StartDNS(t)
	mx := testkit.StartMX(t, "127.0.0.2", 0, testkit.Script{})
	dns.SetA("mx.crash.test", "127.0.0.2")
	dns.SetMX("crash.test", testkit.MX{Pref: 10, Host: "mx.crash.test"})
	in := Start(t, Options{DNS: dns.Addr(), DeliveryPort: mx.Port(), Config: webhookConfig(true)})
	r := startReceiver(t)
	r.failAll = true
	hook := in.addWebhook(t, r.URL("/hook"), "queued,delivered")
	r.mu.Lock()
	r.secret = hook.Secret
	r.mu.Unlock()
	var ids []string
	for i := 0; i < 10; i++ {
		ids = append(ids, in.Send("sender@app.test", []string{fmt.Sprintf("r%d@crash.test", i)}, msgBody("crash")))
	}
	for _, id := range ids {
		in.WaitFinal(id, 20*time.Second)
	}
	want := in.expectedHooks(t, ids, "queued", "delivered")
	// The outbox holds them all, and the receiver has refused some.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var res struct {
			Items []store.WebhookEndpoint `json:"items"`
		}
		in.CLI(&res, "webhook", "list")
		if len(res.Items) == 1 && res.Items[0].Pending == len(want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("outbox: %+v, want %d pending", res.Items, len(want))
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.wait("refused requests", 10*time.Second, func() bool { return r.requests >= 3 })
	in.Kill()
	r.mu.Lock()
	if len(r.byID) != 0 {
		t.Fatalf("receiver accepted %d webhooks while refusing", len(r.byID))
	}
	r.failAll = false
	r.mu.Unlock()
	in.Restart()
	r.wait("every event after the restart", 30*time.Second, func() bool { return len(r.byID) >= len(want) })
	checkHooks(t, r, want)
}

// TestWebhookSSRF: without allow_private_targets, URLs naming loopback,
// private or link-local addresses, and a name that resolves to loopback
// through the configured DNS server, are refused before dialling; nothing
// reaches the listening receiver. With it on, a redirect is not followed.
func TestWebhookSSRF(t *testing.T) {
	dns := testkit.StartDNS(t)
	r := startReceiver(t)
	_, port, _ := net.SplitHostPort(r.addr)
	dns.SetA("inside.test", "127.0.0.1")
	in := Start(t, Options{DNS: dns.Addr(), Config: webhookConfig(false)})
	urls := []string{r.URL("/direct"), "http://10.0.0.1/hook", "http://169.254.169.254/latest/meta-data/", "http://inside.test:" + port + "/named",
		"http://[::1]:" + port + "/v6"}
	for _, u := range urls {
		h := in.addWebhook(t, u, "delivered")
		in.CLI(nil, "webhook", "test", h.ID)
		deadline := time.Now().Add(10 * time.Second)
		for {
			as := in.webhookAttempts(t, h.ID)
			if len(as) > 0 {
				a := as[len(as)-1]
				if a.OK || a.Status != 0 || !strings.Contains(a.Error, "not allowed") {
					t.Errorf("%s: attempt %+v, want refused as not allowed", u, a)
				}
				// Refused at once, not after a connect timeout.
				if a.Duration > time.Second {
					t.Errorf("%s: refusal took %s", u, a.Duration)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: no attempt recorded", u)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if n := dns.Queries("inside.test", 1); n == 0 {
		t.Error("inside.test was not looked up through the configured DNS server")
	}
	r.mu.Lock()
	if r.requests != 0 {
		t.Errorf("the receiver got %d requests", r.requests)
	}
	r.mu.Unlock()

	// A redirect is not followed, even to an allowed target.
	target := startReceiver(t)
	redirect := &http.Server{Handler: http.RedirectHandler(target.URL("/got-redirected"), http.StatusFound)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go redirect.Serve(ln)
	defer redirect.Close()
	in2 := Start(t, Options{DNS: dns.Addr(), Config: webhookConfig(true)})
	h := in2.addWebhook(t, "http://"+ln.Addr().String()+"/hook", "delivered")
	in2.CLI(nil, "webhook", "test", h.ID)
	deadline := time.Now().Add(10 * time.Second)
	for len(in2.webhookAttempts(t, h.ID)) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("no retried attempt after the redirect")
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, a := range in2.webhookAttempts(t, h.ID) {
		if a.OK || a.Status != http.StatusFound || !strings.Contains(a.Error, "redirect not followed") {
			t.Errorf("redirect attempt: %+v", a)
		}
	}
	target.mu.Lock()
	if target.requests != 0 {
		t.Errorf("the redirect was followed: %d requests at its target", target.requests)
	}
	target.mu.Unlock()
}

// TestWebhookAPI: /v1/webhooks is for admin keys, scoped to the key's
// tenant: another tenant's endpoint is 404 for every operation.
func TestWebhookAPI(t *testing.T) {
	in := Start(t, Options{Config: webhookConfig(true)})
	in.CLI(nil, "tenant", "add", "other")
	var other, reader api.KeyResponse
	in.CLI(&other, "apikey", "create", "--tenant", "other", "--scope", "admin")
	in.CLI(&reader, "apikey", "create", "--scope", "send,read")
	key := in.Creds.APIKey

	var created webhookCreated
	if code := in.call(t, key, "POST", "/v1/webhooks", map[string]any{"url": "https://hooks.example/a", "events": []string{"delivered", "bounced"}},
		nil, &created); code != 201 || created.ID == "" || !strings.HasPrefix(created.Secret, "whsec_") {
		t.Fatalf("create: %d %+v", code, created)
	}
	if code := in.call(t, key, "POST", "/v1/webhooks", map[string]any{"url": "https://hooks.example/a", "events": []string{"nonsense"}}, nil, nil); code != 400 {
		t.Fatalf("unknown event type: %d", code)
	}
	if code := in.call(t, key, "POST", "/v1/webhooks", map[string]any{"url": "ftp://hooks.example/a", "events": []string{"delivered"}}, nil, nil); code != 400 {
		t.Fatalf("ftp URL: %d", code)
	}
	if code := in.call(t, reader.APIKey, "GET", "/v1/webhooks", nil, nil, nil); code != 403 {
		t.Fatalf("send,read key listed webhooks: %d", code)
	}
	var list struct {
		Items []store.WebhookEndpoint `json:"items"`
	}
	if code := in.call(t, key, "GET", "/v1/webhooks", nil, nil, &list); code != 200 || len(list.Items) != 1 || list.Items[0].ID != created.ID {
		t.Fatalf("list: %d %+v", code, list)
	}
	if code := in.call(t, other.APIKey, "GET", "/v1/webhooks", nil, nil, &list); code != 200 || len(list.Items) != 0 {
		t.Fatalf("other tenant's list: %d %+v", code, list)
	}
	for _, op := range [][2]string{{"GET", ""}, {"POST", "/test"}, {"GET", "/attempts"}, {"DELETE", ""}} {
		if code := in.call(t, other.APIKey, op[0], "/v1/webhooks/"+created.ID+op[1], nil, nil, nil); code != 404 {
			t.Errorf("other tenant %s %s: %d, want 404", op[0], op[1], code)
		}
	}
	var got store.WebhookEndpoint
	if code := in.call(t, key, "GET", "/v1/webhooks/"+created.ID, nil, nil, &got); code != 200 || got.URL != "https://hooks.example/a" {
		t.Fatalf("get: %d %+v", code, got)
	}
	if code := in.call(t, key, "DELETE", "/v1/webhooks/"+created.ID, nil, nil, nil); code != 200 {
		t.Fatalf("delete: %d", code)
	}
	if code := in.call(t, key, "GET", "/v1/webhooks/"+created.ID, nil, nil, nil); code != 404 {
		t.Fatalf("get after delete: %d", code)
	}
	// Alerts: an admin key of the alert tenant sees the (empty) list.
	var alerts struct {
		Items []store.Alert `json:"items"`
	}
	if code := in.call(t, key, "GET", "/v1/alerts", nil, nil, &alerts); code != 200 || alerts.Items == nil {
		t.Fatalf("alerts: %d %+v", code, alerts)
	}
}
