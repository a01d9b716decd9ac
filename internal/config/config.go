// Package config is posthorn's typed configuration: defaults, the TOML
// file, and validation. Command-line flags are applied by cmd/posthorn on
// top of the file (flags win).
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/posthorn/posthorn/internal/smtpproto"
)

// Duration is a time.Duration written as a Go duration string in TOML.
type Duration struct{ time.Duration }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Config is the whole configuration.
type Config struct {
	DataDir  string `toml:"data_dir"`
	Hostname string `toml:"hostname"`
	// Store is where the queue and accounts live: "" for the embedded
	// SQLite database in the data directory, or a PostgreSQL URL
	// (postgres://user@host/db) that several nodes share (cluster.go).
	Store string `toml:"store"`
	// NodeName names this node in a cluster (leases, heartbeats); "" is
	// the hostname with a hash of the data directory (NodeName()).
	NodeName   string `toml:"node_name"`
	SMTPListen string `toml:"smtp_listen"`
	// SubmissionsListen serves submission over implicit TLS (RFC 8314,
	// port 465); "" disables it.
	SubmissionsListen string   `toml:"submissions_listen"`
	HTTPListen        string   `toml:"http_listen"`
	DNSServer         string   `toml:"dns_server"`
	DeliveryPort      int      `toml:"delivery_port"`
	RetryMin          Duration `toml:"retry_min"`
	RetryMax          Duration `toml:"retry_max"`
	QueueLifetime     Duration `toml:"queue_lifetime"`
	Smarthost         string   `toml:"smarthost"`
	TrustedNetworks   []string `toml:"trusted_networks"`
	LogLevel          string   `toml:"log_level"`
	// ShutdownTimeout bounds how long SIGTERM waits for deliveries in
	// flight; what is still being sent then is retried after the next start.
	ShutdownTimeout Duration `toml:"shutdown_timeout"`
	// BounceDomain turns on VERP return paths (bounces+<token>@domain, one
	// per delivery, so one recipient per SMTP transaction) and the inbound
	// listener that takes bounces and complaints for it.
	BounceDomain  string `toml:"bounce_domain"`
	InboundListen string `toml:"inbound_listen"`
	// AllowUnverifiedSenders lifts the check that a tenant sends only from
	// its own verified domains (for migrations and tests; off by default).
	AllowUnverifiedSenders bool `toml:"allow_unverified_senders"`
	// MetricsListen, when set, serves /metrics there without
	// authentication (bind it to a private address).
	MetricsListen string `toml:"metrics_listen"`
	// EventsRetention is how long the activity log keeps events and
	// BodyRetention how long finished messages keep their bodies (the
	// message rows stay); 0 keeps them forever.
	EventsRetention Duration `toml:"events_retention"`
	BodyRetention   Duration `toml:"body_retention"`

	SMTP     SMTP     `toml:"smtp"`
	API      API      `toml:"api"`
	Delivery Delivery `toml:"delivery"`
	Classify Classify `toml:"classify"`
	Suppress Suppress `toml:"suppression"`
	// Unsubscribe adds one-click unsubscribe (RFC 8058) to mail in Lanes
	// when BaseURL (the public URL of this server's HTTP listener) is set.
	Unsubscribe Unsubscribe `toml:"unsubscribe"`
	Routes      []Route     `toml:"route"`
	// Providers add to or override the built-in MX-suffix groups.
	Providers []Provider `toml:"provider"`
	// Destinations set limits for one destination: a domain, or a
	// provider as "provider:NAME".
	Destinations []DestinationLimits `toml:"destination"`
	// Domains configures sending domains (internal/domain).
	Domains Domains `toml:"domains"`
	// Sendmail configures the sendmail-compatible command.
	Sendmail Sendmail `toml:"sendmail"`
	// Webhooks, alert evaluation and alert rules: events.go.
	Webhooks   Webhooks    `toml:"webhooks"`
	Alerts     Alerts      `toml:"alerts"`
	AlertRules []AlertRule `toml:"alert"`
	// TLSPolicies set the TLS policy of delivery to a domain (see
	// TLSPolicy), like Postfix's smtp_tls_policy_maps.
	TLSPolicies []TLSPolicy `toml:"tls_policy"`
	TLSRPT      TLSRPT      `toml:"tlsrpt"`
	// Scan, Abuse and Policy protect what leaves (docs/abuse.md).
	Scan   Scan   `toml:"scan"`
	Abuse  Abuse  `toml:"abuse"`
	Policy Policy `toml:"policy"`
	// Sender reputation (reputation.go): source pools, warm-up,
	// blocklist monitoring, DMARC aggregate reports.
	Pools      []Pool     `toml:"pool"`
	Warmup     Warmup     `toml:"warmup"`
	Blocklists Blocklists `toml:"blocklists"`
	DMARC      DMARC      `toml:"dmarc"`
}

// TLSPolicy is one [[tls_policy]] entry: the policy for delivery to a
// domain, a provider ("provider:NAME") or every domain ("*").
type TLSPolicy struct {
	Domain string `toml:"domain"`
	Policy string `toml:"policy"`
}

// TLSPolicyLevels are the values of tls_policy: none (no TLS), may
// (opportunistic), encrypt (TLS required, certificate not checked),
// verify (TLS with a certificate valid for the MX name), dane (DANE when
// the host has validated TLSA records, else may), mta-sts (MTA-STS when
// the domain has a policy, else may).
var TLSPolicyLevels = []string{"none", "may", "encrypt", "verify", "dane", "mta-sts"}

// TLSRPT configures SMTP TLS reporting (RFC 8460): daily reports of the
// TLS sessions with domains that publish a policy, sent to the rua of
// their _smtp._tls TXT record.
type TLSRPT struct {
	Enabled      bool   `toml:"enabled"`
	Organization string `toml:"organization"` // organization-name in reports; default: the hostname
	Contact      string `toml:"contact"`      // contact-info; default: postmaster@hostname
	// AllowPrivate lets https: report URIs point at private and loopback
	// addresses (off: a report address must not reach into our network).
	AllowPrivate bool `toml:"allow_private"`
}

// Sendmail configures `posthorn sendmail` (and posthorn installed as
// /usr/sbin/sendmail): the tenant its mail is queued for, and the socket
// local users reach it through. That socket serves nothing but queueing
// a message for Tenant, so it may be open to every local user (like
// sendmail, which any local user may run); the admin socket stays 0600.
type Sendmail struct {
	Tenant     string `toml:"tenant"`      // name or id; "" is the default tenant
	Socket     string `toml:"socket"`      // "" is <data_dir>/sendmail.sock; "off": no socket (sendmail uses the admin socket)
	SocketMode string `toml:"socket_mode"` // octal permissions of the socket
}

// SendmailSocket is the sendmail socket's path ("" when it is off).
func (c *Config) SendmailSocket() string {
	switch c.Sendmail.Socket {
	case "off":
		return ""
	case "":
		return filepath.Join(c.DataDir, "sendmail.sock")
	}
	return c.Sendmail.Socket
}

// SendmailSocketMode is the socket's permissions (0666 when unparsable;
// Validate reports that).
func (c *Config) SendmailSocketMode() os.FileMode {
	m, err := strconv.ParseUint(c.Sendmail.SocketMode, 8, 32)
	if err != nil || m > 0o777 {
		return 0o666
	}
	return os.FileMode(m)
}

// Scan configures content scanning with rspamd; off when RspamdURL is "".
type Scan struct {
	RspamdURL    string       `toml:"rspamd_url"`    // e.g. http://127.0.0.1:11333 (the normal worker)
	Timeout      Duration     `toml:"timeout"`       // per message
	Fail         string       `toml:"fail"`          // "open" (accept unscanned) or "closed" (451) when rspamd does not answer
	ActionReject string       `toml:"action_reject"` // "reject" (550) or "hold" for what rspamd would reject
	Tenants      []ScanTenant `toml:"tenant"`
}

// ScanTenant overrides the scan policy for one tenant (by name or ID);
// empty fields keep the [scan] setting.
type ScanTenant struct {
	Tenant       string `toml:"tenant"`
	Off          bool   `toml:"off"`
	Fail         string `toml:"fail"`
	ActionReject string `toml:"action_reject"`
}

// Abuse configures quotas and the compromised-account detector.
type Abuse struct {
	// Hour is the length of an hour for quotas and baselines; only tests
	// change it (a compressed clock).
	Hour                Duration `toml:"hour"`
	Window              Duration `toml:"window"`         // the current rate is measured over this window
	BaselineHours       int      `toml:"baseline_hours"` // hours of history in a sender's baseline
	Factor              float64  `toml:"factor"`         // rate above factor x baseline p95 per hour is a jump; 0: off
	MinVolume           int      `toml:"min_volume"`     // ... with at least this many messages in the window
	MaxRecipientDomains int      `toml:"max_recipient_domains"`
	// Hard bounces above bounce_share of a sender's recipients over the
	// last bounce_hours hours, once there are bounce_min_recipients, hold
	// its new mail too (0 share: off).
	BounceShare         float64 `toml:"bounce_share"`
	BounceMinRecipients int     `toml:"bounce_min_recipients"`
	BounceHours         int     `toml:"bounce_hours"`
	UserQuotaHour       int     `toml:"user_quota_hour"` // messages per sender (SMTP user, API key); 0: none
	UserQuotaDay        int     `toml:"user_quota_day"`
	TenantQuotaHour     int     `toml:"tenant_quota_hour"`
	TenantQuotaDay      int     `toml:"tenant_quota_day"`
	Quotas              []Quota `toml:"quota"`
}

// Quota sets the quotas of one SMTP user, API key (ID) or tenant (name or
// ID); exactly one of them is named. 0 means no limit.
type Quota struct {
	User   string `toml:"user"`
	APIKey string `toml:"api_key"`
	Tenant string `toml:"tenant"`
	Hour   int    `toml:"hour"`
	Day    int    `toml:"day"`
}

// Policy is what may leave: size, attachments, List-Unsubscribe.
type Policy struct {
	MaxMessageSize         int            `toml:"max_message_size"` // 0: smtp.max_message_size only
	BlockExecutables       bool           `toml:"block_executables"`
	RequireListUnsubscribe bool           `toml:"require_list_unsubscribe"` // for low-lane mail
	Tenants                []PolicyTenant `toml:"tenant"`
}

// PolicyTenant overrides the policy for one tenant; unset fields keep the
// [policy] setting.
type PolicyTenant struct {
	Tenant                 string `toml:"tenant"`
	MaxMessageSize         *int   `toml:"max_message_size"`
	BlockExecutables       *bool  `toml:"block_executables"`
	RequireListUnsubscribe *bool  `toml:"require_list_unsubscribe"`
}

// Domains configures sending domains and their DNS checks.
type Domains struct {
	CheckInterval Duration `toml:"check_interval"` // how often every domain's records are re-checked
	// SPF is the mechanisms of the SPF record posthorn suggests, e.g.
	// "ip4:192.0.2.10 include:_spf.example.net"; "" means "a:<hostname>".
	SPF string `toml:"spf"`
}

// Unsubscribe configures List-Unsubscribe headers and their endpoint.
type Unsubscribe struct {
	BaseURL string   `toml:"base_url"`
	Mailto  string   `toml:"mailto"`
	Lanes   []string `toml:"lanes"`
}

// Suppress tunes automatic suppression.
type Suppress struct {
	OnHoldAfter  int      `toml:"on_hold_after"`  // soft bounces ...
	OnHoldWindow Duration `toml:"on_hold_window"` // ... within this window ...
	OnHoldFor    Duration `toml:"on_hold_for"`    // ... put the address on hold this long
}

// Classify points at a reply-classification rules file (TOML, the format
// of internal/classify/rules.toml): its rules come before the built-in
// ones, or replace them with Replace.
type Classify struct {
	Rules   string `toml:"rules"`
	Replace bool   `toml:"replace"`
}

// Provider groups domains by the suffix of their MX host names.
type Provider struct {
	Name       string   `toml:"name"`
	MXSuffixes []string `toml:"mx_suffixes"`
}

// DestinationLimits overrides the delivery defaults for one destination.
// Zero fields keep the default.
type DestinationLimits struct {
	Name                     string   `toml:"name"`
	MaxConnections           int      `toml:"max_connections"`
	MaxMessagesPerConnection int      `toml:"max_messages_per_connection"`
	MaxRecipientsPerTx       int      `toml:"max_recipients_per_transaction"`
	RatePerMinute            float64  `toml:"rate_per_minute"`
	Cooldown                 Duration `toml:"cooldown"`
	TLSPolicy                string   `toml:"tls_policy"` // one of TLSPolicyLevels; "" keeps the default
}

// BuiltinDestinations are the limits posthorn uses for the big providers
// unless the config says otherwise: conservative concurrency, no fixed
// rate (the adaptive throttle finds it), and long cool-downs where the
// provider's own guidance asks for patience.
var BuiltinDestinations = []DestinationLimits{
	{Name: "provider:google", MaxConnections: 20, MaxMessagesPerConnection: 100, MaxRecipientsPerTx: 100},
	{Name: "provider:microsoft", MaxConnections: 8, MaxMessagesPerConnection: 50, Cooldown: Duration{5 * time.Minute}},
	{Name: "provider:yahoo", MaxConnections: 5, MaxMessagesPerConnection: 20, MaxRecipientsPerTx: 100, Cooldown: Duration{15 * time.Minute}},
	{Name: "provider:apple", MaxConnections: 5, MaxMessagesPerConnection: 50, Cooldown: Duration{5 * time.Minute}},
	{Name: "provider:gmx", MaxConnections: 5, MaxMessagesPerConnection: 50},
	{Name: "provider:mailru", MaxConnections: 5, MaxMessagesPerConnection: 50},
	{Name: "provider:yandex", MaxConnections: 5, MaxMessagesPerConnection: 50},
}

// DestinationLimitsFor merges the delivery defaults, the built-ins and the
// config's [[destination]] entry for dest.
func (c *Config) DestinationLimitsFor(dest string) DestinationLimits {
	out := DestinationLimits{Name: dest, MaxConnections: c.Delivery.MaxConnectionsPerDest,
		MaxMessagesPerConnection: c.Delivery.MaxMessagesPerConnection, RatePerMinute: c.Delivery.RatePerMinute,
		MaxRecipientsPerTx: c.Delivery.MaxRecipientsPerTx,
		Cooldown:           c.Delivery.Cooldown}
	apply := func(l DestinationLimits) {
		if l.MaxConnections > 0 {
			out.MaxConnections = l.MaxConnections
		}
		if l.MaxMessagesPerConnection > 0 {
			out.MaxMessagesPerConnection = l.MaxMessagesPerConnection
		}
		if l.RatePerMinute > 0 {
			out.RatePerMinute = l.RatePerMinute
		}
		if l.MaxRecipientsPerTx > 0 {
			out.MaxRecipientsPerTx = l.MaxRecipientsPerTx
		}
		if l.Cooldown.Duration > 0 {
			out.Cooldown = l.Cooldown
		}
	}
	for _, lists := range [][]DestinationLimits{BuiltinDestinations, c.Destinations} {
		for _, l := range lists {
			if strings.EqualFold(l.Name, dest) {
				apply(l)
			}
		}
	}
	return out
}

// SMTP configures the submission listener.
type SMTP struct {
	MaxMessageSize        int64    `toml:"max_message_size"`
	MaxRecipients         int      `toml:"max_recipients"`
	MaxLineLength         int      `toml:"max_line_length"`
	MaxConnections        int      `toml:"max_connections"`
	MaxConnectionsPerIP   int      `toml:"max_connections_per_ip"` // sessions one client address may hold; 0: no cap
	ReadTimeout           Duration `toml:"read_timeout"`
	DataTimeout           Duration `toml:"data_timeout"` // the whole DATA body, however slowly it arrives
	TLSCert               string   `toml:"tls_cert"`
	TLSKey                string   `toml:"tls_key"`
	AllowInsecureAuth     bool     `toml:"allow_insecure_auth"`
	MaxAuthFailures       int      `toml:"max_auth_failures"`        // per client IP and per username per 10 minutes
	MaxErrors             int      `toml:"max_errors"`               // bad commands before the session is closed
	MaxMessagesPerSession int      `toml:"max_messages_per_session"` // 0: unlimited
}

// API configures the HTTP sending API.
type API struct {
	MaxBulk        int      `toml:"max_bulk"`        // messages per bulk request
	SendHorizon    Duration `toml:"send_horizon"`    // how far ahead send_at may be
	IdempotencyTTL Duration `toml:"idempotency_ttl"` // how long idempotency keys are remembered

	MaxBulkBytes int64 `toml:"max_bulk_bytes"` // body bytes of one bulk request
	// MaxInflightBytes bounds the request bodies all API requests hold at
	// once (503 overloaded above it); at least max_bulk_bytes and twice
	// smtp.max_message_size plus 1 MiB (the largest single send).
	MaxInflightBytes int64 `toml:"max_inflight_bytes"`
}

// Delivery configures outbound connections.
type Delivery struct {
	MaxConnections           int      `toml:"max_connections"`
	MaxConnectionsPerDest    int      `toml:"max_connections_per_destination"`
	MaxMessagesPerConnection int      `toml:"max_messages_per_connection"`
	ConnectTimeout           Duration `toml:"connect_timeout"`
	CommandTimeout           Duration `toml:"command_timeout"`
	DataTimeout              Duration `toml:"data_timeout"`
	IdleTimeout              Duration `toml:"idle_timeout"`
	RatePerMinute            float64  `toml:"rate_per_minute"` // per destination; 0: unlimited
	MaxRecipientsPerTx       int      `toml:"max_recipients_per_transaction"`
	Cooldown                 Duration `toml:"cooldown"` // pause after a rate_limited reply
	// MTASTS applies MTA-STS policies (RFC 8461) of recipient domains.
	MTASTS bool `toml:"mta_sts"`
	// DNSSEC believes the AD bit of DNS answers, enabling DANE (RFC 7672),
	// from a resolver on loopback or listed in DNSSECTrustedResolvers.
	DNSSEC                 bool     `toml:"dnssec"`
	DNSSECTrustedResolvers []string `toml:"dnssec_trusted_resolvers"`
	// TLSCAFile adds CA certificates (PEM) to the system's for verifying
	// MX hosts and MTA-STS policy servers: for private CAs and tests.
	TLSCAFile string `toml:"tls_ca_file"`
}

// Route sends mail for one domain (or "*") through a relay host.
type Route struct {
	Domain   string `toml:"domain"`
	Host     string `toml:"host"` // host:port
	Username string `toml:"username"`
	Password string `toml:"password"`
	// TLS: "opportunistic" (default; also "may"), "required" (also
	// "verify": a certificate valid for the relay's name), "encrypt" (TLS
	// without a certificate check), "none".
	TLS string `toml:"tls"`
}

// Default returns the configuration used with no file and no flags.
func Default() Config {
	host, _ := os.Hostname()
	if host == "" {
		host = "localhost"
	}
	c := Config{
		DataDir:         "posthorn-data",
		Hostname:        fqdn(host),
		SMTPListen:      "127.0.0.1:2525",
		HTTPListen:      "127.0.0.1:8025",
		DeliveryPort:    25,
		RetryMin:        Duration{5 * time.Minute},
		RetryMax:        Duration{time.Hour},
		QueueLifetime:   Duration{5 * 24 * time.Hour},
		LogLevel:        "info",
		ShutdownTimeout: Duration{30 * time.Second},
		InboundListen:   ":25",

		EventsRetention: Duration{30 * 24 * time.Hour},
		BodyRetention:   Duration{7 * 24 * time.Hour},
		SMTP: SMTP{
			MaxMessageSize:      25 << 20,
			MaxRecipients:       1000,
			MaxLineLength:       2000,
			MaxConnections:      1000,
			MaxConnectionsPerIP: 100,
			ReadTimeout:         Duration{5 * time.Minute},
			DataTimeout:         Duration{10 * time.Minute},
			MaxAuthFailures:     10,
			MaxErrors:           10,
		},
		Unsubscribe: Unsubscribe{Lanes: []string{"low"}},
		Domains:     Domains{CheckInterval: Duration{time.Hour}},
		Sendmail:    Sendmail{SocketMode: "0666"},
		Suppress:    Suppress{OnHoldAfter: 3, OnHoldWindow: Duration{7 * 24 * time.Hour}, OnHoldFor: Duration{7 * 24 * time.Hour}},
		Scan:        Scan{Timeout: Duration{5 * time.Second}, Fail: "open", ActionReject: "reject"},
		Abuse: Abuse{Hour: Duration{time.Hour}, Window: Duration{10 * time.Minute}, BaselineHours: 168, Factor: 10,
			MinVolume: 100, BounceShare: 0.10, BounceMinRecipients: 100, BounceHours: 24},
		Policy: Policy{BlockExecutables: true},
		API: API{
			MaxBulk:        5000,
			SendHorizon:    Duration{30 * 24 * time.Hour},
			IdempotencyTTL: Duration{24 * time.Hour},

			MaxBulkBytes:     64 << 20,
			MaxInflightBytes: 128 << 20,
		},
		Webhooks: defaultWebhooks(),
		Alerts:   defaultAlerts(),
		Delivery: Delivery{
			MaxConnections:           500,
			MaxConnectionsPerDest:    20,
			MaxMessagesPerConnection: 1000,
			ConnectTimeout:           Duration{30 * time.Second},
			CommandTimeout:           Duration{5 * time.Minute},
			DataTimeout:              Duration{10 * time.Minute},
			IdleTimeout:              Duration{5 * time.Second},
			Cooldown:                 Duration{time.Minute},
			MaxRecipientsPerTx:       100,
			MTASTS:                   true,
		},
	}
	c.reputationDefaults()
	return c
}

// fqdn asks the resolver for the canonical name of host; it falls back to
// host itself.
func fqdn(host string) string {
	if strings.Contains(host, ".") {
		return host
	}
	if cname, err := net.LookupCNAME(host); err == nil && strings.Contains(strings.TrimSuffix(cname, "."), ".") {
		return strings.TrimSuffix(cname, ".")
	}
	return host
}

// Load reads a TOML file over the defaults. Unknown keys are an error, so
// a typo does not silently leave a default in place.
func Load(path string) (Config, error) {
	c := Default()
	if path == "" {
		return c, nil
	}
	md, err := toml.DecodeFile(path, &c)
	if err != nil {
		return c, fmt.Errorf("config %s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return c, fmt.Errorf("config %s: unknown keys: %s", path, strings.Join(keys, ", "))
	}
	return c, nil
}

// Validate checks the configuration and fills derived defaults.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if c.DataDir == "" {
		bad("data_dir is empty")
	}
	if c.Store != "" && !c.SharedStore() {
		bad("store %q: want \"\" (the embedded SQLite database) or a postgres:// URL", redactURL(c.Store))
	}
	if m, err := strconv.ParseUint(c.Sendmail.SocketMode, 8, 32); err != nil || m > 0o777 {
		bad("sendmail.socket_mode %q: want octal permissions such as 0660", c.Sendmail.SocketMode)
	}
	for name, addr := range map[string]string{"smtp_listen": c.SMTPListen, "http_listen": c.HTTPListen, "metrics_listen": c.MetricsListen, "submissions_listen": c.SubmissionsListen} {
		if addr == "" {
			continue // disabled
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			bad("%s %q: %v", name, addr, err)
		}
	}
	for name, addr := range map[string]string{"dns_server": c.DNSServer, "smarthost": c.Smarthost} {
		if addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			bad("%s %q: want host:port: %v", name, addr, err)
		}
	}
	if c.DeliveryPort <= 0 || c.DeliveryPort > 65535 {
		bad("delivery_port %d out of range", c.DeliveryPort)
	}
	if c.RetryMin.Duration <= 0 || c.RetryMax.Duration < c.RetryMin.Duration {
		bad("retry_min (%s) must be positive and not above retry_max (%s)", c.RetryMin, c.RetryMax)
	}
	if c.QueueLifetime.Duration <= 0 {
		bad("queue_lifetime must be positive")
	}
	if c.ShutdownTimeout.Duration <= 0 {
		bad("shutdown_timeout must be positive")
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.LogLevel)); err != nil {
		bad("log_level %q: want debug, info, warn or error", c.LogLevel)
	}
	if c.EventsRetention.Duration < 0 || c.BodyRetention.Duration < 0 {
		bad("events_retention and body_retention must not be negative (0 keeps forever)")
	}
	if _, err := c.TrustedPrefixes(); err != nil {
		bad("%v", err)
	}
	if c.SMTP.MaxMessageSize <= 0 || c.SMTP.MaxRecipients <= 0 || c.SMTP.MaxLineLength < 512 {
		bad("smtp limits must be positive (max_line_length at least 512)")
	}
	if c.SMTP.MaxConnectionsPerIP < 0 || c.SMTP.DataTimeout.Duration <= 0 || c.SMTP.ReadTimeout.Duration <= 0 {
		bad("smtp.max_connections_per_ip must not be negative, smtp.data_timeout and smtp.read_timeout must be positive")
	}
	if (c.SMTP.TLSCert == "") != (c.SMTP.TLSKey == "") {
		bad("smtp.tls_cert and smtp.tls_key go together")
	}
	if c.API.MaxBulk <= 0 || c.API.SendHorizon.Duration <= 0 || c.API.IdempotencyTTL.Duration <= 0 {
		bad("api limits must be positive")
	}
	if c.API.MaxBulkBytes <= 0 || c.API.MaxInflightBytes < c.API.MaxBulkBytes || c.API.MaxInflightBytes < 2*c.SMTP.MaxMessageSize+1<<20 {
		bad("api.max_inflight_bytes (%d) must be at least api.max_bulk_bytes (%d, positive) and 2*smtp.max_message_size+1MiB (%d)",
			c.API.MaxInflightBytes, c.API.MaxBulkBytes, 2*c.SMTP.MaxMessageSize+1<<20)
	}
	d := &c.Delivery
	if d.MaxConnections <= 0 || d.MaxConnectionsPerDest <= 0 || d.MaxMessagesPerConnection <= 0 {
		bad("delivery limits must be positive")
	}
	seen := map[string]bool{}
	for i := range c.Routes {
		r := &c.Routes[i]
		r.Domain = strings.ToLower(strings.TrimSuffix(r.Domain, "."))
		if r.Domain != "*" {
			if _, err := smtpproto.NormalizeDomain(r.Domain, true); err != nil {
				bad("route %d: domain %q: %v", i+1, r.Domain, err)
			}
		}
		if seen[r.Domain] {
			bad("route %d: domain %q routed twice", i+1, r.Domain)
		}
		seen[r.Domain] = true
		if _, _, err := net.SplitHostPort(r.Host); err != nil {
			bad("route %d (%s): host %q: want host:port", i+1, r.Domain, r.Host)
		}
		switch r.TLS {
		case "":
			r.TLS = "opportunistic"
		case "opportunistic", "required", "none", "may", "encrypt", "verify":
		default:
			bad("route %d (%s): tls %q: want opportunistic (may), required (verify), encrypt or none", i+1, r.Domain, r.TLS)
		}
	}
	if c.Hostname == "" {
		c.Hostname = Default().Hostname // "" in a file means "the machine's name"
	}
	// The name goes verbatim into the greeting, EHLO and Received lines:
	// anything but a plain domain name (a CR or LF above all) would
	// corrupt or inject protocol lines.
	if h, err := smtpproto.NormalizeDomain(strings.TrimSuffix(c.Hostname, "."), false); err != nil || strings.HasPrefix(c.Hostname, "[") {
		bad("hostname %q is not a valid domain name (it is sent in the SMTP greeting and EHLO); set --hostname or hostname to this server's DNS name", clip(c.Hostname, 80))
	} else {
		c.Hostname = h
	}
	if c.BounceDomain != "" {
		d, err := smtpproto.NormalizeDomain(c.BounceDomain, true)
		if err != nil {
			bad("bounce_domain: %v", err)
		}
		c.BounceDomain = d
		if _, _, err := net.SplitHostPort(c.InboundListen); err != nil {
			bad("inbound_listen %q: %v", c.InboundListen, err)
		}
	}
	for i, p := range c.Providers {
		if p.Name == "" || len(p.MXSuffixes) == 0 {
			bad("provider %d: needs a name and mx_suffixes", i+1)
		}
	}
	errs = append(errs, c.validateProtection()...)
	for i, d := range c.Destinations {
		if d.Name == "" || d.MaxConnections < 0 || d.MaxMessagesPerConnection < 0 || d.RatePerMinute < 0 {
			bad("destination %d: needs a name and non-negative limits", i+1)
		}
		if d.TLSPolicy != "" && !slices.Contains(TLSPolicyLevels, d.TLSPolicy) {
			bad("destination %d (%s): tls_policy %q: want one of %s", i+1, d.Name, d.TLSPolicy, strings.Join(TLSPolicyLevels, ", "))
		}
	}
	for i := range c.TLSPolicies {
		p := &c.TLSPolicies[i]
		p.Domain = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(p.Domain), "."))
		if p.Domain == "" {
			bad("tls_policy %d: needs a domain (or provider:NAME, or *)", i+1)
		}
		if !slices.Contains(TLSPolicyLevels, p.Policy) {
			bad("tls_policy %d (%s): policy %q: want one of %s", i+1, p.Domain, p.Policy, strings.Join(TLSPolicyLevels, ", "))
		}
	}
	for _, r := range c.Delivery.DNSSECTrustedResolvers {
		if _, err := netip.ParseAddr(strings.TrimSpace(r)); err != nil {
			bad("delivery.dnssec_trusted_resolvers: %q is not an IP address", r)
		}
	}
	c.validateEvents(bad)
	c.validateReputation(bad)
	return errors.Join(errs...)
}

// validateProtection checks [scan], [abuse] and [policy].
func (c *Config) validateProtection() []error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	sc := &c.Scan
	if sc.RspamdURL != "" && !strings.HasPrefix(sc.RspamdURL, "http://") && !strings.HasPrefix(sc.RspamdURL, "https://") {
		bad("scan.rspamd_url %q: want http://host:port", sc.RspamdURL)
	}
	if sc.Timeout.Duration <= 0 {
		bad("scan.timeout must be positive")
	}
	checkScan := func(where, fail, action string) {
		if fail != "" && fail != "open" && fail != "closed" {
			bad("%s fail %q: want open or closed", where, fail)
		}
		if action != "" && action != "reject" && action != "hold" {
			bad("%s action_reject %q: want reject or hold", where, action)
		}
	}
	checkScan("scan:", sc.Fail, sc.ActionReject)
	for i, t := range sc.Tenants {
		if t.Tenant == "" {
			bad("scan.tenant %d: needs a tenant", i+1)
		}
		checkScan(fmt.Sprintf("scan.tenant %d:", i+1), t.Fail, t.ActionReject)
	}
	a := &c.Abuse
	if a.Hour.Duration <= 0 || a.Window.Duration <= 0 || a.BaselineHours <= 0 || a.Factor < 0 || a.MinVolume < 0 || a.MaxRecipientDomains < 0 {
		bad("abuse: hour, window and baseline_hours must be positive; factor, min_volume and max_recipient_domains not negative")
	}
	if a.BounceShare < 0 || a.BounceShare > 1 || a.BounceMinRecipients < 0 || a.BounceHours <= 0 {
		bad("abuse: bounce_share must be within 0..1, bounce_min_recipients not negative, bounce_hours positive")
	}
	if a.UserQuotaHour < 0 || a.UserQuotaDay < 0 || a.TenantQuotaHour < 0 || a.TenantQuotaDay < 0 {
		bad("abuse quotas must not be negative")
	}
	for i, q := range a.Quotas {
		n := 0
		for _, s := range []string{q.User, q.APIKey, q.Tenant} {
			if s != "" {
				n++
			}
		}
		if n != 1 || q.Hour < 0 || q.Day < 0 {
			bad("abuse.quota %d: name exactly one of user, api_key, tenant; hour and day not negative", i+1)
		}
	}
	if c.Policy.MaxMessageSize < 0 {
		bad("policy.max_message_size must not be negative")
	}
	for i, t := range c.Policy.Tenants {
		if t.Tenant == "" || t.MaxMessageSize != nil && *t.MaxMessageSize < 0 {
			bad("policy.tenant %d: needs a tenant and a non-negative max_message_size", i+1)
		}
	}
	return errs
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// TLSPolicyMap is the configured TLS policy per destination: the
// [[destination]] tls_policy entries, then [[tls_policy]] (which wins).
func (c *Config) TLSPolicyMap() map[string]string {
	m := map[string]string{}
	for _, d := range c.Destinations {
		if d.TLSPolicy != "" {
			m[strings.ToLower(d.Name)] = d.TLSPolicy
		}
	}
	for _, p := range c.TLSPolicies {
		m[p.Domain] = p.Policy
	}
	return m
}

// Warnings are settings that are allowed but look dangerous; the server
// logs them at start.
func (c *Config) Warnings() []string {
	var out []string
	pm := c.TLSPolicyMap()
	for _, d := range slices.Sorted(maps.Keys(pm)) {
		if p := pm[d]; p == "dane" && !c.Delivery.DNSSEC {
			out = append(out, fmt.Sprintf("tls_policy %s = dane, but delivery.dnssec is off: without trusted DNSSEC answers there is no DANE, and delivery to %s is opportunistic", d, d))
		}
	}
	ps, _ := c.TrustedPrefixes()
	for _, p := range ps {
		if !privatePrefix(p) && (p.Addr().Is4() && p.Bits() < 24 || p.Addr().Is6() && p.Bits() < 48) {
			out = append(out, fmt.Sprintf("trusted_networks: %s is a large public range: every host in it may send mail through posthorn without AUTH", p))
		}
	}
	return out
}

// privateRanges are the address blocks not routed on the public internet.
var privateRanges = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("172.16.0.0/12"), netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("100.64.0.0/10"), netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("::1/128"), netip.MustParsePrefix("fc00::/7"), netip.MustParsePrefix("fe80::/10"),
}

func privatePrefix(p netip.Prefix) bool {
	for _, r := range privateRanges {
		if r.Bits() <= p.Bits() && r.Contains(p.Addr()) {
			return true
		}
	}
	return false
}

// TrustedPrefixes parses trusted_networks. Bare IPs count as /32 or /128.
// A range of every address (0.0.0.0/0, ::/0) is refused: it would make
// posthorn an open relay.
func (c *Config) TrustedPrefixes() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range c.TrustedNetworks {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !strings.Contains(s, "/") {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return nil, fmt.Errorf("trusted_networks: %q: %v", s, err)
			}
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("trusted_networks: %q: %v", s, err)
		}
		if p.Bits() == 0 {
			return nil, fmt.Errorf("trusted_networks: %q trusts every address on the internet and would make posthorn an open relay; list the networks of your own clients instead", s)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// Paths derived from the data directory.
func (c *Config) DBPath() string         { return filepath.Join(c.DataDir, "posthorn.db") }
func (c *Config) AdminSocket() string    { return filepath.Join(c.DataDir, "admin.sock") }
func (c *Config) TLSDir() string         { return filepath.Join(c.DataDir, "tls") }
func (c *Config) MTASTSCache() string    { return filepath.Join(c.DataDir, "mta-sts.json") }
func (c *Config) TLSRPTDir() string      { return filepath.Join(c.DataDir, "tlsrpt") }
func (c *Config) VERPKey() string        { return filepath.Join(c.DataDir, "verp.key") }
func (c *Config) UnsubscribeKey() string { return filepath.Join(c.DataDir, "unsubscribe.key") }
