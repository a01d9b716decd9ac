package e2e

import (
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/testkit"
)

// TestProviderGrouping: two domains hosted on one provider's MX hosts
// share one destination ("provider:google") with that provider's limits,
// here overridden in config; deliveries record the provider.
func TestProviderGrouping(t *testing.T) {
	cfg := "[[destination]]\nname = \"provider:google\"\nmax_connections = 3\n"
	w := newWorld(t, Options{Config: cfg}, "127.0.0.2")
	w.dns.SetMX("alpha.test", testkit.MX{Pref: 10, Host: "alt1.aspmx.l.google.com"})
	w.dns.SetMX("beta.test", testkit.MX{Pref: 5, Host: "gmail-smtp-in.l.google.com"})
	w.dns.SetA("alt1.aspmx.l.google.com", "127.0.0.2")
	w.dns.SetA("gmail-smtp-in.l.google.com", "127.0.0.2")
	in := w.in
	for round := 0; round < 2; round++ {
		for _, r := range []string{"a@alpha.test", "b@beta.test"} {
			id := in.Send("s@app.test", []string{r}, msgBody("provider"))
			d := in.WaitFinal(id, 20*time.Second)
			if dl := d.Deliveries[0]; dl.State != store.Delivered || dl.Provider != "google" {
				t.Fatalf("%s: %+v", r, dl)
			}
		}
	}
	var dests struct {
		Items []struct {
			Destination string `json:"destination"`
			Throttle    struct {
				MaxConns int `json:"max_connections"`
			} `json:"throttle"`
		} `json:"items"`
	}
	in.CLI(&dests, "destinations")
	found := false
	for _, d := range dests.Items {
		if d.Destination == "provider:google" {
			found = true
			if d.Throttle.MaxConns != 3 {
				t.Fatalf("provider:google has max %d connections, want the configured 3", d.Throttle.MaxConns)
			}
		}
	}
	if !found {
		t.Fatalf("no provider:google destination: %+v", dests.Items)
	}
}

// TestRecipientsPerTransaction: a destination's recipient limit splits
// one message's recipients over several transactions.
func TestRecipientsPerTransaction(t *testing.T) {
	w := newWorld(t, Options{Config: "[[destination]]\nname = \"split.test\"\nmax_recipients_per_transaction = 2\n"}, "127.0.0.2")
	w.domain("split.test", "127.0.0.2")
	rcpts := []string{"a@split.test", "b@split.test", "c@split.test", "d@split.test", "e@split.test"}
	id := w.in.Send("s@app.test", rcpts, msgBody("split"))
	d := w.in.WaitFinal(id, 20*time.Second)
	for _, r := range rcpts {
		if dl := delivery(t, d, r); dl.State != store.Delivered {
			t.Fatalf("%s: %+v", r, dl)
		}
	}
	var sizes []int
	for _, m := range w.mx["127.0.0.2"].Messages() {
		sizes = append(sizes, len(m.To))
	}
	if len(sizes) != 3 || sizes[0] != 2 || sizes[1] != 2 || sizes[2] != 1 {
		t.Fatalf("transactions of %v recipients, want [2 2 1]", sizes)
	}
}
