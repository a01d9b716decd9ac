// Package suppress keeps each tenant's suppression list in memory, backed
// by the store, and answers "may this tenant mail this address?" at accept
// time and again just before delivery. Entries are exact addresses, whole
// domains, globs (`*@example.com`, `sales-*@*`) or regular expressions;
// on_hold entries expire on their own.
//
// Matching ignores case in the whole address, local part included:
// `victim@y.test` suppresses `Victim@Y.TEST` and the other way round
// (RFC 5321 lets a server treat local parts case-sensitively, but none of
// the mailbox providers do, and a suppression that a change of case gets
// around is no suppression). Entries keep the spelling they were added
// with, for display; lookups fold case, so entries stored before this
// rule apply without migration. Globs and regular expressions are matched
// against the lower-cased address and compiled case-insensitively, so
// write them in lower case (an inline (?-i) cannot make one
// case-sensitive). Two entries differing only in case may both be stored
// (added in two spellings); they match the same addresses and Remove, in
// any spelling, deletes them all.
//
// Lists reach millions of addresses (docs/performance.md), so address
// entries are not held as rows: each tenant keeps a sorted set of 64-bit
// hashes of the folded addresses (hash/maphash, seeded per process: the
// set is rebuilt at every start), 8 bytes an entry, and a lookup that hits
// reads the address's rows from the store (one key range on the folded
// value) to confirm it and to report which entry matched, so a hash
// collision never suppresses another address. A miss, the common case,
// never touches the store. Domains, globs and regular expressions are few
// and stay in memory as entries.
//
// Start builds the list without holding up the server: the domains,
// globs and regular expressions are read first (a key range per tenant,
// when the store can read them apart: RuleReader), the millions of
// addresses in the background. Until they are in, every address lookup
// goes to the store (one indexed probe per recipient, slower but exact),
// so mail is never accepted for a suppressed address because the set is
// still loading; entries added meanwhile go to the store and the set
// alike, and entries removed meanwhile that the loader still read leave a
// hash the store no longer confirms.
package suppress

import (
	"context"
	"fmt"
	"hash/maphash"
	"log/slog"
	"regexp"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/posthorn/posthorn/internal/smtpproto"
	"github.com/posthorn/posthorn/internal/store"
)

// Reasons an address is suppressed.
const (
	HardBounce  = "hard_bounce"
	Unsubscribe = "unsubscribe"
	Complaint   = "complaint"
	OnHold      = "on_hold"
	Manual      = "manual"
)

// List is every tenant's suppressions.
type List struct {
	st   store.Store
	now  func() time.Time
	hash func(folded string) uint64 // a field so tests can force collisions

	mu      sync.RWMutex
	tenants map[string]*tenantList

	// loaded is set once the address hashes are in (at once for Load;
	// for Start when its background pass ends well). Until then address
	// lookups ask the store.
	loaded     atomic.Bool
	loadDone   chan struct{} // closed when the background pass ends
	loadErr    error         // its outcome, read after loadDone
	stopLoader context.CancelFunc
}

type tenantList struct {
	addrs    hashSet                      // hashes of fold(address); the rows stay in the store
	domains  map[string]store.Suppression // by fold(domain)
	patterns []compiled
}

// fold is the form addresses and domains are looked up by.
func fold(s string) string { return store.FoldAddress(s) }

type compiled struct {
	re *regexp.Regexp
	s  store.Suppression
}

func newList(st store.Store) *List {
	seed := maphash.MakeSeed()
	return &List{st: st, now: time.Now, tenants: map[string]*tenantList{},
		hash: func(s string) uint64 { return maphash.String(seed, s) }}
}

// Load reads every entry from the store, streaming: address entries
// become 8-byte hashes as they are read, so a list of millions is never
// held as rows.
func Load(ctx context.Context, st store.Store) (*List, error) {
	l := newList(st)
	defer l.loaded.Store(true)
	err := st.EachSuppression(ctx, "", func(s store.Suppression) error {
		if s.Kind == "address" {
			l.tenant(s.TenantID).addrs.main = append(l.tenant(s.TenantID).addrs.main, l.hash(fold(s.Value)))
			return nil
		}
		return l.index(s)
	})
	if err != nil {
		return nil, fmt.Errorf("load suppressions: %w", err)
	}
	for _, t := range l.tenants {
		t.addrs.main = sortedSet(t.addrs.main)
	}
	// Reading millions of rows left as much garbage as the list itself:
	// give it back now rather than carry it as RSS.
	debug.FreeOSMemory()
	return l, nil
}

// RuleReader is what a store offers so that Start needs not read every
// address before the server may listen: each tenant's entries other than
// addresses (domains, globs, regular expressions), without the addresses.
type RuleReader interface {
	EachSuppressionRule(ctx context.Context, fn func(store.Suppression) error) error
}

// Start returns a list that answers at once: it reads the domain, glob
// and regex entries now and the address entries in the background (see
// the package doc); until those are in, address lookups ask the store. A
// store without RuleReader is read whole first, as Load does. A failed
// background pass is logged and leaves the lookups on the store (exact,
// slower) until the next start.
func Start(ctx context.Context, st store.Store, log *slog.Logger) (*List, error) {
	rr, ok := st.(RuleReader)
	if !ok {
		l, err := Load(ctx, st)
		if err != nil {
			return nil, err
		}
		l.loadDone = make(chan struct{})
		close(l.loadDone)
		return l, nil
	}
	l := newList(st)
	if err := rr.EachSuppressionRule(ctx, l.index); err != nil {
		return nil, fmt.Errorf("load suppression rules: %w", err)
	}
	lctx, cancel := context.WithCancel(context.Background())
	l.loadDone, l.stopLoader = make(chan struct{}), cancel
	go func() {
		defer close(l.loadDone)
		t0 := time.Now()
		n, err := l.loadAddresses(lctx)
		l.loadErr = err
		switch {
		case err != nil && lctx.Err() == nil:
			log.Error("suppression lists: loading the addresses failed; address lookups ask the store until the next start", "err", err)
		case err == nil:
			log.Info("suppression lists loaded", "addresses", n, "took", time.Since(t0).Round(time.Millisecond))
		}
	}()
	return l, nil
}

// loadAddresses reads every address entry into the tenants' hash sets and
// then switches lookups to them.
func (l *List) loadAddresses(ctx context.Context) (int, error) {
	byTenant := map[string][]uint64{}
	n := 0
	err := l.st.EachSuppression(ctx, "", func(s store.Suppression) error {
		if s.Kind == "address" { // the rules were read before: an old copy could bring back a removed one
			byTenant[s.TenantID] = append(byTenant[s.TenantID], l.hash(fold(s.Value)))
			n++
		}
		return nil
	})
	if err != nil {
		return n, fmt.Errorf("load suppressed addresses: %w", err)
	}
	for id, hs := range byTenant {
		byTenant[id] = sortedSet(hs)
	}
	l.mu.Lock()
	for id, hs := range byTenant {
		t := l.tenant(id)
		added := append(t.addrs.main, t.addrs.recent...) // by Add while loading
		t.addrs = hashSet{main: hs}
		t.addrs.addMany(added)
	}
	l.loaded.Store(true)
	l.mu.Unlock()
	debug.FreeOSMemory() // see Load
	return n, nil
}

// Ready is closed once Start's background pass has ended; Err then says
// how it ended.
func (l *List) Ready() <-chan struct{} { return l.loadDone }

// Err is the background pass's error, after Ready.
func (l *List) Err() error {
	<-l.loadDone
	return l.loadErr
}

// Stop ends Start's background pass (before the store closes).
func (l *List) Stop() {
	if l == nil || l.stopLoader == nil {
		return
	}
	l.stopLoader()
	<-l.loadDone
}

// Parse turns user input into an entry: "user@example.com" (address),
// "example.com" or "@example.com" (domain), "*@example.com" / "sales-*@*"
// (pattern), "/regexp/" (regex).
func Parse(tenantID, input, reason string) (store.Suppression, error) {
	s := store.Suppression{TenantID: tenantID, Reason: reason}
	in := strings.TrimSpace(input)
	switch {
	case plainAddress(in):
		// What nearly every line of an import is: ParseAddress would
		// accept it and give it back unchanged, without its allocations.
		s.Kind, s.Value = "address", in
	case len(in) > 2 && strings.HasPrefix(in, "/") && strings.HasSuffix(in, "/"):
		s.Kind, s.Value = "regex", in[1:len(in)-1]
		if _, err := regexp.Compile("(?i)" + s.Value); err != nil {
			return s, fmt.Errorf("bad regular expression: %w", err)
		}
	case strings.Contains(in, "*"):
		s.Kind, s.Value = "pattern", strings.ToLower(in)
	case strings.Contains(strings.TrimPrefix(in, "@"), "@"):
		a, err := smtpproto.ParseAddress(in, true)
		if err != nil {
			return s, fmt.Errorf("bad address: %w", err)
		}
		s.Kind, s.Value = "address", a.String()
	default:
		d, err := smtpproto.NormalizeDomain(strings.TrimPrefix(in, "@"), true)
		if err != nil {
			return s, fmt.Errorf("bad domain: %w", err)
		}
		s.Kind, s.Value = "domain", d
	}
	switch reason {
	case HardBounce, Unsubscribe, Complaint, OnHold, Manual:
	default:
		return s, fmt.Errorf("unknown reason %q; valid reasons: %s, %s, %s, %s, %s", reason, Manual, HardBounce, Unsubscribe, Complaint, OnHold)
	}
	return s, nil
}

// plainAddress reports whether s is an address that
// smtpproto.ParseAddress accepts and whose String() is s itself: an ASCII
// dot-atom local part without '*' (which makes a glob) and a domain of
// lower-case letters, digits and hyphens. Anything else takes the long
// way; FuzzPlainAddress checks the two agree.
func plainAddress(s string) bool {
	at := strings.IndexByte(s, '@')
	if at < 1 || at > smtpproto.MaxLocalPart || len(s) > smtpproto.MaxPath || len(s)-at-1 > smtpproto.MaxDomain {
		return false
	}
	prev := byte('.') // no leading dot
	for i := 0; i < at; i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '.':
			if prev == '.' {
				return false
			}
		case c == '*' || strings.IndexByte("!#$%&'+-/=?^_`{|}~", c) < 0:
			return false // '*' makes a glob; other bytes are not atext (or not ASCII)
		}
		prev = c
	}
	if prev == '.' {
		return false // trailing dot
	}
	label := 0 // length of the current label
	prev = '.'
	for i := at + 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
			label++
		case c == '-':
			if prev == '.' {
				return false
			}
			label++
		case c == '.':
			if prev == '.' || prev == '-' {
				return false
			}
			label = 0
		default:
			return false
		}
		if label > 63 {
			return false
		}
		prev = c
	}
	return prev != '.' && prev != '-'
}

func globToRegexp(glob string) string {
	return "^" + strings.ReplaceAll(regexp.QuoteMeta(glob), `\*`, ".*") + "$"
}

// tenant returns tenantID's list, creating it (l.mu held or not yet shared).
func (l *List) tenant(tenantID string) *tenantList {
	t := l.tenants[tenantID]
	if t == nil {
		t = &tenantList{domains: map[string]store.Suppression{}}
		l.tenants[tenantID] = t
	}
	return t
}

// index applies an entry already stored.
func (l *List) index(s store.Suppression) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.indexLocked(s)
}

func (l *List) indexLocked(s store.Suppression) error {
	t := l.tenant(s.TenantID)
	switch s.Kind {
	case "address":
		t.addrs.add(l.hash(fold(s.Value)))
	case "domain":
		t.domains[fold(s.Value)] = s
	case "pattern", "regex":
		expr := s.Value
		if s.Kind == "pattern" {
			expr = globToRegexp(s.Value)
		}
		re, err := regexp.Compile("(?i)" + expr)
		if err != nil {
			return err
		}
		kept := t.patterns[:0]
		for _, p := range t.patterns {
			if p.s.Kind != s.Kind || p.s.Value != s.Value {
				kept = append(kept, p)
			}
		}
		t.patterns = append(kept, compiled{re: re, s: s})
	}
	return nil
}

// Add stores entries and applies them at once.
func (l *List) Add(ctx context.Context, ss ...store.Suppression) error {
	now := l.now().UTC()
	for i := range ss {
		if ss[i].CreatedAt.IsZero() {
			ss[i].CreatedAt = now
		}
	}
	if err := l.st.PutSuppressions(ctx, ss); err != nil {
		return err
	}
	// Hashed outside the lock, added per tenant in one merge (an import
	// brings tens of thousands at once).
	byTenant := map[string][]uint64{}
	var others []store.Suppression
	for _, s := range ss {
		if s.Kind == "address" {
			byTenant[s.TenantID] = append(byTenant[s.TenantID], l.hash(fold(s.Value)))
		} else {
			others = append(others, s)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for tenantID, hs := range byTenant {
		l.tenant(tenantID).addrs.addMany(hs)
	}
	for _, s := range others {
		if err := l.indexLocked(s); err != nil {
			return err
		}
	}
	return nil
}

// Describe says which entry stopped a recipient (kind, value, reason and
// detail), for the suppressed delivery and its event.
func Describe(s store.Suppression) string {
	out := fmt.Sprintf("suppressed by %s entry %s (%s)", s.Kind, s.Value, s.Reason)
	if s.Detail != "" {
		out += ": " + s.Detail
	}
	return out
}

// Remove deletes an entry given as Parse takes it.
func (l *List) Remove(ctx context.Context, tenantID, input string) (bool, error) {
	s, err := Parse(tenantID, input, Manual)
	if err != nil {
		return false, err
	}
	// Every stored spelling of the entry goes.
	values := []string{s.Value}
	switch s.Kind {
	case "address":
		stored, err := l.st.AddressSuppressions(ctx, tenantID, fold(s.Value))
		if err != nil {
			return false, fmt.Errorf("remove suppression %s: %w", s.Value, err)
		}
		for _, x := range stored {
			values = append(values, x.Value)
		}
	case "domain":
		l.mu.RLock()
		if t := l.tenants[tenantID]; t != nil {
			if x, ok := t.domains[fold(s.Value)]; ok {
				values = append(values, x.Value)
			}
		}
		l.mu.RUnlock()
	}
	found := false
	done := map[string]bool{}
	for _, v := range values {
		if done[v] {
			continue
		}
		done[v] = true
		ok, err := l.st.DeleteSuppression(ctx, tenantID, s.Kind, v)
		if err != nil {
			return found, fmt.Errorf("remove suppression %s: %w", v, err)
		}
		found = found || ok
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if t := l.tenants[tenantID]; t != nil {
		switch s.Kind {
		case "address":
			t.addrs.remove(l.hash(fold(s.Value)))
		case "domain":
			delete(t.domains, fold(s.Value))
		}
		kept := t.patterns[:0]
		for _, p := range t.patterns {
			if p.s.Kind != s.Kind || p.s.Value != s.Value {
				kept = append(kept, p)
			}
		}
		t.patterns = kept
	}
	return found, nil
}

// Check reports whether tenantID must not mail addr (case ignored), and
// the entry that says so. An address whose hash is in the list is
// confirmed against the store (one index probe), so a hash collision never
// suppresses another address; if the store cannot answer, the address is
// taken as suppressed (reason manual, the error in the detail): mailing a
// suppressed address is the worse mistake.
func (l *List) Check(tenantID, addr string) (store.Suppression, bool) {
	if l == nil {
		return store.Suppression{}, false
	}
	key := fold(addr)
	h := l.hash(key)
	loading := !l.loaded.Load()
	l.mu.RLock()
	t := l.tenants[tenantID]
	hit := loading || t != nil && t.addrs.has(h) // while loading, every address asks the store
	l.mu.RUnlock()
	if t == nil && !loading {
		return store.Suppression{}, false
	}
	now := l.now()
	live := func(s store.Suppression) bool { return s.ExpiresAt.IsZero() || now.Before(s.ExpiresAt) }
	if hit {
		stored, err := l.st.AddressSuppressions(context.Background(), tenantID, key)
		if err != nil {
			return store.Suppression{TenantID: tenantID, Kind: "address", Value: addr, Reason: Manual,
				Detail: fmt.Sprintf("suppression lookup failed: %v", err)}, true
		}
		for _, s := range stored {
			if live(s) {
				return s, true
			}
		}
	}
	if t == nil {
		return store.Suppression{}, false
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if at := strings.LastIndexByte(key, '@'); at >= 0 {
		if s, ok := t.domains[key[at+1:]]; ok && live(s) {
			return s, true
		}
	}
	for _, p := range t.patterns {
		if live(p.s) && p.re.MatchString(key) {
			return p.s, true
		}
	}
	return store.Suppression{}, false
}
