package e2e

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/api"
	"github.com/posthorn/posthorn/internal/testkit"
)

// backlogAndProbe queues n backlog messages (lane backlogLane, tenant of
// key) to a slow destination, then sends probes priority messages with
// probeKey one by one and returns their accept-to-delivered latencies and
// how many backlog messages were delivered meanwhile.
func backlogAndProbe(t *testing.T, n int, backlogLane, probeLane string, probeKeyFor func(*Instance) string) ([]time.Duration, int) {
	t.Helper()
	w := newWorld(t, Options{Config: "[delivery]\nmax_connections_per_destination = 4\n"}, "127.0.0.2")
	w.domain("slow.test", "127.0.0.2")
	mx := w.mx["127.0.0.2"]
	mx.SetScript(testkit.Script{DiscardData: true, Stall: testkit.Stalls{EndOfData: 20 * time.Millisecond}})
	in := w.in
	for sent := 0; sent < n; sent += 1000 {
		items := make([]map[string]any, min(1000, n-sent))
		for i := range items {
			items[i] = map[string]any{"from": "news@app.test", "to": []string{"backlog@slow.test"}, "text": "news", "lane": backlogLane}
		}
		var res api.BulkResponse
		if code := in.call(t, in.Creds.APIKey, "POST", "/v1/messages/bulk", map[string]any{"messages": items}, nil, &res); code != 200 || res.Failed > 0 {
			t.Fatalf("bulk: %d %+v", code, res.Items[0])
		}
	}
	count := func(rcpt string) int {
		c := 0
		for _, m := range mx.Messages() {
			if m.To[0] == rcpt {
				c++
			}
		}
		return c
	}
	before := count("backlog@slow.test")
	probeKey := probeKeyFor(in)
	sentAt := map[string]time.Time{}
	for i := 0; i < 20; i++ {
		rcpt := fmt.Sprintf("probe-%d@slow.test", i)
		sentAt[rcpt] = time.Now()
		var res api.SendResponse
		if code := in.call(t, probeKey, "POST", "/v1/messages", map[string]any{"from": "app@app.test", "to": []string{rcpt},
			"text": "code 123456", "lane": probeLane}, nil, &res); code != 202 {
			t.Fatalf("probe: %d", code)
		}
		time.Sleep(50 * time.Millisecond)
	}
	deadline := time.Now().Add(30 * time.Second)
	var lat []time.Duration
	for {
		lat = lat[:0]
		for _, m := range mx.Messages() {
			if t0, ok := sentAt[m.To[0]]; ok {
				lat = append(lat, m.Time.Sub(t0))
			}
		}
		if len(lat) == len(sentAt) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(lat) != len(sentAt) {
		t.Fatalf("only %d of %d probes delivered", len(lat), len(sentAt))
	}
	slices.Sort(lat)
	return lat, count("backlog@slow.test") - before
}

// TestLanePriority: high-lane mail overtakes a low-lane backlog to a slow
// destination, and the backlog keeps moving.
func TestLanePriority(t *testing.T) {
	lat, progressed := backlogAndProbe(t, 3000, "low", "high", func(in *Instance) string { return in.Creds.APIKey })
	p99 := lat[len(lat)*99/100]
	t.Logf("high lane behind 3000 low: p50 %s p99 %s; low lane delivered %d meanwhile", lat[len(lat)/2], p99, progressed)
	if p99 > time.Second {
		t.Fatalf("high-lane p99 %s > 1s", p99)
	}
	if progressed == 0 {
		t.Fatal("the low lane made no progress while high-lane mail flowed")
	}
}

// TestTenantFairness: tenant B's mail is not stuck behind tenant A's
// backlog in the same lane.
func TestTenantFairness(t *testing.T) {
	lat, _ := backlogAndProbe(t, 3000, "normal", "normal", func(in *Instance) string {
		in.CLI(nil, "tenant", "add", "tenant-b")
		var k api.KeyResponse
		in.CLI(&k, "apikey", "create", "--tenant", "tenant-b", "--scope", "send,read")
		return k.APIKey
	})
	p99 := lat[len(lat)*99/100]
	t.Logf("tenant B behind tenant A's 3000: p50 %s p99 %s", lat[len(lat)/2], p99)
	if p99 > time.Second {
		t.Fatalf("tenant B p99 %s > 1s", p99)
	}
}
