// Package delivery gets one message to one destination: it finds where to
// connect (a route's relay host, or the domain's MX hosts in preference
// order with fallback to the next host and to the domain's own address
// when there is no MX, RFC 5321 §5.1), opens the SMTP session (STARTTLS
// whenever offered, AUTH on relays that need it), and sends each message's
// recipients in one transaction, returning one result per recipient.
//
// It keeps no queue state: the queue package decides what to send and
// what each result means for the delivery.
//
// TLS policy (tlspolicy.go, docs/tls.md): each host gets one policy, a
// configured one, DANE (subpackage dane, TLSA records through a trusted
// validating resolver), MTA-STS (subpackage mtasts), or opportunistic
// "may"; a mandatory policy that is not met is a tls_policy failure.
// Every session's TLS version, cipher, policy and certificate check are
// in Conn.TLSInfo (Failure.TLS), and sessions under a policy are counted
// for TLS reports (subpackage tlsrpt).
//
// Faults of the receiving side, and what delivery makes of them:
//   - No reply after the final dot (a timeout, a close, garbage): the
//     result's Err starts with PossibleDuplicate, since the receiver may
//     have taken the message (RFC 1047); the retry may deliver it twice. A
//     connection reset before the reply is not flagged: the receiver closed
//     with our data unread, so it never read the dot.
//   - A reply out of sequence (two replies to one command, a 3xx after the
//     dot): a protocol_error for every recipient, whatever the replies said,
//     since none of them can be matched to its command any more.
//   - A failed TLS handshake with an opportunistic host: one more try in
//     cleartext; the results then carry a note saying so in Err.
//   - MX hosts that are this server (by name, or greeting with our
//     hostname): they and all less preferred hosts are skipped (RFC 5321
//     §5.1); when this server is the best MX, the mail loops: a permanent
//     dns_error naming the loop.
//   - An MX target that is an IP address (invalid, but seen) is used as
//     that address; an MX target that is a CNAME is followed.
//   - A domain without MX whose address lookup fails temporarily (SERVFAIL,
//     timeout) is retried; only a definite "no such host" or "no address"
//     is permanent.
package delivery

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/posthorn/posthorn/internal/classify"
	"github.com/posthorn/posthorn/internal/delivery/smtpclient"
	"github.com/posthorn/posthorn/internal/delivery/tlsrpt"
	"github.com/posthorn/posthorn/internal/smtpproto"
)

// Config is what delivery needs from the configuration.
type Config struct {
	Hostname       string
	Port           int // TCP port of MX hosts (25; tests use another)
	ConnectTimeout time.Duration
	CommandTimeout time.Duration
	DataTimeout    time.Duration
	Routes         []Route    // "*" is the smarthost
	Providers      []Provider // MX suffix groups; nil: DefaultProviders
	TLS            TLSConfig  // TLS policy: MTA-STS, DANE, configured policies (tlspolicy.go)
}

// Route sends mail for one recipient domain through a relay instead of
// its MX hosts. It is delivery's own type so that delivery does not depend
// on the configuration package; the server converts config.Route to it.
type Route struct {
	Domain   string // recipient domain; "*" is the smarthost
	Host     string // host:port of the relay
	Username string // AUTH user; empty: no AUTH
	Password string
	// TLS: "opportunistic" (default; also "may"), "required" (also
	// "verify"), "encrypt" (TLS without a certificate check), "none".
	TLS string
}

// Deliverer opens connections to destinations.
type Deliverer struct {
	cfg    Config
	res    *Resolver
	routes atomic.Pointer[map[string]Route] // by domain, "*" the smarthost; replaced by SetRoutes
	prov   *providerMap
	hosts  *hostMap

	mu      sync.Mutex
	noTLSTo map[netip.Addr]time.Time // hosts whose TLS handshake failed lately
}

// New returns a Deliverer using res for DNS.
func New(cfg Config, res *Resolver) *Deliverer {
	provs := cfg.Providers
	if provs == nil {
		provs = DefaultProviders
	}
	d := &Deliverer{cfg: cfg, res: res, noTLSTo: map[netip.Addr]time.Time{},
		prov: &providerMap{rules: provs, byDom: map[string]string{}}, hosts: &hostMap{byDom: map[string][]string{}}}
	d.SetRoutes(cfg.Routes)
	return d
}

// SetRoutes replaces the relay routes (a configuration reload); connections
// opened from now on follow them.
func (d *Deliverer) SetRoutes(routes []Route) {
	m := make(map[string]Route, len(routes))
	for _, r := range routes {
		m[r.Domain] = r
	}
	d.routes.Store(&m)
}

func (d *Deliverer) route(domain string) (Route, bool) {
	routes := *d.routes.Load()
	if r, ok := routes[domain]; ok {
		return r, true
	}
	r, ok := routes["*"]
	return r, ok
}

// Destination is the key under which deliveries share connections and
// limits: the relay for routed domains; the provider ("provider:google")
// once a domain's MX hosts are known to be a provider's; else the domain.
func (d *Deliverer) Destination(domain string) string {
	if r, ok := d.route(domain); ok {
		return "relay:" + r.Host
	}
	if p := d.prov.lookup(domain); p != "" {
		return "provider:" + p
	}
	return domain
}

// Provider is the provider hosting domain, if known.
func (d *Deliverer) Provider(domain string) string { return d.prov.lookup(domain) }

// Failure says why a connection or a recipient did not go through.
//
// Class is set for local failures (DNS, connection, TLS, a refused relay
// login); for other replies it is empty and the caller classifies Reply.
type Failure struct {
	Class     classify.Class
	Phase     string
	Reply     smtpproto.Reply // zero when there was no reply
	Err       string          // local error text when there was no reply
	MX, IP    string
	Permanent bool
	TLS       TLSInfo // the TLS policy and certificate check, when TLS was involved
	loop      bool    // the host is this server
	// Hosts, for a failed Dial, are the hosts that were tried when every
	// one of them failed at the host level (connect, greeting, EHLO, TLS,
	// relay login): the failure is theirs, and other domains that would use
	// only these hosts share it. Empty when the failure belongs to the
	// domain (its DNS) or to nothing shared.
	Hosts []string
}

func (f *Failure) Error() string {
	if f.Reply.Code != 0 {
		return fmt.Sprintf("%s: %s", f.Phase, f.Reply)
	}
	return fmt.Sprintf("%s: %s", f.Phase, f.Err)
}

// Conn is an open SMTP session to one host, reusable for several messages.
type Conn struct {
	client *smtpclient.Client
	Dest   string
	MX     string
	IP     string
	Source string // the local address, when a source pool chose it
	TLS    bool
	// TLSInfo is the session's TLS version, cipher, policy and
	// certificate check, recorded with every attempt on the connection.
	TLSInfo TLSInfo
	Sent    int
	// tlsNote says why a host that offers STARTTLS got the mail in
	// cleartext; it goes into every result's Err.
	tlsNote string
}

// Close ends the session politely.
func (c *Conn) Close() { c.client.Quit() }

// Usable reports whether another message may be sent on c.
func (c *Conn) Usable() bool { return !c.client.Broken() }

type target struct {
	host     string
	port     int
	implicit bool
	pol      hostPolicy
}

// Dial connects to the destination of domain, trying each host in turn.
// The session it returns lives until ctx ends: then any command in
// progress fails at once.
func (d *Deliverer) Dial(ctx context.Context, domain string) (*Conn, *Failure) {
	rt, routed := d.route(domain)
	var targets []target
	if routed {
		host, port, _ := net.SplitHostPort(rt.Host)
		p, _ := strconv.Atoi(port)
		targets = []target{{host: host, port: p, pol: routePolicy(rt.TLS, host)}}
	} else {
		mxs, err := d.res.LookupMX(ctx, domain)
		if err != nil {
			return nil, dnsFailure(err)
		}
		d.prov.learn(domain, mxs)
		var self string
		if mxs, self = d.withoutSelf(mxs); len(mxs) == 0 {
			return nil, &Failure{Class: classify.DNSError, Phase: "dns", MX: self, Permanent: true, loop: true,
				Err: fmt.Sprintf("mail for %s loops back to myself: its best MX host %s is this server (RFC 5321 §5.1)", domain, self)}
		}
		d.hosts.learn(domain, mxs)
		for _, mx := range mxs {
			targets = append(targets, target{host: mx.Name, port: d.cfg.Port, implicit: mx.Implicit})
		}
	}
	var plan *domainPlan
	if !routed {
		plan = d.planTLS(ctx, domain)
	}
	var last *Failure
	hostLevel := true // every target failed after its address was known
	var tried []string
	for _, t := range targets {
		if plan != nil {
			pol, f := d.forHost(ctx, plan, t.host)
			if f != nil {
				last = f
				hostLevel = false // the domain's policy refused the host
				continue
			}
			t.pol = pol
		}
		ips, err := d.res.LookupIP(ctx, t.host)
		if err != nil {
			last = dnsFailure(err)
			last.MX = t.host
			var de *DNSError
			if t.implicit && errors.As(err, &de) && de.NoAddress {
				last.Permanent = true // no MX and no address: nowhere to deliver
			}
			hostLevel = false
			continue
		}
		tried = append(tried, t.host)
		for _, ip := range ips {
			c, f := d.dialHost(ctx, t, ip, rt, routed)
			if f == nil {
				c.Dest = d.Destination(domain)
				return c, nil
			}
			if f.loop {
				// This host is us: it and every host after it are out
				// (RFC 5321 §5.1). A better host that failed decides.
				if last != nil {
					return nil, last
				}
				f.Err = fmt.Sprintf("mail for %s loops back to myself: %s", domain, f.Err)
				return nil, f
			}
			if f.Class == classify.TLSPolicy {
				// MTA-STS, DANE and tls_policy belong to this domain: a
				// domain without them could still use the host.
				hostLevel = false
			}
			last = f
		}
	}
	if last == nil {
		last = &Failure{Class: classify.DNSError, Phase: "connect", Err: "no host to connect to"}
		hostLevel = false
	}
	if hostLevel {
		last.Hosts = tried
	}
	return nil, last
}

// isSelf reports whether name is this server's hostname. Names without a
// dot and "localhost..." are never taken for us: misconfigured receivers
// greet with them.
func (d *Deliverer) isSelf(name string) bool {
	name = strings.TrimSuffix(name, ".")
	own := d.cfg.Hostname
	return name != "" && strings.Contains(own, ".") && !strings.HasPrefix(strings.ToLower(own), "localhost") &&
		strings.EqualFold(name, own)
}

// withoutSelf drops this server and every host not preferred over it from
// the MX list (RFC 5321 §5.1); self names the host that was us, if any.
func (d *Deliverer) withoutSelf(mxs []MXHost) (kept []MXHost, self string) {
	for _, mx := range mxs { // sorted by preference: the first match is the best
		if d.isSelf(mx.Name) {
			return slices.DeleteFunc(slices.Clone(mxs), func(h MXHost) bool { return h.Pref >= mx.Pref }), mx.Name
		}
	}
	return mxs, ""
}

// Hosts are the hosts a delivery to domain would try, as last learned:
// the route's relay, or the domain's MX hosts from its last lookup; nil
// when not known yet.
func (d *Deliverer) Hosts(domain string) []string {
	if r, ok := d.route(domain); ok {
		host, _, _ := net.SplitHostPort(r.Host)
		return []string{host}
	}
	return d.hosts.lookup(domain)
}

func dnsFailure(err error) *Failure {
	f := &Failure{Class: classify.DNSError, Phase: "dns", Err: err.Error()}
	var de *DNSError
	if errors.As(err, &de) {
		f.Permanent = de.Permanent
	}
	return f
}

// dialHost opens a session with one address: greeting, EHLO, STARTTLS
// when offered (falling back to cleartext once if the handshake fails and
// the host's policy does not require TLS), AUTH for relays with
// credentials.
func (d *Deliverer) dialHost(ctx context.Context, t target, ip netip.Addr, rt Route, routed bool) (*Conn, *Failure) {
	hp := t.pol
	if hp.level == "" {
		hp = hostPolicy{level: PolicyMay, name: "may"}
	}
	// Only a policy that does not insist on TLS may skip it after a
	// recent failure, or fall back to cleartext.
	optional := hp.level == PolicyMay || !hp.enforce
	tryTLS := hp.level != PolicyNone && !(optional && d.recentTLSFailure(ip))
	note := "sent without TLS: STARTTLS failed with this host in the last hour"
	for {
		c, f, tlsFailed := d.session(ctx, t, ip, hp, tryTLS)
		if f == nil {
			if _, offered := c.client.Extension("STARTTLS"); offered && !c.TLS && !tryTLS && hp.level != PolicyNone {
				c.tlsNote = note
				c.TLSInfo = TLSInfo{Policy: hp.name, Result: "no TLS: " + strings.TrimPrefix(note, "sent without TLS: ")}
			}
			if routed && rt.Username != "" {
				if err := c.client.Auth(rt.Username, rt.Password); err != nil {
					c.client.Close()
					// Our credentials were refused: a configuration problem
					// to fix, never a reason to bounce the mail (like
					// Postfix, defer it with the relay's reply).
					f := failureFrom(err, "auth", t.host, ip)
					f.Class, f.Permanent = classify.Deferred, false
					return nil, f
				}
			}
			return c, nil
		}
		if tlsFailed && optional && tryTLS {
			d.markTLSFailure(ip)
			tryTLS = false
			note = "sent without TLS: STARTTLS failed: " + f.Err
			continue // once more, in cleartext
		}
		return nil, f
	}
}

func (d *Deliverer) session(ctx context.Context, t target, ip netip.Addr, hp hostPolicy, tryTLS bool) (*Conn, *Failure, bool) {
	addr := net.JoinHostPort(ip.String(), strconv.Itoa(t.port))
	src := sourceOf(ctx)
	local, ok := src.localAddr(ip)
	if !ok {
		return nil, &Failure{Class: classify.ConnectionError, Phase: "connect", MX: t.host, IP: ip.String(),
			Err: fmt.Sprintf("source address %s cannot reach %s (another address family)", src.IP, ip)}, false
	}
	dialer := net.Dialer{Timeout: d.cfg.ConnectTimeout}
	if local != nil {
		dialer.LocalAddr = local // never a typed nil in the interface
	}
	nc, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, &Failure{Class: classify.ConnectionError, Phase: "connect", Err: err.Error(), MX: t.host, IP: ip.String()}, false
	}
	sendingIP := "" // our side of the connection, for TLS reports
	if la, ok := nc.LocalAddr().(*net.TCPAddr); ok {
		sendingIP = la.IP.String()
	}
	cl, err := smtpclient.New(nc, smtpclient.Options{
		LocalName:       src.name(d.cfg.Hostname),
		CommandTimeout:  d.cfg.CommandTimeout,
		DataTimeout:     d.cfg.DataTimeout,
		GreetingTimeout: d.cfg.CommandTimeout,
		Context:         ctx, // the session ends with ctx (posthorn stopping)
	})
	if err != nil {
		nc.Close()
		return nil, failureFrom(err, "connect", t.host, ip), false
	}
	if g := strings.Fields(cl.Greeting().Text); len(g) > 0 && d.isSelf(g[0]) {
		cl.Quit()
		return nil, &Failure{Class: classify.DNSError, Phase: "connect", MX: t.host, IP: ip.String(), Permanent: true, loop: true,
			Err: fmt.Sprintf("%s (%s) greets as %s, this server's own name", t.host, ip, g[0])}, false
	}
	if err := cl.Hello(); err != nil {
		cl.Close()
		return nil, failureFrom(err, "ehlo", t.host, ip), false
	}
	c := &Conn{client: cl, MX: t.host, IP: ip.String(), TLSInfo: TLSInfo{Policy: hp.name, Result: "no TLS"}}
	if src.IP.IsValid() {
		c.Source = src.IP.String()
	}
	_, offered := cl.Extension("STARTTLS")
	if offered && tryTLS {
		cc := &certCheck{}
		if err := cl.StartTLS(d.tlsConfig(t.host, hp, cc)); err != nil {
			cl.Close()
			f := failureFrom(err, "starttls", t.host, ip)
			f.Class = classify.TLSError
			cc.mu.Lock()
			certErr, result := cc.err, cc.result
			cc.mu.Unlock()
			f.TLS = TLSInfo{Policy: hp.name, Result: result}
			if certErr != nil && hp.required() && strings.HasPrefix(result, "failed: ") {
				f.Class = classify.TLSPolicy
				f.Err = fmt.Sprintf("tls_policy: %s: the certificate of %s is not acceptable: %v", hp.name, t.host, certErr)
				d.report(hp.report, false, resultType(hp, certErr), sendingIP, t.host, ip.String(), certErr.Error())
			} else if hp.required() {
				reason, rt := "the handshake failed: "+f.Err, tlsrpt.ValidationFailure
				if f.Reply.Code != 0 {
					// A refused STARTTLS: the policy decides, not the reply
					// rules, so the reply goes into the text.
					reason, rt, f.Reply = "STARTTLS was answered "+f.Reply.String(), tlsrpt.StartTLSNotSupported, smtpproto.Reply{}
				}
				f.Class = classify.TLSPolicy
				f.Err = fmt.Sprintf("tls_policy: %s requires TLS; with %s %s", hp.name, t.host, reason)
				d.report(hp.report, false, rt, sendingIP, t.host, ip.String(), reason)
			}
			return nil, f, true
		}
		st, _ := cl.TLS()
		cc.mu.Lock()
		c.TLS, c.TLSInfo = true, TLSInfo{Version: tls.VersionName(st.Version), Cipher: tls.CipherSuiteName(st.CipherSuite), Policy: hp.name, Result: cc.result}
		certErr := cc.err
		cc.mu.Unlock()
		if certErr != nil && (hp.level == PolicyVerify || hp.level == PolicyDANE) {
			// Only a policy that authenticates counts a certificate it
			// could not check as a failure (MTA-STS testing lands here).
			d.report(hp.report, false, resultType(hp, certErr), sendingIP, t.host, ip.String(), certErr.Error())
		} else {
			d.report(hp.report, true, "", sendingIP, t.host, ip.String(), "")
		}
	} else if hp.level != PolicyNone && hp.level != PolicyMay {
		reason := fmt.Sprintf("%s does not offer STARTTLS", t.host)
		if offered {
			reason = fmt.Sprintf("STARTTLS with %s failed in the last hour", t.host)
		}
		d.report(hp.report, false, tlsrpt.StartTLSNotSupported, sendingIP, t.host, ip.String(), reason)
		if hp.enforce {
			cl.Quit()
			return nil, &Failure{Class: classify.TLSPolicy, Phase: "starttls", MX: t.host, IP: ip.String(),
				Err: fmt.Sprintf("tls_policy: %s requires TLS, but %s", hp.name, reason), TLS: TLSInfo{Policy: hp.name, Result: "no TLS: " + reason}}, false
		}
		c.TLSInfo.Result = "no TLS (not enforced): " + reason
	}
	return c, nil, false
}

func (d *Deliverer) recentTLSFailure(ip netip.Addr) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	until, ok := d.noTLSTo[ip]
	return ok && time.Now().Before(until)
}

func (d *Deliverer) markTLSFailure(ip netip.Addr) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.noTLSTo[ip] = time.Now().Add(time.Hour)
}

// failureFrom turns a client error into a Failure.
func failureFrom(err error, phase, host string, ip netip.Addr) *Failure {
	f := &Failure{Phase: phase, MX: host, IP: ip.String(), Class: classify.ConnectionError, Err: err.Error()}
	var pe *smtpclient.ProtocolError
	if errors.As(err, &pe) {
		f.Class = classify.ProtocolError // garbage instead of a greeting or EHLO reply
	}
	var ce *smtpclient.Error
	if errors.As(err, &ce) {
		if ce.Phase != "" {
			f.Phase = string(ce.Phase)
		}
		if ce.Reply != nil {
			f.Reply = *ce.Reply
			f.Err = ""
			f.Class = "" // replies are classified by the caller, which knows the rules and the attempt
		}
	}
	return f
}

// Result is the outcome for one recipient of a sent message.
// Class is set for local failures only; a reply is left to the caller to
// classify (with its rules and the attempt count).
type Result struct {
	Class classify.Class
	Phase string
	Reply smtpproto.Reply
	Err   string
}

// Message is what Send needs of a message.
type Message struct {
	Sender   string
	Body     []byte
	UTF8     bool
	EightBit bool
}

// Send sends msg to rcpts in one transaction and returns one result per
// recipient. A broken connection shows as results of class
// connection_error and c.Usable() false.
func (c *Conn) Send(msg Message, rcpts []string) []Result {
	res, err := c.client.Send(msg.Sender, rcpts, msg.Body, smtpclient.SendOptions{SMTPUTF8: msg.UTF8, EightBit: msg.EightBit, Size: true})
	c.Sent++
	out := make([]Result, len(rcpts))
	var ce *smtpclient.Error
	errors.As(err, &ce)
	for i := range rcpts {
		out[i] = resultFor(i, res, err, ce)
		if out[i].Err == "" && c.tlsNote != "" {
			out[i].Err = c.tlsNote
		}
	}
	return out
}

// PossibleDuplicate starts the Err of a result whose message was sent in
// full, final dot included, without a reply saying what became of it: the
// receiver may have it, and the retry may deliver it a second time.
const PossibleDuplicate = "possible duplicate"

func resultFor(i int, res *smtpclient.Result, err error, ce *smtpclient.Error) Result {
	if ce != nil && ce.Reply != nil && ce.Err != nil {
		// A reply out of sequence: no reply of this dialogue can be matched
		// to its command (the 250 meant for RCPT may have come as the
		// answer to DATA), so none of them decides anything.
		return Result{Class: classify.ProtocolError, Phase: string(ce.Phase), Err: errText(err, ce)}
	}
	if res != nil {
		if res.Mail.Code != 0 && !res.Mail.Positive() {
			return replyResult("mail", res.Mail)
		}
		if i < len(res.Rcpt) && res.Rcpt[i].Code != 0 && !res.Rcpt[i].Positive() {
			return replyResult("rcpt", res.Rcpt[i])
		}
		if res.Data.Code != 0 && (res.Data.Code/100 != 3 || err == nil) {
			// A final reply; a 354 only means the body was invited, and
			// the error below says what became of it.
			return replyResult("data", res.Data)
		}
		// A 354 followed by an error: the error is the result.
	}
	if err == nil {
		return Result{Class: classify.ProtocolError, Phase: "data", Err: "no reply recorded"}
	}
	phase := "data"
	if ce != nil {
		phase = string(ce.Phase)
		if ce.Reply != nil {
			return replyResult(phase, *ce.Reply)
		}
	}
	cls := classify.ConnectionError
	var pe *smtpclient.ProtocolError
	if errors.As(err, &pe) || strings.Contains(err.Error(), "protocol") {
		cls = classify.ProtocolError
	}
	return Result{Class: cls, Phase: phase, Err: errText(err, ce)}
}

// errText is err's text, flagged when the message may have arrived.
func errText(err error, ce *smtpclient.Error) string {
	if ce != nil && ce.MaybeDelivered {
		return PossibleDuplicate + " (the message was sent but no reply came; the receiver may have it): " + err.Error()
	}
	return err.Error()
}

func replyResult(phase string, r smtpproto.Reply) Result {
	return Result{Phase: phase, Reply: r} // the caller classifies replies
}
