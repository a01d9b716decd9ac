package server

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/posthorn/posthorn/internal/api"
	"github.com/posthorn/posthorn/internal/blocklist"
	"github.com/posthorn/posthorn/internal/config"
	"github.com/posthorn/posthorn/internal/delivery"
	"github.com/posthorn/posthorn/internal/dmarc"
	"github.com/posthorn/posthorn/internal/pool"
	"github.com/posthorn/posthorn/internal/queue"
	"github.com/posthorn/posthorn/internal/store"
)

// reputation holds the sender reputation parts: source pools with their
// warm-up counts, the blocklist monitor, the DMARC report intake.
type reputation struct {
	pools     *pool.Set
	blocklist *blocklist.Monitor // nil when monitoring is off
	dmarc     *dmarc.Service     // nil without [dmarc] rua
}

// startPools builds the source pools (before the scheduler, which asks
// them for each job's source address).
func (s *Server) startPools() error {
	cfg := &s.cfg
	file := cfg.Warmup.CountsFile
	if file == "" {
		file = filepath.Join(cfg.DataDir, "warmup.json")
	}
	pools, err := s.poolsWithTenantIDs()
	if err != nil {
		return err
	}
	ps, err := pool.New(pool.Config{Pools: pools, Schedule: cfg.Warmup.Schedule, DayLength: cfg.Warmup.DayLength.Duration,
		CountsFile: file, Log: s.log.With("part", "pools")})
	if err != nil {
		return fmt.Errorf("source pools: %w", err)
	}
	s.rep.pools = ps
	if ps.Configured() {
		ps.Start()
	}
	return nil
}

// poolsWithTenantIDs lets a pool's tenants name tenants by name or ID:
// names are turned into IDs (what the scheduler knows of a job).
func (s *Server) poolsWithTenantIDs() ([]config.Pool, error) {
	pools := slices.Clone(s.cfg.Pools)
	var ts []store.Tenant
	for i := range pools {
		if len(pools[i].Tenants) == 0 {
			continue
		}
		if ts == nil {
			var err error
			if ts, err = s.st.ListTenants(context.Background()); err != nil {
				return nil, fmt.Errorf("source pools: tenants: %w", err)
			}
		}
		ids := slices.Clone(pools[i].Tenants)
		for _, name := range pools[i].Tenants {
			for _, t := range ts {
				if strings.EqualFold(t.Name, name) {
					ids = append(ids, t.ID)
				}
			}
		}
		pools[i].Tenants = ids
	}
	return pools, nil
}

// poolSource is the scheduler's Source: nil without pools.
func (s *Server) poolSource() func(queue.SourceQuery) (delivery.Source, time.Time, bool) {
	ps := s.rep.pools
	if !ps.Configured() {
		return nil
	}
	return func(q queue.SourceQuery) (delivery.Source, time.Time, bool) {
		dom := ""
		if i := strings.LastIndexByte(q.Sender, '@'); i >= 0 {
			dom = strings.ToLower(q.Sender[i+1:])
		}
		c, wait, ok := ps.Pick(pool.Mail{Lane: string(q.Lane), Tenant: q.TenantID, SenderDomain: dom}, q.Dest, q.N, q.Now)
		return delivery.Source{IP: c.Addr, EHLO: c.EHLO}, wait, ok
	}
}

// ownAddresses are posthorn's sending addresses: the pools', else
// [blocklists] ips.
func (s *Server) ownAddresses() []netip.Addr {
	if s.rep.pools.Configured() {
		return s.rep.pools.Addresses()
	}
	var out []netip.Addr
	for _, a := range s.cfg.Blocklists.IPs {
		if ip, err := netip.ParseAddr(a); err == nil {
			out = append(out, ip)
		}
	}
	return out
}

// startBlocklists starts the periodic checks when enabled.
func (s *Server) startBlocklists() error {
	b := &s.cfg.Blocklists
	if !b.Enabled {
		return nil
	}
	m, err := blocklist.New(blocklist.Config{IPZones: b.IPZones, DomainZones: b.DomainZones, IPs: s.ownAddresses,
		Domains: func(ctx context.Context) []string {
			out := append([]string(nil), b.Domains...)
			ds, err := s.st.ListDomains(ctx, "")
			if err != nil {
				s.log.Error("blocklists: list sending domains", "err", err)
			}
			for _, d := range ds {
				out = append(out, d.Name)
			}
			return out
		},
		DNSServer: s.cfg.DNSServer, Timeout: b.Timeout.Duration, Interval: b.Interval.Duration, Lists: b.Lists,
		Events: s.st, StateFile: filepath.Join(s.cfg.DataDir, "blocklists.json"), Log: s.log.With("part", "blocklists")})
	if err != nil {
		return err
	}
	s.rep.blocklist = m
	m.Start()
	return nil
}

// dmarcIntake builds the report intake when [dmarc] rua is set.
func (s *Server) dmarcIntake() {
	d := &s.cfg.DMARC
	if d.RUA == "" {
		return
	}
	s.rep.dmarc = &dmarc.Service{Store: s.st, Ours: s.ownAddresses, Log: s.log.With("part", "dmarc"),
		Limits: dmarc.Limits{MaxReportBytes: d.MaxReportBytes, MaxXMLBytes: d.MaxXMLBytes, MaxRecords: d.MaxRecords,
			MaxCompressRatio: d.MaxCompressRatio}}
}

// reportIntake adapts the DMARC service to the inbound listener.
type reportIntake struct{ svc *dmarc.Service }

func (r reportIntake) Take(ctx context.Context, msg []byte) (int, string, string) {
	rep := r.svc.Take(ctx, msg)
	return rep.Code, rep.Enhanced, rep.Text
}

// reputationAPI is what the admin and v1 APIs serve about reputation.
func (s *Server) reputationAPI() *api.Reputation {
	r := &api.Reputation{}
	if ps := s.rep.pools; ps.Configured() {
		r.Pools = func() any { return ps.Status(time.Now()) }
	}
	if m := s.rep.blocklist; m != nil {
		r.BlocklistCheck = func(ctx context.Context) (any, error) { return m.Check(ctx) }
	}
	if d := s.rep.dmarc; d != nil {
		r.DMARC = func(ctx context.Context, domain string, since time.Time) (any, error) {
			return d.Summarize(ctx, domain, since)
		}
	}
	return r
}

// BlocklistListings is the blocklist state for metrics
// (posthorn_blocklist_listed{list, target}); nil when monitoring is off.
func (s *Server) BlocklistListings() []blocklist.Listing {
	if s.rep.blocklist == nil {
		return nil
	}
	return s.rep.blocklist.Listings()
}

func (s *Server) stopReputation() {
	if s.rep.blocklist != nil {
		s.rep.blocklist.Stop()
	}
	if s.rep.pools != nil {
		if err := s.rep.pools.Stop(); err != nil {
			s.log.Error("warm-up counts", "err", err)
		}
	}
}
