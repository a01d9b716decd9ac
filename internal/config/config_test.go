package config

import (
	"os"
	"reflect"
	"strings"
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
		c.SMTP.MaxConnectionsPerIP != d.SMTP.MaxConnectionsPerIP || c.SMTP.DataTimeout != d.SMTP.DataTimeout || c.SMTP.MaxAuthFailures != d.SMTP.MaxAuthFailures ||
		c.SubmissionsListen != d.SubmissionsListen || c.Delivery.MTASTS != d.Delivery.MTASTS || c.Delivery.DNSSEC != d.Delivery.DNSSEC ||
		c.Delivery.TLSCAFile != d.Delivery.TLSCAFile || c.TLSRPT != d.TLSRPT || len(c.Delivery.DNSSECTrustedResolvers) != 0 ||
		!reflect.DeepEqual(c.Scan, d.Scan) || !reflect.DeepEqual(c.Abuse, d.Abuse) || !reflect.DeepEqual(c.Policy, d.Policy) ||
		c.EventsRetention != d.EventsRetention || c.BodyRetention != d.BodyRetention ||
		c.Warmup.DayLength != d.Warmup.DayLength || c.Blocklists.Enabled != d.Blocklists.Enabled || c.Blocklists.Interval != d.Blocklists.Interval ||
		c.Blocklists.Timeout != d.Blocklists.Timeout || c.DMARC != d.DMARC {
		t.Fatalf("example differs from the defaults:\n%+v\n%+v", c, d)
	}
	if !reflect.DeepEqual(c.Webhooks, d.Webhooks) || !reflect.DeepEqual(c.Alerts, d.Alerts) {
		t.Fatalf("example [webhooks]/[alerts] differ from the defaults:\n%+v %+v\n%+v %+v", c.Webhooks, c.Alerts, d.Webhooks, d.Alerts)
	}
}

func TestHostnameMustBeADomain(t *testing.T) {
	for _, h := range []string{"mail.example.com\r\n250 injected", "mail example.com", "bad_name.example", "[127.0.0.1]", "-x.example"} {
		c := Default()
		c.Hostname = h
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), "hostname") {
			t.Errorf("hostname %q accepted (err %v)", h, err)
		}
	}
	for _, h := range []string{"mail.example.com", "localhost", "MX1.Example.COM", "mail.example.com."} {
		c := Default()
		c.Hostname = h
		if err := c.Validate(); err != nil {
			t.Errorf("hostname %q refused: %v", h, err)
		}
	}
}

func TestTrustedNetworksOpenRelay(t *testing.T) {
	for _, n := range []string{"0.0.0.0/0", "::/0", "10.0.0.0/8, 0.0.0.0/0"} {
		c := Default()
		c.TrustedNetworks = strings.Split(n, ",")
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), "open relay") {
			t.Errorf("trusted_networks %s: err %v, want an open relay error", n, err)
		}
	}
	c := Default()
	c.TrustedNetworks = []string{"127.0.0.0/8", "10.0.0.0/8", "192.168.1.0/24", "fd00::/8", "203.0.113.7", "198.51.100.0/24"}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if w := c.Warnings(); len(w) != 0 {
		t.Fatalf("private and small ranges warned about: %q", w)
	}
	c.TrustedNetworks = []string{"8.0.0.0/8", "2001:db8::/32"}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if w := c.Warnings(); len(w) != 2 || !strings.Contains(w[0], "8.0.0.0/8") {
		t.Fatalf("warnings for large public ranges: %q", w)
	}
}

func TestTLSPolicies(t *testing.T) {
	c := Default()
	c.Destinations = []DestinationLimits{{Name: "provider:google", TLSPolicy: "verify"}, {Name: "a.example", TLSPolicy: "may"}}
	c.TLSPolicies = []TLSPolicy{{Domain: "A.Example.", Policy: "encrypt"}, {Domain: "*", Policy: "dane"}}
	c.Delivery.DNSSECTrustedResolvers = []string{"192.0.2.53"}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	m := c.TLSPolicyMap()
	if m["provider:google"] != "verify" || m["a.example"] != "encrypt" || m["*"] != "dane" {
		t.Fatalf("policy map %v ([[tls_policy]] wins over [[destination]])", m)
	}
	if w := c.Warnings(); len(w) != 1 || !strings.Contains(w[0], "dnssec is off") {
		t.Fatalf("dane without dnssec: warnings %q", w)
	}
	for _, bad := range []func(*Config){
		func(c *Config) { c.TLSPolicies = []TLSPolicy{{Domain: "x.example", Policy: "secure"}} },
		func(c *Config) { c.TLSPolicies = []TLSPolicy{{Policy: "may"}} },
		func(c *Config) { c.Destinations = []DestinationLimits{{Name: "x", TLSPolicy: "strict"}} },
		func(c *Config) { c.Delivery.DNSSECTrustedResolvers = []string{"resolver.example"} },
		func(c *Config) { c.SubmissionsListen = "465" },
		func(c *Config) { c.Routes = []Route{{Domain: "x.example", Host: "relay:25", TLS: "dane"}} },
	} {
		c := Default()
		bad(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("accepted %+v", c.TLSPolicies)
		}
	}
}
