package testkit

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// MX is one MX record: preference and exchange host. Host "." (with Pref 0)
// is a null MX (RFC 7505).
type MX struct {
	Pref uint16
	Host string
}

// DNS is an authoritative-looking DNS server on loopback answering from
// records set at run time. It serves UDP and TCP on the same port. All
// methods are safe for concurrent use.
type DNS struct {
	udp, tcp *dns.Server
	addr     string
	done     chan struct{}
	closeMu  sync.Mutex
	closed   bool

	mu      sync.Mutex
	names   map[string]*records
	rcodes  map[qkey]int
	delays  map[string]time.Duration
	drops   map[string]int // queries still to be ignored, by name (DropNext)
	queries map[qkey]int
	ttl     uint32
	ad      bool            // set the AD bit: answers look DNSSEC-validated
	bogus   map[string]bool // names answered without AD even when ad is set
}

type records struct {
	mx    []MX
	a     []net.IP
	aaaa  []net.IP
	txt   [][]string
	tlsa  []TLSA
	cname string
}

type qkey struct {
	name  string
	qtype uint16
}

// DefaultTTL is the TTL of answers until SetTTL changes it.
const DefaultTTL = 60

// NewDNS starts a DNS server on addr ("127.0.0.1:0" picks a port free for
// both UDP and TCP). Stop it with Close.
func NewDNS(addr string) (*DNS, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("testkit: dns address %q: %w", addr, err)
	}
	var pc net.PacketConn
	var ln net.Listener
	tries := 1
	if port == "0" || port == "" {
		tries = 20
	}
	for i := 0; i < tries; i++ {
		pc, err = net.ListenPacket("udp", net.JoinHostPort(host, port))
		if err != nil {
			return nil, fmt.Errorf("testkit: dns listen udp: %w", err)
		}
		ln, err = net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			break
		}
		pc.Close()
		pc = nil
	}
	if pc == nil {
		return nil, fmt.Errorf("testkit: dns listen tcp: %w", err)
	}
	d := &DNS{
		addr:    pc.LocalAddr().String(),
		done:    make(chan struct{}),
		names:   map[string]*records{},
		rcodes:  map[qkey]int{},
		delays:  map[string]time.Duration{},
		drops:   map[string]int{},
		queries: map[qkey]int{},
		bogus:   map[string]bool{},
		ttl:     DefaultTTL,
	}
	var started sync.WaitGroup
	started.Add(2)
	h := dns.HandlerFunc(d.serve)
	d.udp = &dns.Server{PacketConn: pc, Handler: h, NotifyStartedFunc: started.Done}
	d.tcp = &dns.Server{Listener: ln, Handler: h, NotifyStartedFunc: started.Done}
	errc := make(chan error, 2)
	for _, s := range []*dns.Server{d.udp, d.tcp} {
		go func() {
			if err := s.ActivateAndServe(); err != nil {
				errc <- err
			}
		}()
	}
	ok := make(chan struct{})
	go func() { started.Wait(); close(ok) }()
	select {
	case <-ok:
	case err := <-errc:
		pc.Close()
		ln.Close()
		return nil, fmt.Errorf("testkit: dns serve: %w", err)
	}
	return d, nil
}

// StartDNS is NewDNS("127.0.0.1:0") failing t on error, closed by t.Cleanup.
func StartDNS(t testing.TB) *DNS {
	t.Helper()
	d, err := NewDNS("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

// Addr is the server's "ip:port", the same for UDP and TCP.
func (d *DNS) Addr() string { return d.addr }

// Close stops the server, aborting delayed answers. It is idempotent.
func (d *DNS) Close() {
	d.closeMu.Lock()
	defer d.closeMu.Unlock()
	if d.closed {
		return
	}
	d.closed = true
	close(d.done)
	_ = d.udp.Shutdown()
	_ = d.tcp.Shutdown()
}

// canon makes name lower case and fully qualified.
func canon(name string) string {
	return dns.Fqdn(strings.ToLower(strings.TrimSpace(name)))
}

func (d *DNS) rec(name string) *records {
	r := d.names[name]
	if r == nil {
		r = &records{}
		d.names[name] = r
	}
	return r
}

// SetTTL sets the TTL of all later answers (and the negative-caching TTL of
// the SOA sent with NXDOMAIN/NODATA). 0 makes answers uncacheable.
func (d *DNS) SetTTL(ttl uint32) {
	d.mu.Lock()
	d.ttl = ttl
	d.mu.Unlock()
}

// SetMX replaces the MX records of domain. With no mx the domain exists
// but has no MX (NODATA). MX{0, "."} publishes a null MX.
func (d *DNS) SetMX(domain string, mx ...MX) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.rec(canon(domain)).mx = append([]MX(nil), mx...)
}

// SetA replaces the address records of host: IPv4 addresses become A
// records, IPv6 ones AAAA. With no ips the host exists without addresses.
// It panics on an unparsable address (a bug in the test).
func (d *DNS) SetA(host string, ips ...string) {
	var a, aaaa []net.IP
	for _, s := range ips {
		ip, err := netip.ParseAddr(s)
		if err != nil {
			panic(fmt.Sprintf("testkit: SetA(%q): %v", host, err))
		}
		if ip.Is4() || ip.Is4In6() {
			a = append(a, net.IP(ip.Unmap().AsSlice()))
		} else {
			aaaa = append(aaaa, net.IP(ip.AsSlice()))
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	r := d.rec(canon(host))
	r.a, r.aaaa = a, aaaa
}

// SetTXT replaces the TXT records of name, one record per string.
func (d *DNS) SetTXT(name string, txt ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	r := d.rec(canon(name))
	r.txt = nil
	for _, s := range txt {
		r.txt = append(r.txt, splitTXT(s))
	}
}

// splitTXT cuts s into the 255-byte character-strings of one TXT record.
func splitTXT(s string) []string {
	var out []string
	for len(s) > 255 {
		out = append(out, s[:255])
		s = s[255:]
	}
	return append(out, s)
}

// SetAD makes the server answer like a DNSSEC-validating resolver that
// found every name secure: the AD bit is set on answers to queries with
// the DO or AD bit (except names passed to SetInsecure).
func (d *DNS) SetAD(on bool) {
	d.mu.Lock()
	d.ad = on
	d.mu.Unlock()
}

// SetInsecure makes answers for name come without the AD bit even with
// SetAD(true): an unsigned zone below a signed one.
func (d *DNS) SetInsecure(name string, insecure bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if insecure {
		d.bogus[canon(name)] = true
	} else {
		delete(d.bogus, canon(name))
	}
}

// SetTLSA replaces the TLSA records of name (e.g. "_25._tcp.mx1.example.test").
func (d *DNS) SetTLSA(name string, recs ...TLSA) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.rec(canon(name)).tlsa = append([]TLSA(nil), recs...)
}

// SetCNAME makes name an alias of target (other records of name are then
// ignored). Queries for name get the CNAME plus target's records of the
// asked type, when the server has them.
func (d *DNS) SetCNAME(name, target string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.rec(canon(name)).cname = canon(target)
}

// Remove deletes all records of name, which then no longer exists
// (NXDOMAIN), and its forced rcodes and delay.
func (d *DNS) Remove(name string) {
	n := canon(name)
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.names, n)
	delete(d.delays, n)
	for k := range d.rcodes {
		if k.name == n {
			delete(d.rcodes, k)
		}
	}
}

// SetRcode forces the response code of queries for (name, qtype), e.g.
// dns.RcodeServerFailure or dns.RcodeNameError; qtype 0 means every type.
// Forced answers carry no records. dns.RcodeSuccess removes the override.
func (d *DNS) SetRcode(name string, qtype uint16, rcode int) {
	k := qkey{canon(name), qtype}
	d.mu.Lock()
	defer d.mu.Unlock()
	if rcode == dns.RcodeSuccess {
		delete(d.rcodes, k)
		return
	}
	d.rcodes[k] = rcode
}

// SetDelay makes the server wait delay before answering any query for
// name, to simulate a slow or (with a delay beyond the client's timeout)
// unresponsive server. 0 removes the delay.
func (d *DNS) SetDelay(name string, delay time.Duration) {
	n := canon(name)
	d.mu.Lock()
	defer d.mu.Unlock()
	if delay <= 0 {
		delete(d.delays, n)
		return
	}
	d.delays[n] = delay
}

// DropNext makes the server ignore the next n queries for name, as if
// their datagrams were lost, then answer again.
func (d *DNS) DropNext(name string, n int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.drops[canon(name)] = n
}

// Queries counts the queries received for (name, qtype) over UDP and TCP;
// qtype 0 counts all types.
func (d *DNS) Queries(name string, qtype uint16) int {
	n := canon(name)
	d.mu.Lock()
	defer d.mu.Unlock()
	if qtype != 0 {
		return d.queries[qkey{n, qtype}]
	}
	total := 0
	for k, c := range d.queries {
		if k.name == n {
			total += c
		}
	}
	return total
}

// ResetQueries sets all query counters to zero.
func (d *DNS) ResetQueries() {
	d.mu.Lock()
	defer d.mu.Unlock()
	clear(d.queries)
}

func (d *DNS) serve(w dns.ResponseWriter, req *dns.Msg) {
	resp := new(dns.Msg)
	if len(req.Question) != 1 || req.Opcode != dns.OpcodeQuery {
		resp.SetRcode(req, dns.RcodeFormatError)
		_ = w.WriteMsg(resp)
		return
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)

	d.mu.Lock()
	d.queries[qkey{name, q.Qtype}]++
	delay := d.delays[name]
	drop := d.drops[name] > 0
	if drop {
		d.drops[name]--
	}
	d.mu.Unlock()
	if drop {
		return // no answer: the client times out
	}
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-d.done:
			t.Stop()
			return
		}
	}

	resp.SetReply(req)
	resp.Authoritative = true
	resp.RecursionAvailable = true
	d.answer(resp, q)
	d.mu.Lock()
	// A validating resolver sets AD for a client that asks with DO or AD
	// (RFC 6840 §5.7) when every record it returns is secure.
	resp.AuthenticatedData = d.ad && !d.bogus[name] && (req.AuthenticatedData || req.IsEdns0() != nil && req.IsEdns0().Do())
	d.mu.Unlock()

	if opt := req.IsEdns0(); opt != nil {
		resp.SetEdns0(opt.UDPSize(), false)
	}
	if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
		size := dns.MinMsgSize
		if opt := req.IsEdns0(); opt != nil && opt.UDPSize() > dns.MinMsgSize {
			size = int(opt.UDPSize())
		}
		resp.Truncate(size)
	}
	_ = w.WriteMsg(resp)
}

// answer fills resp for question q, following CNAMEs (at most 8).
func (d *DNS) answer(resp *dns.Msg, q dns.Question) {
	d.mu.Lock()
	defer d.mu.Unlock()
	name := strings.ToLower(q.Name)
	for hop := 0; hop < 8; hop++ {
		if rc, ok := d.rcodes[qkey{name, q.Qtype}]; ok {
			resp.Rcode = rc
			return
		}
		if rc, ok := d.rcodes[qkey{name, 0}]; ok {
			resp.Rcode = rc
			return
		}
		r := d.names[name]
		if r == nil {
			if hop == 0 {
				resp.Rcode = dns.RcodeNameError
				resp.Ns = []dns.RR{d.soa(name)}
			}
			return
		}
		hdr := func(t uint16) dns.RR_Header {
			return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: d.ttl}
		}
		if r.cname != "" && q.Qtype != dns.TypeCNAME {
			resp.Answer = append(resp.Answer, &dns.CNAME{Hdr: hdr(dns.TypeCNAME), Target: r.cname})
			name = r.cname
			continue
		}
		before := len(resp.Answer)
		switch q.Qtype {
		case dns.TypeMX:
			for _, m := range r.mx {
				resp.Answer = append(resp.Answer, &dns.MX{Hdr: hdr(dns.TypeMX), Preference: m.Pref, Mx: canon(m.Host)})
			}
		case dns.TypeA:
			for _, ip := range r.a {
				resp.Answer = append(resp.Answer, &dns.A{Hdr: hdr(dns.TypeA), A: ip})
			}
		case dns.TypeAAAA:
			for _, ip := range r.aaaa {
				resp.Answer = append(resp.Answer, &dns.AAAA{Hdr: hdr(dns.TypeAAAA), AAAA: ip})
			}
		case dns.TypeTXT:
			for _, t := range r.txt {
				resp.Answer = append(resp.Answer, &dns.TXT{Hdr: hdr(dns.TypeTXT), Txt: t})
			}
		case dns.TypeTLSA:
			for _, t := range r.tlsa {
				resp.Answer = append(resp.Answer, &dns.TLSA{Hdr: hdr(dns.TypeTLSA), Usage: t.Usage, Selector: t.Selector,
					MatchingType: t.MatchingType, Certificate: t.Data})
			}
		case dns.TypeCNAME:
			if r.cname != "" {
				resp.Answer = append(resp.Answer, &dns.CNAME{Hdr: hdr(dns.TypeCNAME), Target: r.cname})
			}
		}
		if len(resp.Answer) == before && hop == 0 {
			resp.Ns = []dns.RR{d.soa(name)} // NODATA
		}
		return
	}
}

// soa is the authority record sent with negative answers; its MINIMUM is
// the negative-caching TTL (RFC 2308).
func (d *DNS) soa(name string) dns.RR {
	zone := name
	if labels := dns.SplitDomainName(name); len(labels) > 2 {
		zone = dns.Fqdn(strings.Join(labels[len(labels)-2:], "."))
	}
	return &dns.SOA{
		Hdr:    dns.RR_Header{Name: zone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: d.ttl},
		Ns:     "ns." + zone,
		Mbox:   "hostmaster." + zone,
		Serial: 1, Refresh: 3600, Retry: 600, Expire: 86400, Minttl: d.ttl,
	}
}
