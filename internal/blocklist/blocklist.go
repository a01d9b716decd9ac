// Package blocklist watches whether posthorn's sending IPs and domains are
// listed on DNS blocklists (DNSBL/RHSBL): it queries each configured zone
// for each target every interval and on demand, keeps the latest state,
// and writes an alert_fired event when a target becomes listed and an
// alert_resolved event when it is delisted (the webhook outbox carries
// them to operators).
//
// Invariants:
//   - A query that times out, fails (SERVFAIL, REFUSED) or gets an
//     answer that is an error code of the list (127.255.255.x, or a
//     list's documented "query refused" code) or outside 127.0.0.0/8 is
//     "unknown": neither clean nor listed, and it never fires or
//     resolves an alert.
//   - Alerts are edge-triggered: one alert_fired per listing (per target
//     and zone), one alert_resolved when a later check finds it clean;
//     the state survives restarts (StateFile).
//   - Queries go to the configured resolver (dns_server) only.
//
// Tests (blocklist_test.go) run against the test kit's DNS server with a
// fake zone: a listed IP and a listed domain fire alerts with the list's
// meaning and removal page, delisting resolves them, and a zone that
// times out or answers SERVFAIL is unknown.
package blocklist

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/posthorn/posthorn/internal/config"
	"github.com/posthorn/posthorn/internal/store"
)

// Event types of the alerts this package writes.
const (
	EventAlertFired    = "alert_fired"
	EventAlertResolved = "alert_resolved"
)

// Listed values of a Result.
const (
	Listed  = "true"
	Clean   = "false"
	Unknown = "unknown"
)

// Result is one target checked against one zone.
type Result struct {
	Target     string    `json:"target"`
	Kind       string    `json:"kind"` // ip or domain
	Zone       string    `json:"zone"`
	List       string    `json:"list"`
	Listed     string    `json:"listed"` // true, false or unknown
	Code       string    `json:"code,omitempty"`
	Meaning    string    `json:"meaning,omitempty"`
	Weight     int       `json:"weight,omitempty"`
	RemovalURL string    `json:"removal_url,omitempty"`
	Error      string    `json:"error,omitempty"` // why it is unknown
	CheckedAt  time.Time `json:"checked_at"`
}

// Listing is one current listing, for metrics
// (posthorn_blocklist_listed{list, target}).
type Listing struct {
	List   string
	Zone   string
	Target string
	Listed bool
}

// Recorder is where alerts go.
type Recorder interface {
	RecordEvent(ctx context.Context, e store.Event) error
}

// Config sets up a Monitor.
type Config struct {
	IPZones     []string
	DomainZones []string
	// IPs and Domains give the targets at each check (they change as
	// domains are added).
	IPs       func() []netip.Addr
	Domains   func(ctx context.Context) []string
	DNSServer string // host:port; "" = /etc/resolv.conf
	Timeout   time.Duration
	Interval  time.Duration
	Lists     []config.BlocklistInfo
	Events    Recorder
	// StateFile keeps the last definite state across restarts, so a
	// listing that persists does not fire again ("" = memory only).
	StateFile string
	Log       *slog.Logger
	Now       func() time.Time
}

// Monitor checks targets and raises alerts.
type Monitor struct {
	cfg     Config
	lists   map[string]Info
	servers []string
	client  *dns.Client

	mu    sync.Mutex // guards state; check runs one at a time (checkMu)
	state map[string]Result

	checkMu sync.Mutex
	stop    chan struct{}
	done    chan struct{}
}

// New builds a Monitor.
func New(cfg Config) (*Monitor, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	m := &Monitor{cfg: cfg, lists: table(cfg.Lists), state: map[string]Result{},
		client: &dns.Client{Timeout: cfg.Timeout}}
	if err := m.load(); err != nil {
		return nil, err
	}
	if cfg.DNSServer != "" {
		m.servers = []string{cfg.DNSServer}
	} else {
		cc, err := dns.ClientConfigFromFile("/etc/resolv.conf")
		if err != nil {
			return nil, fmt.Errorf("blocklists: read /etc/resolv.conf: %w", err)
		}
		for _, s := range cc.Servers {
			m.servers = append(m.servers, net.JoinHostPort(s, cc.Port))
		}
	}
	return m, nil
}

// Lists is the table of known lists (built-ins with overrides).
func (m *Monitor) Lists() []Info {
	out := make([]Info, 0, len(m.lists))
	for _, l := range m.lists {
		out = append(out, l)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Zone < out[j].Zone })
	return out
}

// Start checks now and then every Interval, until Stop.
func (m *Monitor) Start() {
	m.stop, m.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(m.done)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			<-m.stop
			cancel()
		}()
		for {
			if _, err := m.Check(ctx); err != nil && ctx.Err() == nil {
				m.cfg.Log.Error("blocklist check", "err", err)
			}
			select {
			case <-m.stop:
				return
			case <-time.After(m.cfg.Interval):
			}
		}
	}()
}

// Stop ends the periodic checks.
func (m *Monitor) Stop() {
	if m.stop != nil {
		close(m.stop)
		<-m.done
		m.stop = nil
	}
}

// Check queries every zone for every target now, updates the state and
// writes alert events for changes; it returns every result.
func (m *Monitor) Check(ctx context.Context) ([]Result, error) {
	m.checkMu.Lock()
	defer m.checkMu.Unlock()
	type job struct {
		target, kind, name, zone string
	}
	var jobs []job
	if m.cfg.IPs != nil {
		for _, ip := range m.cfg.IPs() {
			for _, z := range m.cfg.IPZones {
				jobs = append(jobs, job{ip.String(), "ip", reverseIP(ip) + "." + z, z})
			}
		}
	}
	if m.cfg.Domains != nil {
		for _, d := range m.cfg.Domains(ctx) {
			for _, z := range m.cfg.DomainZones {
				jobs = append(jobs, job{d, "domain", strings.TrimSuffix(d, ".") + "." + z, z})
			}
		}
	}
	out := make([]Result, len(jobs))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8) // a few queries at a time: lists limit query rates
	for i, j := range jobs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			out[i] = m.query(ctx, j.target, j.kind, j.name, j.zone)
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return out, err
	}
	m.update(ctx, out)
	return out, nil
}

// query asks the resolver for name's A record.
func (m *Monitor) query(ctx context.Context, target, kind, name, zone string) Result {
	info := m.lists[zone]
	if info.Name == "" {
		info = Info{Zone: zone, Name: zone, Weight: 5}
	}
	r := Result{Target: target, Kind: kind, Zone: zone, List: info.Name, Listed: Unknown, CheckedAt: m.cfg.Now().UTC()}
	req := new(dns.Msg)
	req.SetQuestion(dns.Fqdn(name), dns.TypeA)
	req.RecursionDesired = true
	var resp *dns.Msg
	var err error
	for _, srv := range m.servers {
		if resp, _, err = m.client.ExchangeContext(ctx, req, srv); err == nil {
			break
		}
	}
	switch {
	case err != nil:
		r.Error = "query failed: " + err.Error()
		return r
	case resp.Rcode == dns.RcodeNameError:
		r.Listed = Clean
		return r
	case resp.Rcode != dns.RcodeSuccess:
		r.Error = "query answered " + dns.RcodeToString[resp.Rcode]
		return r
	}
	var codes []netip.Addr
	for _, rr := range resp.Answer {
		if a, ok := rr.(*dns.A); ok {
			if ip, ok := netip.AddrFromSlice(a.A.To4()); ok {
				codes = append(codes, ip)
			}
		}
	}
	if len(codes) == 0 {
		r.Listed = Clean // NOERROR without an A record: not listed
		return r
	}
	slices.SortFunc(codes, func(a, b netip.Addr) int { return a.Compare(b) })
	code := codes[0]
	r.Code = code.String()
	r.Meaning = info.Codes[r.Code]
	loop := netip.MustParsePrefix("127.0.0.0/8")
	errs := netip.MustParsePrefix("127.255.255.0/24")
	switch {
	case !loop.Contains(code):
		r.Error = "answer outside 127.0.0.0/8: the resolver rewrites NXDOMAIN, or the list is gone"
	case errs.Contains(code) || strings.HasPrefix(r.Meaning, "query "):
		r.Error = "the list refused the query: " + r.Meaning
	default:
		r.Listed, r.Weight, r.RemovalURL = Listed, info.Weight, info.RemovalURL
		if r.Meaning == "" {
			r.Meaning = "listed (return code " + r.Code + ")"
		}
	}
	return r
}

// update keeps the new results and writes an alert for each change of a
// definite state; unknown results leave the previous state alone.
func (m *Monitor) update(ctx context.Context, rs []Result) {
	var events []store.Event
	m.mu.Lock()
	for _, r := range rs {
		if r.Listed == Unknown {
			continue
		}
		k := r.Target + " " + r.Zone
		prev, seen := m.state[k]
		m.state[k] = r
		switch {
		case r.Listed == Listed && (!seen || prev.Listed != Listed):
			events = append(events, alert(EventAlertFired, r))
		case r.Listed == Clean && seen && prev.Listed == Listed:
			r.Code, r.Meaning, r.Weight, r.RemovalURL = prev.Code, prev.Meaning, prev.Weight, prev.RemovalURL
			events = append(events, alert(EventAlertResolved, r))
		}
	}
	m.mu.Unlock()
	for _, e := range events {
		if m.cfg.Events == nil {
			continue
		}
		if err := m.cfg.Events.RecordEvent(ctx, e); err != nil {
			m.cfg.Log.Error("record blocklist alert", "err", err)
		}
		m.cfg.Log.Warn("blocklist "+e.Type, "detail", e.Detail)
	}
	// Saved after the alerts are written (checks run one at a time): a
	// crash between the two repeats an alert at the next start rather
	// than losing it.
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.save(); err != nil {
		m.cfg.Log.Error("blocklist state", "err", err)
	}
}

// AlertDetail is the JSON detail of a blocklist alert event.
type AlertDetail struct {
	Alert      string `json:"alert"` // "blocklist"
	List       string `json:"list"`
	Zone       string `json:"zone"`
	Target     string `json:"target"`
	Kind       string `json:"kind"`
	Code       string `json:"code"`
	Meaning    string `json:"meaning"`
	Weight     int    `json:"weight"`
	RemovalURL string `json:"removal_url,omitempty"`
}

func alert(typ string, r Result) store.Event {
	b, _ := json.Marshal(AlertDetail{Alert: "blocklist", List: r.List, Zone: r.Zone, Target: r.Target, Kind: r.Kind,
		Code: r.Code, Meaning: r.Meaning, Weight: r.Weight, RemovalURL: r.RemovalURL})
	return store.Event{At: r.CheckedAt, Type: typ, Detail: string(b)}
}

// Listings is the latest definite state of every target and zone; a
// target whose last check could not tell (timeout, SERVFAIL, a refused
// query) is left out, neither clean nor listed.
func (m *Monitor) Listings() []Listing {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Listing, 0, len(m.state))
	for _, r := range m.state {
		if r.Listed == Unknown {
			continue
		}
		out = append(out, Listing{List: r.List, Zone: r.Zone, Target: r.Target, Listed: r.Listed == Listed})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Target+out[i].Zone < out[j].Target+out[j].Zone })
	return out
}

// reverseIP is the DNSBL query label of ip: reversed octets for IPv4,
// reversed nibbles for IPv6.
func reverseIP(ip netip.Addr) string {
	ip = ip.Unmap()
	if ip.Is4() {
		b := ip.As4()
		return fmt.Sprintf("%d.%d.%d.%d", b[3], b[2], b[1], b[0])
	}
	b := ip.As16()
	var sb strings.Builder
	for i := len(b) - 1; i >= 0; i-- {
		fmt.Fprintf(&sb, "%x.%x.", b[i]&0xf, b[i]>>4)
	}
	return strings.TrimSuffix(sb.String(), ".")
}

// load reads the saved state, if any.
func (m *Monitor) load() error {
	if m.cfg.StateFile == "" {
		return nil
	}
	b, err := os.ReadFile(m.cfg.StateFile)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("blocklist state: %w", err)
	}
	var rs []Result
	if err := json.Unmarshal(b, &rs); err != nil {
		return fmt.Errorf("blocklist state %s: %w", m.cfg.StateFile, err)
	}
	for _, r := range rs {
		m.state[r.Target+" "+r.Zone] = r
	}
	return nil
}

// save writes the state (caller holds m.mu).
func (m *Monitor) save() error {
	if m.cfg.StateFile == "" {
		return nil
	}
	rs := make([]Result, 0, len(m.state))
	for _, r := range m.state {
		rs = append(rs, r)
	}
	b, _ := json.Marshal(rs)
	tmp := m.cfg.StateFile + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, m.cfg.StateFile)
}
