package delivery

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// MXHost is one host to try, in order.
type MXHost struct {
	Name     string
	Pref     uint16
	Implicit bool // no MX record: the domain itself (RFC 5321 §5.1)
}

// DNSError is a failed lookup. Permanent ones (the domain does not exist,
// or publishes a null MX) end the delivery; others are retried.
type DNSError struct {
	Name      string
	Permanent bool
	// NoAddress: the host exists but has neither A nor AAAA records (a
	// definite answer, unlike a failed lookup).
	NoAddress bool
	Msg       string
}

func (e *DNSError) Error() string { return e.Name + ": " + e.Msg }

// Resolver looks up MX and address records through one DNS server (the
// test DNS server in tests, the system's resolver otherwise) and caches
// answers for their TTL, at most cacheMax.
type Resolver struct {
	servers []string
	tries   []time.Duration // the timeout of each try of a query, per server (udpTries)
	// slots bounds the queries whose first try is on its way (maxInflight).
	slots chan struct{}
	// Counters for Stats.
	queries, retransmits, failures atomic.Uint64
	now                            func() time.Time
	// dnssec asks with the DO bit; adTrusted says the AD bit of the
	// answers may be believed (see EnableDNSSEC).
	dnssec, adTrusted bool

	mu       sync.Mutex
	cache    map[cacheKey]cacheEntry
	inflight map[cacheKey]*flight // queries being asked now: callers for the same one wait for it
}

// flight is one query on its way; done is closed once msg and err are set.
type flight struct {
	done chan struct{}
	msg  *dns.Msg
	err  error
}

type cacheKey struct {
	name  string
	qtype uint16
}

type cacheEntry struct {
	msg   *dns.Msg
	err   error
	until time.Time
}

const (
	cacheMax = 5 * time.Minute
	cacheNeg = 30 * time.Second
)

// NewResolver uses server ("host:port"); empty means the nameservers in
// /etc/resolv.conf.
func NewResolver(server string) (*Resolver, error) {
	r := &Resolver{tries: udpTries, now: time.Now, slots: make(chan struct{}, maxInflight),
		cache: map[cacheKey]cacheEntry{}, inflight: map[cacheKey]*flight{}}
	if server != "" {
		r.servers = []string{server}
		return r, nil
	}
	cc, err := dns.ClientConfigFromFile("/etc/resolv.conf")
	if err != nil {
		return nil, fmt.Errorf("read /etc/resolv.conf: %w", err)
	}
	for _, s := range cc.Servers {
		r.servers = append(r.servers, net.JoinHostPort(s, cc.Port))
	}
	if len(r.servers) == 0 {
		return nil, errors.New("no nameserver in /etc/resolv.conf")
	}
	return r, nil
}

// udpTries are the timeouts of the tries of one query to one server. A
// datagram lost on the way (a busy resolver's full socket buffer) costs a
// second and a retransmission, not the whole query: with one 5-second try,
// one lost datagram deferred a delivery for a full retry interval (a
// high-lane message among 5,000 domains' first lookups in bench/scale).
// The tries share one socket, so a slow answer to an earlier try still
// counts when it comes during a later one; their sum, 6 seconds, is about
// the 5 seconds of the single try before.
var udpTries = []time.Duration{time.Second, 2 * time.Second, 3 * time.Second}

// ResolverStats counts the resolver's work since it started.
type ResolverStats struct {
	Queries     uint64 // queries sent (each once, whatever its retransmissions)
	Retransmits uint64 // queries sent again after a try's timeout: datagrams lost or a slow server
	Failures    uint64 // lookups without an answer from any server: timeouts, refusals, SERVFAIL (not NXDOMAIN)
}

// Stats returns the resolver's counters.
func (r *Resolver) Stats() ResolverStats {
	return ResolverStats{Queries: r.queries.Load(), Retransmits: r.retransmits.Load(), Failures: r.failures.Load()}
}

// maxInflight is how many queries may wait for the answer to their first
// try at once; the others wait their turn here. When a large queue comes
// due, each of thousands of domains needs its first lookup at the same
// moment: sent together, the datagrams overflowed the resolver's socket
// buffer (5,000 at once to the test DNS server: 5,161 dropped, three in
// four lookups waited one or two retransmission timeouts, up to 3 s), and
// a high-lane message to one of those domains waited with them. Waiting
// in line here costs a round trip per query, not a second. A query whose
// first try goes unanswered gives its place up for its retransmissions,
// so that slow or dead servers (a domain whose lookups time out) hold the
// line for a second each at most.
const maxInflight = 128

// exchange asks srv over UDP, sending the query again after each try's
// timeout, and over TCP when the answer is truncated.
func (r *Resolver) exchange(ctx context.Context, q *dns.Msg, srv string) (*dns.Msg, error) {
	resp, err := r.exchangeUDP(ctx, q, srv)
	if err == nil && resp.Truncated {
		tcp := &dns.Client{Net: "tcp", Timeout: r.tries[len(r.tries)-1]}
		resp, _, err = tcp.ExchangeContext(ctx, q, srv)
	}
	return resp, err
}

func (r *Resolver) exchangeUDP(ctx context.Context, q *dns.Msg, srv string) (*dns.Msg, error) {
	select {
	case r.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	held := true
	release := func() {
		if held {
			held = false
			<-r.slots
		}
	}
	defer release()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "udp", srv)
	if err != nil {
		return nil, err
	}
	co := &dns.Conn{Conn: nc, UDPSize: dns.MaxMsgSize}
	defer co.Close()
	r.queries.Add(1)
	for try, timeout := range r.tries {
		if try > 0 {
			release() // unanswered first try: the retries wait for no one
			r.retransmits.Add(1)
		}
		deadline := time.Now().Add(timeout)
		if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
			deadline = dl
		}
		co.SetDeadline(deadline)
		if err = co.WriteMsg(q); err != nil {
			return nil, err
		}
		var ne net.Error
		for {
			var resp *dns.Msg
			resp, err = co.ReadMsg()
			if errors.As(err, &ne) {
				break // this try's deadline, or the socket's own error
			}
			if err == nil && resp.Id == q.Id {
				return resp, nil
			}
			// Not ours, or not DNS (a stray datagram): read on until the deadline.
		}
		if !ne.Timeout() || ctx.Err() != nil {
			return nil, err // refused, unreachable, or given up by the caller
		}
	}
	return nil, err
}

// query asks for name/qtype, over UDP then TCP when truncated, trying each
// server; answers (including NXDOMAIN) are cached. Concurrent callers for
// one name and type share one query: when a queue of many domains comes
// due at once, each domain's first connections would otherwise all ask
// the same question together, and a burst of datagrams is what a busy
// resolver drops.
func (r *Resolver) query(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	name = dns.Fqdn(strings.ToLower(name))
	key := cacheKey{name, qtype}
	now := r.now()
	r.mu.Lock()
	if e, ok := r.cache[key]; ok && now.Before(e.until) {
		r.mu.Unlock()
		return e.msg, e.err
	}
	if f := r.inflight[key]; f != nil {
		r.mu.Unlock()
		select {
		case <-f.done:
			return f.msg, f.err
		case <-ctx.Done():
			return nil, &DNSError{Name: strings.TrimSuffix(name, "."), Msg: "lookup failed: " + ctx.Err().Error()}
		}
	}
	f := &flight{done: make(chan struct{})}
	r.inflight[key] = f
	r.mu.Unlock()
	f.msg, f.err = r.ask(ctx, name, qtype, key, now)
	r.mu.Lock()
	delete(r.inflight, key)
	r.mu.Unlock()
	close(f.done)
	return f.msg, f.err
}

// ask sends the query to each server in turn until one answers, and
// caches the answer.
func (r *Resolver) ask(ctx context.Context, name string, qtype uint16, key cacheKey, now time.Time) (*dns.Msg, error) {
	q := new(dns.Msg)
	q.SetQuestion(name, qtype)
	q.RecursionDesired = true
	q.SetEdns0(1232, r.dnssec)
	var lastErr error
	for _, srv := range r.servers {
		resp, err := r.exchange(ctx, q, srv)
		if err != nil {
			lastErr = err
			continue
		}
		var rerr error
		ttl := cacheMax
		switch resp.Rcode {
		case dns.RcodeSuccess:
			for _, rr := range resp.Answer {
				if t := time.Duration(rr.Header().Ttl) * time.Second; t < ttl {
					ttl = t
				}
			}
		case dns.RcodeNameError:
			rerr = &DNSError{Name: strings.TrimSuffix(name, "."), Permanent: true, Msg: "no such domain (NXDOMAIN)"}
			ttl = cacheNeg
		default:
			lastErr = &DNSError{Name: strings.TrimSuffix(name, "."), Msg: "server answered " + dns.RcodeToString[resp.Rcode]}
			continue
		}
		r.mu.Lock()
		if len(r.cache) > 100000 {
			clear(r.cache)
		}
		r.cache[key] = cacheEntry{msg: resp, err: rerr, until: now.Add(ttl)}
		r.mu.Unlock()
		return resp, rerr
	}
	r.failures.Add(1)
	var de *DNSError
	if errors.As(lastErr, &de) {
		return nil, de
	}
	return nil, &DNSError{Name: strings.TrimSuffix(name, "."), Msg: fmt.Sprintf("lookup failed: %v", lastErr)}
}

// LookupMX returns the hosts to try for domain: MX records by preference
// (shuffled within one preference), or the domain itself when it has no
// MX. A null MX (RFC 7505) is a permanent error.
func (r *Resolver) LookupMX(ctx context.Context, domain string) ([]MXHost, error) {
	resp, err := r.query(ctx, domain, dns.TypeMX)
	if err != nil {
		return nil, err
	}
	var hosts []MXHost
	for _, rr := range resp.Answer {
		if mx, ok := rr.(*dns.MX); ok {
			hosts = append(hosts, MXHost{Name: strings.TrimSuffix(strings.ToLower(mx.Mx), "."), Pref: mx.Preference})
		}
	}
	if len(hosts) == 0 {
		return []MXHost{{Name: domain, Implicit: true}}, nil
	}
	if len(hosts) == 1 && (hosts[0].Name == "" || hosts[0].Name == ".") {
		return nil, &DNSError{Name: domain, Permanent: true, Msg: "domain publishes a null MX: it accepts no mail (RFC 7505)"}
	}
	rand.Shuffle(len(hosts), func(i, j int) { hosts[i], hosts[j] = hosts[j], hosts[i] })
	sort.SliceStable(hosts, func(i, j int) bool { return hosts[i].Pref < hosts[j].Pref })
	return hosts, nil
}

// LookupIP returns host's IPv4 then IPv6 addresses. An address literal
// ("[192.0.2.1]") or a bare IP is returned as is.
func (r *Resolver) LookupIP(ctx context.Context, host string) ([]netip.Addr, error) {
	lit := strings.TrimPrefix(strings.TrimSuffix(host, "]"), "[")
	lit = strings.TrimPrefix(lit, "IPv6:")
	if a, err := netip.ParseAddr(lit); err == nil {
		return []netip.Addr{a}, nil
	}
	var addrs []netip.Addr
	var firstErr error
	for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
		resp, err := r.query(ctx, host, qt)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		for _, rr := range resp.Answer {
			switch v := rr.(type) {
			case *dns.A:
				if a, ok := netip.AddrFromSlice(v.A.To4()); ok {
					addrs = append(addrs, a)
				}
			case *dns.AAAA:
				if a, ok := netip.AddrFromSlice(v.AAAA); ok {
					addrs = append(addrs, a)
				}
			}
		}
	}
	if len(addrs) == 0 {
		if firstErr != nil {
			return nil, firstErr
		}
		return nil, &DNSError{Name: host, Permanent: false, NoAddress: true, Msg: "host has no A or AAAA record"}
	}
	return addrs, nil
}
