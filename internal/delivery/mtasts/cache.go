package mtasts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// entry is one cached policy.
type entry struct {
	ID      string    `json:"id"`
	Policy  *Policy   `json:"policy"`
	Fetched time.Time `json:"fetched"`
	Expires time.Time `json:"expires"`
}

// Manager finds the policy that applies to a domain: from its cache, or
// by fetching it when the TXT record says there is a new one.
type Manager struct {
	fetch *Fetcher
	res   Resolver
	path  string // cache file; "" keeps the cache in memory only
	now   func() time.Time
	log   *slog.Logger

	mu      sync.Mutex
	entries map[string]entry
	// fetching deduplicates concurrent fetches of one domain.
	fetching map[string]*call
}

type call struct {
	done chan struct{}
	pol  *Policy
	err  error
}

// Options configure a Manager.
type Options struct {
	Fetcher   *Fetcher
	CacheFile string // JSON file the cache is kept in; "" for memory only
	Now       func() time.Time
	Log       *slog.Logger
}

// NewManager loads the cache file, if any. A damaged file is logged and
// ignored (the policies are fetched again).
func NewManager(o Options) *Manager {
	m := &Manager{fetch: o.Fetcher, res: o.Fetcher.Resolver, path: o.CacheFile, now: o.Now, log: o.Log,
		entries: map[string]entry{}, fetching: map[string]*call{}}
	if m.now == nil {
		m.now = time.Now
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if m.path != "" {
		b, err := os.ReadFile(m.path)
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			m.log.Warn("read MTA-STS policy cache", "file", m.path, "err", err)
		default:
			if err := json.Unmarshal(b, &m.entries); err != nil {
				m.log.Warn("MTA-STS policy cache unreadable; policies will be fetched again", "file", m.path, "err", err)
				m.entries = map[string]entry{}
			}
		}
	}
	return m
}

// Lookup is what Policy found.
type Lookup struct {
	Policy *Policy // nil: no policy applies
	ID     string
	// FetchErr is set when the domain announces a policy (TXT record) that
	// could not be fetched or parsed: for TLS reports. Policy may still be
	// set from the cache.
	FetchErr error
	Cached   bool // Policy came from the cache without a fetch
}

// Policy returns the policy that applies to domain now. Errors are never
// returned: a policy that cannot be learnt is no policy (RFC 8461 §5.1),
// with FetchErr saying why.
func (m *Manager) Policy(ctx context.Context, domain string) Lookup {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	now := m.now()
	m.mu.Lock()
	cached, ok := m.entries[domain]
	m.mu.Unlock()
	valid := ok && now.Before(cached.Expires)
	txts, err := m.res.LookupTXT(ctx, "_mta-sts."+domain)
	if err != nil {
		// DNS trouble: a cached policy still holds.
		if valid {
			return Lookup{Policy: cached.Policy, ID: cached.ID, Cached: true}
		}
		return Lookup{}
	}
	id, found, perr := ParseTXT(txts)
	switch {
	case !found || perr != nil:
		if valid {
			return Lookup{Policy: cached.Policy, ID: cached.ID, Cached: true}
		}
		if perr != nil {
			return Lookup{FetchErr: fmt.Errorf("_mta-sts TXT record: %w", perr)}
		}
		return Lookup{}
	case valid && cached.ID == id && now.Before(cached.Fetched.Add(refreshAfter(cached.Policy))):
		return Lookup{Policy: cached.Policy, ID: id, Cached: true}
	}
	pol, err := m.fetchOnce(ctx, domain, id)
	if err != nil {
		m.log.Info("MTA-STS policy fetch failed", "domain", domain, "err", err)
		if valid {
			return Lookup{Policy: cached.Policy, ID: cached.ID, FetchErr: err, Cached: true}
		}
		return Lookup{FetchErr: err}
	}
	return Lookup{Policy: pol, ID: id}
}

// refreshAfter is the age at which a cached policy is fetched again
// though its id did not change: half its max_age, at most a day. RFC 8461
// §5.1 asks senders to refresh policies before they expire, so that an
// attacker blocking the fetch at expiry time cannot remove the policy.
func refreshAfter(p *Policy) time.Duration { return min(p.MaxAge/2, 24*time.Hour) }

// fetchOnce fetches domain's policy, sharing one fetch among concurrent
// callers, and caches it.
func (m *Manager) fetchOnce(ctx context.Context, domain, id string) (*Policy, error) {
	m.mu.Lock()
	if c, ok := m.fetching[domain]; ok {
		m.mu.Unlock()
		select {
		case <-c.done:
			return c.pol, c.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	c := &call{done: make(chan struct{})}
	m.fetching[domain] = c
	m.mu.Unlock()

	c.pol, c.err = m.fetch.Fetch(ctx, domain)
	now := m.now()
	m.mu.Lock()
	delete(m.fetching, domain)
	if c.err == nil {
		m.entries[domain] = entry{ID: id, Policy: c.pol, Fetched: now, Expires: now.Add(c.pol.MaxAge)}
		m.pruneLocked(now)
		if err := m.saveLocked(); err != nil {
			m.log.Warn("save MTA-STS policy cache", "file", m.path, "err", err)
		}
	}
	m.mu.Unlock()
	close(c.done)
	return c.pol, c.err
}

// pruneLocked drops expired policies.
func (m *Manager) pruneLocked(now time.Time) {
	for d, e := range m.entries {
		if !now.Before(e.Expires) {
			delete(m.entries, d)
		}
	}
}

// saveLocked writes the cache file atomically (temporary file, fsync,
// rename).
func (m *Manager) saveLocked() error {
	if m.path == "" {
		return nil
	}
	b, err := json.Marshal(m.entries)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(m.path), 0o700); err != nil {
		return err
	}
	tmp := m.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, m.path)
}
