// Package domain manages tenants' sending domains: their DKIM keys
// (generated here, sealed at rest, never shown after creation), the DNS
// records to publish, DNS checks that verify a domain, key rotation, and
// the in-memory view the accept pipeline asks on every message: may this
// tenant send as this domain, and with which key is it signed.
//
// Decisions:
//   - A domain belongs to one tenant (the store's primary key is the name).
//     Subdomains are separate domains: example.org does not cover
//     mail.example.org.
//   - A domain is "pending" until its active DKIM key is seen in DNS, then
//     "verified" for good: a later check that misses the record reports it
//     but does not stop mail (a DNS hiccup must not halt sending).
//   - Pending domains may sign and send only when added with
//     --unverified-ok.
//   - Rotation adds a pending key; the old key keeps signing until a check
//     sees the new key's record, then the new key becomes active and the
//     old one retired (listed until removed with "domain remove-key").
//   - Private keys are sealed with AES-256-GCM under the key file dkim.key
//     (0600) in the data directory; the store holds only sealed keys.
//
// The view is rebuilt from the store after every change (all changes go
// through one Service, under its mutex) and read lock-free by accept.
//
// Tests: domain_test.go proves records, ownership (another tenant sees
// nothing), each check status against the test DNS server, verification,
// rotation, sealed keys, and that signatures verify with go-msgauth (and
// fail with a changed body or an added From) while List-Unsubscribe added
// later does not break them, and that the per-delivery signature over
// List-Unsubscribe (SignAdded) verifies and breaks when that field
// changes; internal/e2e verifies real deliveries with dkimpy and runs the
// sender-enforcement battery.
//
// Signing happens after the message is stored, in internal/dkimqueue (see
// there why), with the signer this package gives (Sending).
package domain

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/posthorn/posthorn/internal/smtpproto"
	"github.com/posthorn/posthorn/internal/store"
)

// Config is what the service needs to know.
type Config struct {
	Hostname      string // posthorn's name: SPF a: mechanism, bounce MX target
	BounceDomain  string // VERP domain; "" = none
	SPF           string // SPF mechanisms to publish; "" = "a:<Hostname>"
	DNSServer     string // host:port; "" = /etc/resolv.conf
	CheckInterval time.Duration
}

// InputError is a request the caller must change.
type InputError struct{ Msg string }

func (e *InputError) Error() string { return e.Msg }

// Service is the sending-domain manager.
type Service struct {
	cfg  Config
	st   store.Store
	seal *Sealer
	dns  *lookup
	log  *slog.Logger
	now  func() time.Time

	mu   sync.Mutex // serialises changes and view rebuilds
	view atomic.Pointer[map[string]*entry]

	cancel context.CancelFunc
	done   chan struct{}
}

// entry is the accept-time view of one domain.
type entry struct {
	tenantID string
	ok       bool // verified, or unverified-ok
	signer   *Signer
}

// New returns a service; Load reads the domains before use.
func New(cfg Config, st store.Store, seal *Sealer, log *slog.Logger) (*Service, error) {
	l, err := newLookup(cfg.DNSServer)
	if err != nil {
		return nil, err
	}
	if cfg.CheckInterval <= 0 {
		cfg.CheckInterval = time.Hour
	}
	s := &Service{cfg: cfg, st: st, seal: seal, dns: l, log: log, now: time.Now}
	s.view.Store(&map[string]*entry{})
	return s, nil
}

// Load builds the accept-time view from the store.
func (s *Service) Load(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reload(ctx)
}

func (s *Service) reload(ctx context.Context) error {
	ds, err := s.st.ListDomains(ctx, "")
	if err != nil {
		return err
	}
	keys, err := s.st.DKIMKeys(ctx, "")
	if err != nil {
		return err
	}
	old := *s.view.Load()
	active := map[string]store.DKIMKey{}
	for _, k := range keys {
		if k.State == store.KeyActive {
			active[k.Domain] = k
		}
	}
	v := make(map[string]*entry, len(ds))
	for _, d := range ds {
		e := &entry{tenantID: d.TenantID, ok: d.Status == store.DomainVerified || d.UnverifiedOK}
		if k, ok := active[d.Name]; ok {
			if prev := old[d.Name]; prev != nil && prev.signer != nil && prev.signer.Selector == k.Selector {
				e.signer = prev.signer
			} else {
				priv, err := s.seal.open(k.PrivateKey, k.Domain, k.Selector)
				if err != nil {
					return err
				}
				e.signer = &Signer{Domain: d.Name, Selector: k.Selector, key: priv}
			}
		}
		v[d.Name] = e
	}
	s.view.Store(&v)
	return nil
}

// Sending says whether tenantID may send as domain (its own domain,
// verified or unverified-ok) and gives the function that signs its mail.
// domain is lower case ASCII.
func (s *Service) Sending(tenantID, domain string) (func([]byte) ([]byte, error), bool) {
	e := (*s.view.Load())[domain]
	if e == nil || e.tenantID != tenantID || !e.ok {
		return nil, false
	}
	if e.signer == nil {
		return nil, true
	}
	return e.signer.Sign, true
}

// SignAdded signs header fields added at delivery to a message of the
// tenant's domain, which that domain's key signed before (Signer.SignAdded).
func (s *Service) SignAdded(tenantID, domain string, added, msg []byte) ([]byte, error) {
	e := (*s.view.Load())[domain]
	if e == nil || e.tenantID != tenantID || !e.ok || e.signer == nil {
		return nil, fmt.Errorf("domain %s has no DKIM key for this tenant", domain)
	}
	return e.signer.SignAdded(added, msg)
}

// Info is a domain as the CLI and API show it: never with private keys.
type Info struct {
	Domain       string          `json:"domain"`
	Tenant       string          `json:"tenant"`
	Status       string          `json:"status"`
	UnverifiedOK bool            `json:"unverified_ok"`
	Selector     string          `json:"selector"`
	Algorithm    string          `json:"algorithm"`
	CreatedAt    time.Time       `json:"created_at"`
	VerifiedAt   time.Time       `json:"verified_at,omitzero"`
	CheckedAt    time.Time       `json:"checked_at,omitzero"`
	Keys         []store.DKIMKey `json:"keys"`
	Records      []Record        `json:"records"`
	LastCheck    *Report         `json:"last_check,omitempty"`
}

func (s *Service) info(d *store.SendingDomain, keys []store.DKIMKey) *Info {
	in := &Info{Domain: d.Name, Tenant: d.TenantID, Status: d.Status, UnverifiedOK: d.UnverifiedOK, CreatedAt: d.CreatedAt,
		VerifiedAt: d.VerifiedAt, CheckedAt: d.CheckedAt, Keys: keys, Records: s.records(d.Name, keys)}
	for _, k := range keys {
		if k.State == store.KeyActive {
			in.Selector, in.Algorithm = k.Selector, k.Algorithm
		}
	}
	if in.Keys == nil {
		in.Keys = []store.DKIMKey{}
	}
	if len(d.LastCheck) > 0 {
		var r Report
		if json.Unmarshal(d.LastCheck, &r) == nil {
			in.LastCheck = &r
		}
	}
	return in
}

// AddRequest adds a domain.
type AddRequest struct {
	TenantID     string
	Domain       string
	Algorithm    string // rsa (default) or ed25519
	Selector     string // default generated
	UnverifiedOK bool
}

// NormalizeName checks a domain name and returns its lower-case A-label form.
func NormalizeName(name string) (string, error) {
	d, err := smtpproto.NormalizeDomain(strings.TrimSuffix(strings.TrimSpace(name), "."), true)
	if err != nil || strings.HasPrefix(d, "[") || !strings.Contains(d, ".") {
		return "", &InputError{fmt.Sprintf("%q is not a domain name", name)}
	}
	return d, nil
}

func checkSelector(sel string) error {
	if sel == "" || len(sel) > 63 || sel[0] == '-' || sel[len(sel)-1] == '-' {
		return &InputError{fmt.Sprintf("selector %q: want 1-63 letters, digits or inner hyphens", sel)}
	}
	for _, c := range sel {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return &InputError{fmt.Sprintf("selector %q: want lower-case letters, digits or hyphens", sel)}
		}
	}
	return nil
}

// newKeyRecord makes and seals a key for domain.
func (s *Service) newKeyRecord(domain, alg, sel, state string) (store.DKIMKey, error) {
	if alg == "" {
		alg = AlgRSA
	}
	if alg != AlgRSA && alg != AlgEd25519 {
		return store.DKIMKey{}, &InputError{fmt.Sprintf("algorithm %q: want rsa or ed25519", alg)}
	}
	now := s.now().UTC()
	if sel == "" {
		sel = newSelector(alg, now)
	}
	sel = strings.ToLower(sel)
	if err := checkSelector(sel); err != nil {
		return store.DKIMKey{}, err
	}
	priv, pub, err := newKey(alg)
	if err != nil {
		return store.DKIMKey{}, err
	}
	sealed, err := s.seal.seal(priv, domain, sel)
	if err != nil {
		return store.DKIMKey{}, err
	}
	k := store.DKIMKey{Domain: domain, Selector: sel, Algorithm: alg, PublicKey: pub, PrivateKey: sealed, State: state, CreatedAt: now}
	if state == store.KeyActive {
		k.ActivatedAt = now
	}
	return k, nil
}

// Add registers a domain for a tenant with a new DKIM key.
func (s *Service) Add(ctx context.Context, req AddRequest) (*Info, error) {
	name, err := NormalizeName(req.Domain)
	if err != nil {
		return nil, err
	}
	k, err := s.newKeyRecord(name, req.Algorithm, req.Selector, store.KeyActive)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if ex, err := s.st.GetDomain(ctx, name); err == nil {
		if ex.TenantID == req.TenantID {
			return nil, fmt.Errorf("domain %s was already added to this tenant: %w", name, store.ErrConflict)
		}
		return nil, fmt.Errorf("domain %s belongs to another tenant; a domain can belong to one tenant only: %w", name, store.ErrConflict)
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	d := store.SendingDomain{Name: name, TenantID: req.TenantID, Status: store.DomainPending, UnverifiedOK: req.UnverifiedOK, CreatedAt: k.CreatedAt}
	if err := s.st.CreateDomain(ctx, d, k); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil, fmt.Errorf("domain %s belongs to a tenant already: %w", name, store.ErrConflict)
		}
		return nil, err
	}
	if err := s.reload(ctx); err != nil {
		return nil, err
	}
	s.log.Info("sending domain added", "domain", name, "tenant", req.TenantID, "selector", k.Selector, "algorithm", k.Algorithm)
	return s.info(&d, []store.DKIMKey{k}), nil
}

// get finds a tenant's domain; another tenant's domain is ErrNotFound.
// An empty tenantID (the operator) sees every domain.
func (s *Service) get(ctx context.Context, tenantID, name string) (*store.SendingDomain, []store.DKIMKey, error) {
	n, err := NormalizeName(name)
	if err != nil {
		return nil, nil, err
	}
	d, err := s.st.GetDomain(ctx, n)
	if err == nil && tenantID != "" && d.TenantID != tenantID {
		err = store.ErrNotFound
	}
	if err != nil {
		return nil, nil, fmt.Errorf("domain %s: %w", n, err)
	}
	keys, err := s.st.DKIMKeys(ctx, n)
	if err != nil {
		return nil, nil, err
	}
	return d, keys, nil
}

// Get shows one domain.
func (s *Service) Get(ctx context.Context, tenantID, name string) (*Info, error) {
	d, keys, err := s.get(ctx, tenantID, name)
	if err != nil {
		return nil, err
	}
	return s.info(d, keys), nil
}

// List shows a tenant's domains ("" lists all).
func (s *Service) List(ctx context.Context, tenantID string) ([]*Info, error) {
	ds, err := s.st.ListDomains(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	keys, err := s.st.DKIMKeys(ctx, "")
	if err != nil {
		return nil, err
	}
	by := map[string][]store.DKIMKey{}
	for _, k := range keys {
		by[k.Domain] = append(by[k.Domain], k)
	}
	out := make([]*Info, 0, len(ds))
	for i := range ds {
		out = append(out, s.info(&ds[i], by[ds[i].Name]))
	}
	return out, nil
}

// Remove deletes a domain and its keys: its mail is no longer signed and,
// with sender enforcement, no longer accepted.
func (s *Service) Remove(ctx context.Context, tenantID, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, _, err := s.get(ctx, tenantID, name)
	if err != nil {
		return err
	}
	if err := s.st.DeleteDomain(ctx, d.Name); err != nil {
		return err
	}
	s.log.Info("sending domain removed", "domain", d.Name, "tenant", d.TenantID)
	return s.reload(ctx)
}

// Rotate adds a pending key (replacing an earlier pending one); it
// becomes active once a check sees its record.
func (s *Service) Rotate(ctx context.Context, tenantID, name, alg, selector string) (*Info, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, keys, err := s.get(ctx, tenantID, name)
	if err != nil {
		return nil, err
	}
	if alg == "" {
		alg = AlgRSA
		for _, k := range keys {
			if k.State == store.KeyActive {
				alg = k.Algorithm
			}
		}
	}
	k, err := s.newKeyRecord(d.Name, alg, selector, store.KeyPending)
	if err != nil {
		return nil, err
	}
	var kept []store.DKIMKey
	for _, x := range keys {
		if x.Selector == k.Selector {
			return nil, &InputError{fmt.Sprintf("selector %s is already used by %s", k.Selector, d.Name)}
		}
		if x.State == store.KeyPending {
			if err := s.st.DeleteDKIMKey(ctx, d.Name, x.Selector); err != nil {
				return nil, err
			}
			continue
		}
		kept = append(kept, x)
	}
	if err := s.st.PutDKIMKeys(ctx, k); err != nil {
		return nil, err
	}
	s.log.Info("dkim key rotation started", "domain", d.Name, "selector", k.Selector)
	return s.info(d, append(kept, k)), nil
}

// RemoveKey deletes a key that no longer signs (retired or pending).
func (s *Service) RemoveKey(ctx context.Context, tenantID, name, selector string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, keys, err := s.get(ctx, tenantID, name)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if k.Selector != selector {
			continue
		}
		if k.State == store.KeyActive {
			return &InputError{fmt.Sprintf("key %s signs %s's mail; rotate first", selector, d.Name)}
		}
		return s.st.DeleteDKIMKey(ctx, d.Name, selector)
	}
	return fmt.Errorf("key %s of %s: %w", selector, d.Name, store.ErrNotFound)
}

// Check looks up a domain's records, stores the report and status, and
// switches to a pending key that is now published. The lookups run
// without the service's lock, so a slow DNS server does not hold up
// other changes; the result is applied to the domain as it is then.
func (s *Service) Check(ctx context.Context, tenantID, name string) (*Report, error) {
	d, keys, err := s.get(ctx, tenantID, name)
	if err != nil {
		return nil, err
	}
	rep := &Report{Domain: d.Name, CheckedAt: s.now().UTC()}
	published := map[string]bool{}
	for _, r := range s.records(d.Name, keys) {
		c := s.dns.checkRecord(ctx, r)
		rep.Records = append(rep.Records, c)
		if r.Purpose == PurposeDKIM && c.Status == CheckOK {
			published[r.Selector] = true
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if d, keys, err = s.get(ctx, tenantID, name); err != nil {
		return nil, err
	}
	return rep, s.apply(ctx, d, keys, rep, published)
}

// apply records a check: a published pending key becomes active (the old
// one retired), a published active key verifies the domain.
func (s *Service) apply(ctx context.Context, d *store.SendingDomain, keys []store.DKIMKey, rep *Report, published map[string]bool) error {
	now := rep.CheckedAt
	var changed []store.DKIMKey
	for _, k := range keys {
		if k.State == store.KeyPending && published[k.Selector] {
			for _, old := range keys {
				if old.State == store.KeyActive {
					old.State = store.KeyRetired
					changed = append(changed, old)
				}
			}
			k.State, k.ActivatedAt = store.KeyActive, now
			changed = append(changed, k)
			s.log.Info("dkim key rotated", "domain", d.Name, "selector", k.Selector)
			break
		}
	}
	verified := len(changed) > 0 // the new key is published: the domain is proven
	for _, k := range keys {
		verified = verified || k.State == store.KeyActive && published[k.Selector]
	}
	if verified && d.Status != store.DomainVerified {
		d.Status, d.VerifiedAt = store.DomainVerified, now
		s.log.Info("sending domain verified", "domain", d.Name, "tenant", d.TenantID)
	}
	rep.Status = d.Status
	d.CheckedAt = now
	var err error
	if d.LastCheck, err = json.Marshal(rep); err != nil {
		return err
	}
	if len(changed) > 0 {
		if err := s.st.PutDKIMKeys(ctx, changed...); err != nil {
			return err
		}
	}
	if err := s.st.UpdateDomain(ctx, *d); err != nil {
		return err
	}
	return s.reload(ctx)
}

// CheckAll checks every domain (the periodic re-check).
func (s *Service) CheckAll(ctx context.Context) {
	ds, err := s.st.ListDomains(ctx, "")
	if err != nil {
		s.log.Error("domain check", "err", err)
		return
	}
	for _, d := range ds {
		if ctx.Err() != nil {
			return
		}
		if _, err := s.Check(ctx, "", d.Name); err != nil {
			s.log.Error("domain check", "domain", d.Name, "err", err)
		}
	}
}

// Start re-checks every domain each CheckInterval until Stop.
func (s *Service) Start(ctx context.Context) error {
	cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel, s.done = cancel, make(chan struct{})
	go func() {
		defer close(s.done)
		t := time.NewTicker(s.cfg.CheckInterval)
		defer t.Stop()
		for {
			select {
			case <-cctx.Done():
				return
			case <-t.C:
				s.CheckAll(cctx)
			}
		}
	}()
	return nil
}

// Stop ends the periodic checks and waits for a check in progress.
func (s *Service) Stop() {
	if s.cancel == nil {
		return
	}
	s.cancel()
	<-s.done
	s.cancel = nil
}

// signerFor is used by tests: the active key of a domain.
func (s *Service) signerFor(domain string) crypto.Signer {
	if e := (*s.view.Load())[domain]; e != nil && e.signer != nil {
		return e.signer.key
	}
	return nil
}
