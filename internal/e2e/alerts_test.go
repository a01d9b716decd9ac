package e2e

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/queue"
	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/testkit"
)

func (in *Instance) alerts(t *testing.T) []store.Alert {
	t.Helper()
	var res struct {
		Items []store.Alert `json:"items"`
	}
	in.CLI(&res, "alerts")
	return res.Items
}

func (in *Instance) destination(t *testing.T, key string) (queue.DestinationInfo, bool) {
	t.Helper()
	var res struct {
		Items []queue.DestinationInfo `json:"items"`
	}
	in.CLI(&res, "destinations")
	for _, d := range res.Items {
		if d.Key == key {
			return d, true
		}
	}
	return queue.DestinationInfo{}, false
}

// waitFor polls cond every 100ms until it holds or timeout passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached in %s", what, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestAlertThrottle: a destination starts deferring, the deferral_rate
// alert fires and its throttle action halves the destination's rate; the
// destination recovers, the alert resolves and the rate is restored. The
// webhook receiver gets alert_fired and alert_resolved.
func TestAlertThrottle(t *testing.T) {
	dns := testkit.StartDNS(t)
	var deferring atomic.Bool
	deferring.Store(true)
	mx := testkit.StartMX(t, "127.0.0.2", 0, testkit.Script{Data: func(*testkit.Message, int) testkit.Reply {
		if deferring.Load() {
			return testkit.Reply{Code: 451, Text: "4.3.0 temporarily unavailable"}
		}
		return testkit.Reply{}
	}})
	dns.SetA("mx.slow.test", "127.0.0.2")
	dns.SetMX("slow.test", testkit.MX{Pref: 10, Host: "mx.slow.test"})
	cfg := webhookConfig(true) + `
[alerts]
interval = "200ms"

[[destination]]
name = "slow.test"
rate_per_minute = 600

[[alert]]
name = "slow-deferring"
kind = "deferral_rate"
destination = "slow.test"
threshold = 50.0
window = "3s"
min_attempts = 4
action = "throttle"
fraction = 0.5
`
	in := Start(t, Options{DNS: dns.Addr(), DeliveryPort: mx.Port(), RetryMin: 300 * time.Millisecond, RetryMax: 600 * time.Millisecond,
		Config: cfg})
	r := startReceiver(t)
	hook := in.addWebhook(t, r.URL("/alerts"), "alert_fired,alert_resolved")
	r.mu.Lock()
	r.secret = hook.Secret
	r.mu.Unlock()

	var ids []string
	for i := 0; i < 6; i++ {
		ids = append(ids, in.Send("sender@app.test", []string{"user@slow.test"}, msgBody("slow")))
	}
	var fired store.Alert
	waitFor(t, "alert firing", 20*time.Second, func() bool {
		for _, a := range in.alerts(t) {
			if a.Key == "slow-deferring" && a.Firing {
				fired = a
				return true
			}
		}
		return false
	})
	if fired.Action != "throttle" || fired.ActionState != "applied" || fired.Value < 50 || fired.Destination != "slow.test" {
		t.Fatalf("fired alert: %+v", fired)
	}
	d, ok := in.destination(t, "slow.test")
	if !ok || d.Throttle.RatePerMinute != 300 || d.Throttle.RateCap != 300 {
		t.Fatalf("while firing, slow.test: %+v (present %v), want its rate capped at 300/min", d.Throttle, ok)
	}
	// The public API lists it for the alert tenant's admin key.
	var apiRes struct {
		Items []store.Alert `json:"items"`
	}
	if code := in.call(t, in.Creds.APIKey, "GET", "/v1/alerts", nil, nil, &apiRes); code != 200 || len(apiRes.Items) == 0 || !apiRes.Items[0].Firing {
		t.Fatalf("GET /v1/alerts: %d %+v", code, apiRes)
	}

	deferring.Store(false)
	for _, id := range ids {
		in.WaitFinal(id, 30*time.Second)
	}
	var resolved store.Alert
	waitFor(t, "alert resolved", 20*time.Second, func() bool {
		for _, a := range in.alerts(t) {
			if a.Key == "slow-deferring" && !a.Firing && !a.ResolvedAt.IsZero() {
				resolved = a
				return true
			}
		}
		return false
	})
	if resolved.ActionState != "ended" {
		t.Errorf("resolved alert: %+v", resolved)
	}
	// The cap is gone: the destination is back at its configured rate (or
	// has been forgotten, idle and unthrottled, and starts from it anew).
	d, ok = in.destination(t, "slow.test")
	if ok && (d.Throttle.RatePerMinute != 600 || d.Throttle.RateCap != 0) {
		t.Fatalf("after resolving, slow.test: %+v, want 600/min and no cap", d.Throttle)
	}
	r.wait("alert webhooks", 20*time.Second, func() bool { return len(r.byID) >= 2 })
	r.mu.Lock()
	defer r.mu.Unlock()
	var types []string
	for _, id := range r.order {
		p := r.byID[id]
		types = append(types, p.Type)
		if p.Data.Alert["rule"] != "slow-deferring" || p.Data.Alert["destination"] != "slow.test" {
			t.Errorf("webhook %s: alert %+v", id, p.Data.Alert)
		}
	}
	if len(types) != 2 || types[0] != "alert_fired" || types[1] != "alert_resolved" {
		t.Fatalf("alert webhooks: %v", types)
	}
}

// TestAlertHoldLane: an oldest_queued alert holds the low lane: low-lane
// mail waits while normal mail to the same domain goes, also across a
// restart; an operator's release lets it go; the alert resolves once the
// old message is delivered.
func TestAlertHoldLane(t *testing.T) {
	dns := testkit.StartDNS(t)
	var deferring atomic.Bool
	deferring.Store(true)
	mx := testkit.StartMX(t, "127.0.0.2", 0, testkit.Script{Data: func(m *testkit.Message, _ int) testkit.Reply {
		if deferring.Load() && len(m.To) > 0 && m.To[0] == "old@stuck.test" {
			return testkit.Reply{Code: 451, Text: "4.3.0 not now"}
		}
		return testkit.Reply{}
	}})
	for _, d := range []string{"stuck.test", "fine.test"} {
		dns.SetA("mx."+d, "127.0.0.2")
		dns.SetMX(d, testkit.MX{Pref: 10, Host: "mx." + d})
	}
	cfg := `
[alerts]
interval = "200ms"

[[alert]]
name = "queue-stuck"
kind = "oldest_queued"
age = "1s"
action = "hold_lane"
lane = "low"
`
	in := Start(t, Options{DNS: dns.Addr(), DeliveryPort: mx.Port(), RetryMin: 300 * time.Millisecond, RetryMax: 600 * time.Millisecond,
		Config: cfg})
	old := in.Send("sender@app.test", []string{"old@stuck.test"}, msgBody("old"))
	waitFor(t, "alert firing", 20*time.Second, func() bool {
		as := in.alerts(t)
		return len(as) == 1 && as[0].Firing && as[0].ActionState == "applied"
	})
	send := func(lane, to string) string {
		body := apiSend(to)
		body["lane"] = lane
		var res struct {
			ID string `json:"id"`
		}
		if code := in.call(t, in.Creds.APIKey, "POST", "/v1/messages", body, nil, &res); code != 202 {
			t.Fatalf("send: %d", code)
		}
		return res.ID
	}
	low := send("low", "bulk@fine.test")
	normal := send("normal", "receipt@fine.test")
	in.WaitFinal(normal, 20*time.Second)
	if d := in.Show(low).Deliveries[0]; d.State != store.Queued || d.Attempts != 0 {
		t.Fatalf("low-lane mail while its lane is held: %+v", d)
	}
	// Still held after a crash: the firing alert's action comes back
	// before the scheduler starts.
	in.Kill()
	in.Restart()
	normal2 := send("normal", "receipt2@fine.test")
	in.WaitFinal(normal2, 20*time.Second)
	if d := in.Show(low).Deliveries[0]; d.State != store.Queued || d.Attempts != 0 {
		t.Fatalf("low-lane mail after the restart: %+v", d)
	}
	// The operator lets it go; the alert keeps firing.
	var rel store.Alert
	in.CLI(&rel, "alerts", "release", "queue-stuck")
	if !rel.Firing || rel.ActionState != "released" {
		t.Fatalf("released: %+v", rel)
	}
	in.WaitFinal(low, 20*time.Second)
	deferring.Store(false)
	in.WaitFinal(old, 20*time.Second)
	waitFor(t, "alert resolved", 20*time.Second, func() bool {
		as := in.alerts(t)
		return len(as) == 1 && !as[0].Firing && as[0].ActionState == "released"
	})
}
