package config

import (
	"os"
	"testing"
	"time"
)

func TestDestinationLimits(t *testing.T) {
	c := Default()
	c.Destinations = []DestinationLimits{{Name: "provider:google", MaxConnections: 3}, {Name: "example.com", RatePerMinute: 60}}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	g := c.DestinationLimitsFor("provider:google")
	if g.MaxConnections != 3 || g.MaxMessagesPerConnection != 100 {
		t.Fatalf("google: %+v (config overrides built-in connections, built-in messages per connection stay)", g)
	}
	y := c.DestinationLimitsFor("provider:yahoo")
	if y.MaxConnections != 5 || y.Cooldown.Duration != 15*time.Minute {
		t.Fatalf("yahoo built-in: %+v", y)
	}
	e := c.DestinationLimitsFor("EXAMPLE.com")
	if e.RatePerMinute != 60 || e.MaxConnections != c.Delivery.MaxConnectionsPerDest {
		t.Fatalf("example.com: %+v", e)
	}
	c.Destinations = append(c.Destinations, DestinationLimits{MaxConnections: 1})
	if err := c.Validate(); err == nil {
		t.Fatal("destination without a name accepted")
	}
}

func TestLoadRejectsUnknownKeys(t *testing.T) {
	p := t.TempDir() + "/c.toml"
	if err := writeFile(p, "smtp_listen = \"127.0.0.1:2525\"\nsmtp_lisen = \"x\"\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p); err == nil {
		t.Fatal("a typo in a key was accepted")
	}
}

func writeFile(p, s string) error { return os.WriteFile(p, []byte(s), 0o600) }

// TestExampleConfig keeps docs/posthorn.example.toml loadable and equal to
// the defaults it claims to list.
func TestExampleConfig(t *testing.T) {
	c, err := Load("../../docs/posthorn.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	d := Default()
	d.Validate()
	if c.SMTPListen != d.SMTPListen || c.SMTP.MaxMessageSize != d.SMTP.MaxMessageSize || c.Delivery.MaxConnectionsPerDest != d.Delivery.MaxConnectionsPerDest ||
		c.QueueLifetime != d.QueueLifetime || c.API.MaxBulk != d.API.MaxBulk || c.Suppress.OnHoldAfter != d.Suppress.OnHoldAfter ||
		c.EventsRetention != d.EventsRetention || c.BodyRetention != d.BodyRetention {
		t.Fatalf("example differs from the defaults:\n%+v\n%+v", c, d)
	}
}
