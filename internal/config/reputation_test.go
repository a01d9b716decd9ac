package config

import (
	"strings"
	"testing"
)

// TestReputationValidation: pools, warm-up and the rua address are
// checked with messages that name the setting.
func TestReputationValidation(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"bad address", func(c *Config) { c.Pools = []Pool{{Name: "a", Addresses: []string{"300.1.1.1"}}} }, `address "300.1.1.1"`},
		{"address in two pools", func(c *Config) {
			c.Pools = []Pool{{Name: "a", Addresses: []string{"192.0.2.1"}}, {Name: "b", Addresses: []string{"192.0.2.1"}}}
		}, "also in pool a"},
		{"warming stranger", func(c *Config) {
			c.Pools = []Pool{{Name: "a", Addresses: []string{"192.0.2.1"}, Warming: []string{"192.0.2.2"}, WarmupStart: "2026-12-01"}}
		}, "warming address"},
		{"warmup start", func(c *Config) {
			c.Pools = []Pool{{Name: "a", Addresses: []string{"192.0.2.1"}, Warming: []string{"192.0.2.1"}, WarmupStart: "tomorrow"}}
		}, "warmup_start"},
		{"weights", func(c *Config) { c.Pools = []Pool{{Name: "a", Addresses: []string{"192.0.2.1"}, Weights: []int{1, 2}}} }, "one entry per address"},
		{"lane", func(c *Config) {
			c.Pools = []Pool{{Name: "a", Addresses: []string{"192.0.2.1"}, Lanes: []string{"bulk"}}}
		}, `lane "bulk"`},
		{"rua elsewhere", func(c *Config) { c.BounceDomain, c.DMARC.RUA = "bounces.example.com", "dmarc@example.com" }, "must be an address at bounce_domain"},
		{"blocklist ip", func(c *Config) { c.Blocklists.IPs = []string{"nope"} }, "blocklists.ips"},
	} {
		cfg := Default()
		c.edit(&cfg)
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	cfg := Default()
	cfg.BounceDomain, cfg.DMARC.RUA = "bounces.example.com", "DMARC@Bounces.Example.com"
	cfg.Pools = []Pool{{Name: "default", Addresses: []string{"192.0.2.1", "2001:db8::1"}, Warming: []string{"2001:db8::1"}, WarmupStart: "2026-12-01"}}
	if err := cfg.Validate(); err != nil || cfg.DMARC.RUA != "dmarc@bounces.example.com" {
		t.Fatalf("valid config: %v (rua %q)", err, cfg.DMARC.RUA)
	}
}
