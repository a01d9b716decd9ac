// Package pool chooses the source address mail leaves from: source IP
// pools selected by lane, tenant or sending domain, weighted round-robin
// among a pool's addresses, and warm-up schedules that cap how much a new
// address sends to each destination per day.
//
// Invariants:
//   - The first pool whose selectors all match wins (a pool without
//     selectors matches everything); a pool named "default" is the
//     fallback; with no match, the operating system picks the address.
//   - A warming address never sends more than its day's cap to one
//     destination: Pick reserves the count when it chooses the address
//     (an attempt that is retried counts again, which errs on the safe
//     side). Mail beyond every member's cap waits for the next day.
//   - Counts survive a restart: they are written to a JSON file at most a
//     second after they change, and at Stop.
//
// Tests (pool_test.go, and queue's pool tests on loopback) prove the
// selection order, the weights, that no address exceeds its cap on any
// day of a compressed clock and that the schedule completes, and that
// counts survive a reload.
package pool

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/posthorn/posthorn/internal/config"
)

// DefaultSchedule is the built-in warm-up ramp: messages per destination
// per day, day 1 first. After its last day an address is warm.
var DefaultSchedule = []int{50, 100, 500, 1000, 5000, 10000, 20000, 50000, 100000, 200000}

// Mail is what selects a pool.
type Mail struct {
	Lane         string // high, normal, low
	Tenant       string // tenant ID
	SenderDomain string // the envelope sender's domain ("" for the null sender)
}

// Choice is the source address for one job.
type Choice struct {
	Pool string
	Addr netip.Addr
	EHLO string
}

// Config builds a Set.
type Config struct {
	Pools      []config.Pool
	Schedule   []int // default ramp (nil: DefaultSchedule)
	DayLength  time.Duration
	CountsFile string // "" keeps counts in memory only
	Log        *slog.Logger
	Now        func() time.Time // the clock (nil: time.Now)
}

type member struct {
	addr     netip.Addr
	weight   int
	warming  bool
	start    time.Time
	schedule []int
}

type pool struct {
	cfg     config.Pool
	members []*member
	lanes   map[string]bool
	tenants map[string]bool
	domains map[string]bool
	// cur is the smooth weighted round-robin state per destination, so
	// each destination sees every address in its share.
	cur map[string][]int
}

// maxRRState bounds the per-destination round-robin state of a pool.
const maxRRState = 10000

// allDests is the count key of a warm address's daily total.
const allDests = "*"

type countKey struct {
	Addr string `json:"addr"`
	Dest string `json:"dest"`
	Day  int    `json:"day"`
}

// Set is the configured pools with their warm-up counts.
type Set struct {
	cfg   Config
	pools []*pool
	def   *pool

	mu     sync.Mutex
	counts map[countKey]int
	dirty  bool

	stop chan struct{}
	done chan struct{}
}

// New builds the pools and loads saved counts.
func New(cfg Config) (*Set, error) {
	if cfg.DayLength <= 0 {
		cfg.DayLength = config.DefaultWarmupDay
	}
	if len(cfg.Schedule) == 0 { // "schedule = []" in the config means the built-in ramp
		cfg.Schedule = DefaultSchedule
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	s := &Set{cfg: cfg, counts: map[countKey]int{}}
	for _, pc := range cfg.Pools {
		p := &pool{cfg: pc, lanes: set(pc.Lanes), tenants: set(pc.Tenants), domains: set(pc.Domains), cur: map[string][]int{}}
		warming := map[netip.Addr]bool{}
		for _, w := range pc.Warming {
			a, err := netip.ParseAddr(w)
			if err != nil {
				return nil, fmt.Errorf("pool %s: warming %q: %w", pc.Name, w, err)
			}
			warming[a] = true
		}
		var start time.Time
		if len(warming) > 0 {
			var err error
			if start, err = config.ParseWarmupStart(pc.WarmupStart); err != nil {
				return nil, fmt.Errorf("pool %s: %w", pc.Name, err)
			}
		}
		sched := pc.Warmup
		if len(sched) == 0 {
			sched = cfg.Schedule
		}
		for i, a := range pc.Addresses {
			ip, err := netip.ParseAddr(a)
			if err != nil {
				return nil, fmt.Errorf("pool %s: address %q: %w", pc.Name, a, err)
			}
			w := 1
			if i < len(pc.Weights) {
				w = pc.Weights[i]
			}
			p.members = append(p.members, &member{addr: ip, weight: w, warming: warming[ip], start: start, schedule: sched})
		}
		if pc.Name == "default" {
			s.def = p
		} else {
			s.pools = append(s.pools, p)
		}
	}
	if err := s.load(); err != nil {
		return nil, err
	}
	return s, nil
}

func set(xs []string) map[string]bool {
	m := map[string]bool{}
	for _, x := range xs {
		m[strings.ToLower(x)] = true
	}
	return m
}

// Configured reports whether any pool exists.
func (s *Set) Configured() bool { return s != nil && (len(s.pools) > 0 || s.def != nil) }

func (p *pool) matches(m Mail) bool {
	return (len(p.lanes) == 0 || p.lanes[m.Lane]) && (len(p.tenants) == 0 || p.tenants[strings.ToLower(m.Tenant)]) &&
		(len(p.domains) == 0 || p.domains[strings.ToLower(m.SenderDomain)])
}

func (s *Set) match(m Mail) *pool {
	for _, p := range s.pools {
		if p.matches(m) {
			return p
		}
	}
	return s.def
}

// day is the member's warm-up day at now (1 = the first), or 0 when it
// is not warming or its schedule is over.
func (s *Set) day(mb *member, now time.Time) int {
	if !mb.warming {
		return 0
	}
	d := 1
	if now.After(mb.start) {
		d = int(now.Sub(mb.start)/s.cfg.DayLength) + 1
	}
	if d > len(mb.schedule) {
		return 0
	}
	return d
}

// dayIndex numbers days for counting (warm members count by the same
// clock, from the Unix epoch, so the listing can show their volume).
func (s *Set) dayIndex(mb *member, now time.Time) int {
	if d := s.day(mb, now); d > 0 {
		return d
	}
	return -int(now.UnixNano() / int64(s.cfg.DayLength)) // negative: never mixed with warm-up days
}

// Pick chooses the source address for n messages of m to dest and counts
// them. ok is false when every member of the pool is at its cap for
// dest: the mail waits until the returned time (the next warm-up day).
// With no matching pool, Choice is zero and ok true.
func (s *Set) Pick(m Mail, dest string, n int, now time.Time) (c Choice, wait time.Time, ok bool) {
	if !s.Configured() {
		return Choice{}, time.Time{}, true
	}
	p := s.match(m)
	if p == nil {
		return Choice{}, time.Time{}, true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := p.cur[dest]
	if cur == nil {
		if len(p.cur) >= maxRRState {
			clear(p.cur) // many destinations: start their turns afresh rather than grow
		}
		cur = make([]int, len(p.members))
		p.cur[dest] = cur
	}
	best := -1
	total := 0
	for i, mb := range p.members {
		if d := s.day(mb, now); d > 0 {
			if s.counts[countKey{mb.addr.String(), dest, d}]+n > mb.schedule[d-1] {
				next := mb.start.Add(time.Duration(d) * s.cfg.DayLength)
				if wait.IsZero() || next.Before(wait) {
					wait = next
				}
				continue
			}
		}
		cur[i] += mb.weight
		total += mb.weight
		if best < 0 || cur[i] > cur[best] {
			best = i
		}
	}
	if best < 0 {
		return Choice{}, wait, false
	}
	cur[best] -= total
	mb := p.members[best]
	key := countKey{mb.addr.String(), allDests, s.dayIndex(mb, now)}
	if s.day(mb, now) > 0 {
		key.Dest = dest // caps are per destination; warm addresses count only their total
	}
	s.counts[key] += n
	s.dirty = true
	ehlo := p.cfg.EHLO
	return Choice{Pool: p.cfg.Name, Addr: mb.addr, EHLO: ehlo}, time.Time{}, true
}

// Addresses lists every pool address.
func (s *Set) Addresses() []netip.Addr {
	var out []netip.Addr
	for _, p := range append(slices.Clone(s.pools), s.def) {
		if p == nil {
			continue
		}
		for _, mb := range p.members {
			out = append(out, mb.addr)
		}
	}
	return out
}

// MemberStatus is one address's state for `posthorn pools`.
type MemberStatus struct {
	Pool     string         `json:"pool"`
	Address  string         `json:"address"`
	EHLO     string         `json:"ehlo,omitempty"`
	Weight   int            `json:"weight"`
	Warming  bool           `json:"warming"` // on its schedule today
	Day      int            `json:"warmup_day,omitempty"`
	Days     int            `json:"warmup_days,omitempty"`
	Cap      int            `json:"cap_per_destination,omitempty"`       // today's cap per destination
	Today    int            `json:"sent_today"`                          // all destinations
	PerDest  map[string]int `json:"sent_today_by_destination,omitempty"` // warming addresses only
	Selected string         `json:"selects,omitempty"`
}

// Status lists every member with today's counts.
func (s *Set) Status(now time.Time) []MemberStatus {
	var out []MemberStatus
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range append(slices.Clone(s.pools), s.def) {
		if p == nil {
			continue
		}
		var sel []string
		for _, x := range [][]string{prefix("lane=", p.cfg.Lanes), prefix("tenant=", p.cfg.Tenants), prefix("domain=", p.cfg.Domains)} {
			sel = append(sel, x...)
		}
		for _, mb := range p.members {
			st := MemberStatus{Pool: p.cfg.Name, Address: mb.addr.String(), EHLO: p.cfg.EHLO, Weight: mb.weight,
				Selected: strings.Join(sel, " "), PerDest: map[string]int{}}
			if d := s.day(mb, now); d > 0 {
				st.Warming, st.Day, st.Days, st.Cap = true, d, len(mb.schedule), mb.schedule[d-1]
			}
			idx := s.dayIndex(mb, now)
			for k, n := range s.counts {
				if k.Addr == st.Address && k.Day == idx {
					if k.Dest != allDests {
						st.PerDest[k.Dest] += n
					}
					st.Today += n
				}
			}
			out = append(out, st)
		}
	}
	return out
}

func prefix(p string, xs []string) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = p + x
	}
	return out
}

// countsFile is the saved form of the counts.
type countsFile struct {
	Counts []savedCount `json:"counts"`
}

type savedCount struct {
	countKey
	N int `json:"n"`
}

func (s *Set) load() error {
	if s.cfg.CountsFile == "" {
		return nil
	}
	b, err := os.ReadFile(s.cfg.CountsFile)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("warm-up counts: %w", err)
	}
	var f countsFile
	if err := json.Unmarshal(b, &f); err != nil {
		return fmt.Errorf("warm-up counts %s: %w", s.cfg.CountsFile, err)
	}
	for _, c := range f.Counts {
		s.counts[c.countKey] = c.N
	}
	return nil
}

// Flush writes the counts if they changed, dropping those of days that
// are over (keeping the current and previous day).
func (s *Set) Flush(now time.Time) error {
	s.mu.Lock()
	if !s.dirty || s.cfg.CountsFile == "" {
		s.mu.Unlock()
		return nil
	}
	current := map[string]int{}
	for _, p := range append(slices.Clone(s.pools), s.def) {
		if p == nil {
			continue
		}
		for _, mb := range p.members {
			current[mb.addr.String()] = s.dayIndex(mb, now)
		}
	}
	var f countsFile
	for k, n := range s.counts {
		cur, ok := current[k.Addr]
		if !ok || (k.Day != cur && k.Day != cur-1 && k.Day != cur+1) {
			delete(s.counts, k) // an old day, or an address no longer configured
			continue
		}
		f.Counts = append(f.Counts, savedCount{k, n})
	}
	s.dirty = false
	s.mu.Unlock()
	sort.Slice(f.Counts, func(i, j int) bool {
		a, b := f.Counts[i], f.Counts[j]
		return a.Addr+a.Dest+fmt.Sprint(a.Day) < b.Addr+b.Dest+fmt.Sprint(b.Day)
	})
	b, _ := json.Marshal(f)
	tmp := s.cfg.CountsFile + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write warm-up counts: %w", err)
	}
	if err := os.Rename(tmp, s.cfg.CountsFile); err != nil {
		return fmt.Errorf("write warm-up counts: %w", err)
	}
	if d, err := os.Open(filepath.Dir(s.cfg.CountsFile)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// Start writes changed counts every second until Stop.
func (s *Set) Start() {
	s.stop, s.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(s.done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				if err := s.Flush(s.cfg.Now()); err != nil {
					s.cfg.Log.Error("warm-up counts", "err", err)
				}
			}
		}
	}()
}

// Stop ends the writer and writes the counts a last time.
func (s *Set) Stop() error {
	if s.stop != nil {
		close(s.stop)
		<-s.done
		s.stop = nil
	}
	return s.Flush(s.cfg.Now())
}
