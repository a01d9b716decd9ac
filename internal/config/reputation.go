package config

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/posthorn/posthorn/internal/smtpproto"
)

// Pool is a group of source addresses that mail leaves from, chosen by
// the mail's lane, tenant or sending domain (internal/pool).
type Pool struct {
	Name      string   `toml:"name"`
	Addresses []string `toml:"addresses"` // IPv4/IPv6 source addresses, present on this host
	Weights   []int    `toml:"weights"`   // optional, one per address (default 1 each)
	EHLO      string   `toml:"ehlo"`      // EHLO name for this pool's connections ("" = hostname)
	// Selectors: mail matches a pool when every non-empty list matches it.
	Lanes   []string `toml:"lanes"`
	Tenants []string `toml:"tenants"` // names (resolved at start) or IDs
	Domains []string `toml:"domains"` // envelope sender domains
	// Warm-up: the addresses in Warming follow the schedule from day 1 on
	// WarmupStart (YYYY-MM-DD, UTC midnight, or an RFC 3339 time);
	// Warmup overrides [warmup] schedule.
	Warming     []string `toml:"warming"`
	WarmupStart string   `toml:"warmup_start"`
	Warmup      []int    `toml:"warmup"`
}

// Warmup holds warm-up settings shared by every pool.
type Warmup struct {
	// Schedule is the default per-day cap per destination (nil: the
	// built-in ramp of internal/pool).
	Schedule []int `toml:"schedule"`
	// DayLength is how long a warm-up "day" lasts (tests compress it).
	DayLength Duration `toml:"day_length"`
	// CountsFile keeps today's counts across restarts ("" = data_dir/warmup.json).
	CountsFile string `toml:"counts_file"`
}

// Blocklists configures DNS blocklist monitoring (internal/blocklist).
type Blocklists struct {
	Enabled     bool     `toml:"enabled"`
	Interval    Duration `toml:"interval"`
	IPZones     []string `toml:"ip_zones"`
	DomainZones []string `toml:"domain_zones"`
	// IPs are checked when no pools are configured (pools' addresses
	// otherwise); sending domains come from the domain store.
	IPs     []string `toml:"ips"`
	Domains []string `toml:"domains"` // checked in addition to the sending domains
	Timeout Duration `toml:"timeout"` // per query
	// Lists override or add to the built-in table of known lists.
	Lists []BlocklistInfo `toml:"list"`
}

// BlocklistInfo describes one list: what its codes mean, how much a
// listing matters (weight 1..10), and where to ask for removal.
type BlocklistInfo struct {
	Zone       string            `toml:"zone"`
	Name       string            `toml:"name"`
	Weight     int               `toml:"weight"`
	RemovalURL string            `toml:"removal_url"`
	Codes      map[string]string `toml:"codes"` // "127.0.0.2" -> meaning
}

// DMARC configures the intake of DMARC aggregate reports (internal/dmarc).
type DMARC struct {
	// RUA is the address reports are sent to; it must be at the
	// bounce_domain (the inbound listener takes mail only there).
	RUA              string `toml:"rua"`
	MaxReportBytes   int64  `toml:"max_report_bytes"`   // compressed attachment
	MaxXMLBytes      int64  `toml:"max_xml_bytes"`      // after decompression
	MaxRecords       int    `toml:"max_records"`        // <record> elements per report
	MaxCompressRatio int    `toml:"max_compress_ratio"` // decompressed/compressed
}

// DefaultWarmupDay is a warm-up day's length.
const DefaultWarmupDay = 24 * time.Hour

func (c *Config) reputationDefaults() {
	c.Warmup.DayLength = Duration{DefaultWarmupDay}
	c.Blocklists.Interval = Duration{4 * time.Hour}
	c.Blocklists.Timeout = Duration{5 * time.Second}
	c.DMARC = DMARC{MaxReportBytes: 1 << 20, MaxXMLBytes: 20 << 20, MaxRecords: 100000, MaxCompressRatio: 1000}
}

// validateReputation checks [[pool]], [warmup], [blocklists] and [dmarc].
func (c *Config) validateReputation(bad func(string, ...any)) {
	names := map[string]bool{}
	seen := map[netip.Addr]string{}
	for i := range c.Pools {
		p := &c.Pools[i]
		if p.Name == "" || names[p.Name] {
			bad("pool %d: needs a unique name", i+1)
		}
		names[p.Name] = true
		if len(p.Addresses) == 0 {
			bad("pool %s: no addresses", p.Name)
		}
		own := map[string]bool{}
		for _, a := range p.Addresses {
			ip, err := netip.ParseAddr(a)
			if err != nil {
				bad("pool %s: address %q: %v", p.Name, a, err)
				continue
			}
			if other, ok := seen[ip]; ok {
				bad("pool %s: address %s is also in pool %s", p.Name, a, other)
			}
			seen[ip] = p.Name
			own[ip.String()] = true
		}
		if len(p.Weights) != 0 && len(p.Weights) != len(p.Addresses) {
			bad("pool %s: weights needs one entry per address", p.Name)
		}
		for _, w := range p.Weights {
			if w <= 0 {
				bad("pool %s: weights must be positive", p.Name)
			}
		}
		if p.EHLO != "" {
			if _, err := smtpproto.NormalizeDomain(p.EHLO, false); err != nil {
				bad("pool %s: ehlo %q is not a domain name", p.Name, p.EHLO)
			}
		}
		for _, l := range p.Lanes {
			if l != "high" && l != "normal" && l != "low" {
				bad("pool %s: lane %q: want high, normal or low", p.Name, l)
			}
		}
		for j, d := range p.Domains {
			p.Domains[j] = strings.ToLower(strings.TrimSuffix(d, "."))
		}
		for _, w := range p.Warming {
			ip, err := netip.ParseAddr(w)
			if err != nil || !own[ip.String()] {
				bad("pool %s: warming address %q is not one of its addresses", p.Name, w)
			}
		}
		if len(p.Warming) > 0 {
			if _, err := ParseWarmupStart(p.WarmupStart); err != nil {
				bad("pool %s: %v", p.Name, err)
			}
		}
		for _, n := range p.Warmup {
			if n <= 0 {
				bad("pool %s: warmup caps must be positive", p.Name)
			}
		}
	}
	for _, n := range c.Warmup.Schedule {
		if n <= 0 {
			bad("warmup.schedule: caps must be positive")
		}
	}
	if c.Warmup.DayLength.Duration <= 0 {
		bad("warmup.day_length must be positive")
	}
	b := &c.Blocklists
	if b.Enabled && (b.Interval.Duration < time.Minute || b.Timeout.Duration <= 0) {
		bad("blocklists.interval must be at least 1m and blocklists.timeout positive")
	}
	for _, a := range b.IPs {
		if _, err := netip.ParseAddr(a); err != nil {
			bad("blocklists.ips: %q: %v", a, err)
		}
	}
	for _, l := range b.Lists {
		if l.Zone == "" || l.Weight < 0 || l.Weight > 10 {
			bad("blocklists.list %q: needs a zone and a weight of 0..10", l.Zone)
		}
	}
	d := &c.DMARC
	if d.RUA != "" {
		a, err := smtpproto.ParseAddress(d.RUA, false)
		switch {
		case err != nil:
			bad("dmarc.rua %q: %v", d.RUA, err)
		case c.BounceDomain == "" || !strings.EqualFold(a.Domain, c.BounceDomain):
			bad("dmarc.rua %q must be an address at bounce_domain (%q), where the inbound listener takes mail", d.RUA, c.BounceDomain)
		default:
			d.RUA = strings.ToLower(a.String())
		}
	}
	if d.MaxReportBytes <= 0 || d.MaxXMLBytes <= 0 || d.MaxRecords <= 0 || d.MaxCompressRatio <= 0 {
		bad("dmarc limits must be positive")
	}
}

// ParseWarmupStart reads a warmup_start: a date (its UTC midnight) or an
// RFC 3339 time.
func ParseWarmupStart(s string) (time.Time, error) {
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("warmup_start %q: want YYYY-MM-DD or an RFC 3339 time", s)
}

// PoolAddresses lists every pool's addresses.
func (c *Config) PoolAddresses() []string {
	var out []string
	for _, p := range c.Pools {
		out = append(out, p.Addresses...)
	}
	return out
}

func (p Pool) String() string { return fmt.Sprintf("pool %s", p.Name) }
