package testkit

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// CodeDrop as a Reply's Code makes the fake MX close the connection
// instead of sending that reply (replies already due are sent first).
const CodeDrop = -1

// Reply is one SMTP reply. Text may hold several lines separated by "\n"
// (sent as a multi-line reply) and should start with the enhanced status
// code, e.g. Reply{Code: 550, Text: "5.1.1 no such user"}. Close makes the
// server close the connection after sending it. The zero Reply means "the
// default reply" wherever a script field holds one.
//
// Raw, when set, is written as is instead of Code and Text (no line ending
// is added): a garbage line, a reply cut short, or several replies where
// one is due (an unsolicited extra reply). Code still decides what the
// server itself makes of its answer (a 2xx to RCPT accepts the recipient).
type Reply struct {
	Code  int
	Text  string
	Close bool
	Raw   string
}

func (r Reply) ok() bool { return r.Code >= 200 && r.Code < 300 }

func (r Reply) or(def Reply) Reply {
	if r.Code == 0 && r.Raw == "" {
		return def
	}
	return r
}

// Stalls are waits before the server replies in each phase, to simulate a
// slow server (the client's timeouts). Close/Stop cut them short.
type Stalls struct {
	Greeting, Ehlo, Mail, Rcpt, Data, EndOfData, Quit time.Duration
}

// RateLimit caps accepted messages per sliding Window across all
// connections. Messages 0 means no limit.
type RateLimit struct {
	Messages int
	Window   time.Duration
	// Reply is sent instead of the normal one once the limit is reached;
	// default 421 4.7.28 with Close.
	Reply Reply
	// AtEndOfData moves the check from MAIL FROM (the default) to the end
	// of DATA. Either way transactions in progress hold their slot, so no
	// more than Messages are accepted per Window even under concurrency.
	AtEndOfData bool
}

// Script is the behaviour of a fake MX. The zero Script accepts everything
// with 250. Funcs are called concurrently from all connections.
type Script struct {
	Hostname string // greeting and EHLO name; default "mx-<ip>.testkit"

	Greeting Reply // default 220 <Hostname> ESMTP testkit
	Ehlo     Reply // if set, sent instead of the generated EHLO reply
	Helo     Reply // if set, sent instead of 250 <Hostname>

	Mail func(from string) Reply // default 250 2.1.0
	// RcptReplies (keys compared case-insensitively) is looked at first,
	// then Rcpt; default 250 2.1.5.
	RcptReplies map[string]Reply
	Rcpt        func(rcpt string) Reply
	DataCmd     Reply // reply to DATA; default 354
	// End-of-data reply: DataReplies are used one per attempt, in order;
	// once used up, Data is called (attempt counts end-of-data phases since
	// the script was set, from 1); default 250 2.0.0.
	DataReplies []Reply
	Data        func(m *Message, attempt int) Reply
	// DropDataAfter > 0 closes the connection once that many bytes of
	// message data have been read (mid-DATA), before the final dot.
	DropDataAfter int
	// MaxRcptsPerTxn is how many recipients one transaction may have; the
	// RCPTs after that get 452 4.5.3 (RFC 5321 §4.5.3.1.10). Default 1000.
	MaxRcptsPerTxn int

	Stall Stalls

	StartTLS    bool              // advertise and accept STARTTLS
	BreakTLS    bool              // after 220 to STARTTLS, send garbage instead of a TLS handshake and hang up
	RequireTLS  bool              // MAIL before STARTTLS gets 530
	TLSCert     *tls.Certificate  // default: the server's self-signed cert
	Auth        map[string]string // user → password; non-empty advertises AUTH PLAIN LOGIN
	RequireAuth bool              // MAIL before AUTH gets 530
	// OmitExtensions removes keywords (e.g. "PIPELINING", "SMTPUTF8") from
	// the EHLO reply; the server still accepts what it omits.
	OmitExtensions []string

	RateLimit     RateLimit
	MaxConns      int   // more simultaneous connections get MaxConnsReply at greeting
	MaxConnsReply Reply // default 421 4.7.0 with Close

	MaxSize       int           // message size limit, advertised in SIZE; default 10 MiB
	MaxLineLength int           // command and data line limit incl. CRLF; default 4096
	IdleTimeout   time.Duration // per-line read timeout; default 30s
	DiscardData   bool          // record messages without their Data (benchmarks)
}

const (
	defaultMaxSize = 10 << 20
	defaultMaxRcpt = 1000
	defaultMaxLine = 4096
	defaultIdle    = 30 * time.Second
	maxCommandLog  = 100000
)

// Message is one end-of-data attempt.
type Message struct {
	From       string   // envelope sender (without <>)
	To         []string // recipients that got a 2xx reply, in order
	Data       []byte   // as received after dot-unstuffing, with CRLFs, without the final dot
	MailParams []string // ESMTP parameters of MAIL FROM, e.g. "SMTPUTF8"
	Helo       string   // EHLO/HELO argument
	Remote     string   // the client's IP address (the sender's source address)
	TLS        bool
	AuthUser   string // authenticated identity, if any
	Conn       int    // connection number (1-based, per server)
	Txn        int    // transaction number within the connection (1-based)
	Attempt    int    // end-of-data attempt number passed to Script.Data
	Reply      Reply  // the end-of-data reply sent
	BareLF     bool   // some data line ended in a bare LF
	Time       time.Time
}

// Command is one command line received (without CRLF; AUTH exchanges and
// message data are not logged).
type Command struct {
	Conn int
	Line string
	Time time.Time
}

// MXServer is a scriptable fake MX SMTP server on one ip:port. All methods
// are safe for concurrent use.
type MXServer struct {
	ip   string
	port int
	cert tls.Certificate
	pool *x509.CertPool

	mu       sync.Mutex
	script   Script
	attempts int // end-of-data attempts since SetScript
	ln       net.Listener
	done     chan struct{}
	conns    map[net.Conn]struct{}
	wg       sync.WaitGroup
	closed   bool
	changed  chan struct{}

	connSeq, connTotal, active, maxActive int
	admitted, txns, rsets                 int
	msgs, tried                           []Message
	cmds                                  []Command
	rateTimes                             []time.Time
	rateHeld                              int
}

// NewMX starts a fake MX listening on ip:port (port 0 picks one).
func NewMX(ip string, port int, script Script) (*MXServer, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
	if err != nil {
		return nil, fmt.Errorf("testkit: mx listen: %w", err)
	}
	m := &MXServer{
		ip:      ip,
		port:    ln.Addr().(*net.TCPAddr).Port,
		script:  script,
		conns:   map[net.Conn]struct{}{},
		changed: make(chan struct{}),
	}
	m.cert, m.pool, err = NewCert(m.defaultHost(), "localhost", ip)
	if err != nil {
		ln.Close()
		return nil, err
	}
	m.serveOn(ln)
	return m, nil
}

// StartMX is NewMX failing t on error, closed by t.Cleanup.
func StartMX(t testing.TB, ip string, port int, script Script) *MXServer {
	t.Helper()
	m, err := NewMX(ip, port, script)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// NewMXGroup starts one fake MX per ip, all on the same port (chosen free
// on every ip, retrying on collisions), each with its own copy of script.
func NewMXGroup(script Script, ips ...string) ([]*MXServer, error) {
	if len(ips) == 0 {
		return nil, errors.New("testkit: NewMXGroup without ips")
	}
	var lastErr error
	for try := 0; try < 20; try++ {
		first, err := NewMX(ips[0], 0, script)
		if err != nil {
			return nil, err
		}
		group := []*MXServer{first}
		for _, ip := range ips[1:] {
			m, err := NewMX(ip, first.Port(), script)
			if err != nil {
				lastErr = err
				break
			}
			group = append(group, m)
		}
		if len(group) == len(ips) {
			return group, nil
		}
		for _, m := range group {
			m.Close()
		}
	}
	return nil, lastErr
}

// StartMXGroup is NewMXGroup failing t on error, closed by t.Cleanup.
func StartMXGroup(t testing.TB, script Script, ips ...string) []*MXServer {
	t.Helper()
	group, err := NewMXGroup(script, ips...)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range group {
		t.Cleanup(m.Close)
	}
	return group
}

func (m *MXServer) defaultHost() string {
	return "mx-" + strings.NewReplacer(".", "-", ":", "-").Replace(m.ip) + ".testkit"
}

// IP is the address the server listens on.
func (m *MXServer) IP() string { return m.ip }

// Port is the TCP port the server listens on.
func (m *MXServer) Port() int { return m.port }

// Addr is "ip:port".
func (m *MXServer) Addr() string { return net.JoinHostPort(m.ip, strconv.Itoa(m.port)) }

// CertPool trusts the server's default certificate (names: the default
// hostname, "localhost" and the IP).
func (m *MXServer) CertPool() *x509.CertPool { return m.pool }

// Certificate is the server's default self-signed certificate.
func (m *MXServer) Certificate() tls.Certificate { return m.cert }

// SetScript replaces the behaviour for all later commands, also on open
// connections, and restarts the count of end-of-data attempts.
func (m *MXServer) SetScript(s Script) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.script = s
	m.attempts = 0
}

// Script returns the current script.
func (m *MXServer) Script() Script {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.script
}

func (m *MXServer) serveOn(ln net.Listener) {
	m.ln = ln
	m.done = make(chan struct{})
	m.wg.Add(1)
	go m.acceptLoop(ln, m.done)
}

func (m *MXServer) acceptLoop(ln net.Listener, done chan struct{}) {
	defer m.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			select {
			case <-done:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
		m.mu.Lock()
		if m.done != done {
			m.mu.Unlock()
			c.Close()
			continue
		}
		m.connSeq++
		m.connTotal++
		id := m.connSeq
		m.active++
		m.maxActive = max(m.maxActive, m.active)
		m.conns[c] = struct{}{}
		m.wg.Add(1)
		m.notify()
		m.mu.Unlock()
		go m.handle(c, id, done)
	}
}

func (m *MXServer) handle(c net.Conn, id int, done chan struct{}) {
	defer m.wg.Done()
	s := &session{m: m, id: id, done: done}
	s.setConn(c)
	s.run()
	s.conn.Close()
	m.mu.Lock()
	delete(m.conns, c)
	m.active--
	m.notify()
	m.mu.Unlock()
}

// Stop closes the listener (connecting is then refused) and all open
// connections, keeping the script and the records. Start listens again.
func (m *MXServer) Stop() {
	m.mu.Lock()
	if m.ln == nil {
		m.mu.Unlock()
		return
	}
	m.ln.Close()
	m.ln = nil
	close(m.done)
	for c := range m.conns {
		c.Close()
	}
	m.mu.Unlock()
	m.wg.Wait()
}

// Start listens again on the same ip:port after Stop.
func (m *MXServer) Start() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errors.New("testkit: mx closed")
	}
	if m.ln != nil {
		return nil
	}
	ln, err := net.Listen("tcp", m.Addr())
	if err != nil {
		return fmt.Errorf("testkit: mx listen: %w", err)
	}
	m.serveOn(ln)
	return nil
}

// Restart is Stop then Start: open connections are cut.
func (m *MXServer) Restart() error {
	m.Stop()
	return m.Start()
}

// Close stops the server for good. It is idempotent.
func (m *MXServer) Close() {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	m.Stop()
}

// notify wakes waiters; m.mu must be held.
func (m *MXServer) notify() {
	close(m.changed)
	m.changed = make(chan struct{})
}

// Wait blocks until cond returns true, re-checking after every recorded
// event (connection, command, message), or until ctx ends.
func (m *MXServer) Wait(ctx context.Context, cond func() bool) error {
	for {
		m.mu.Lock()
		ch := m.changed
		m.mu.Unlock()
		if cond() {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// WaitMessages waits until at least n messages were accepted and returns
// all accepted so far.
func (m *MXServer) WaitMessages(ctx context.Context, n int) ([]Message, error) {
	err := m.Wait(ctx, func() bool { return m.Accepted() >= n })
	if err != nil {
		return m.Messages(), fmt.Errorf("testkit: %s: %d of %d messages: %w", m.Addr(), m.Accepted(), n, err)
	}
	return m.Messages(), nil
}

// Messages returns the accepted messages (2xx at end of data), in order.
func (m *MXServer) Messages() []Message {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Message(nil), m.msgs...)
}

// Accepted is len(Messages()), cheaper.
func (m *MXServer) Accepted() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.msgs)
}

// Attempts returns every message that reached the end of data, accepted
// or not, with the reply it got.
func (m *MXServer) Attempts() []Message {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Message(nil), m.tried...)
}

// Commands returns the command lines received (the first 100000).
func (m *MXServer) Commands() []Command {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Command(nil), m.cmds...)
}

func (m *MXServer) counter(p *int) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return *p
}

// Connections counts TCP connections accepted, including those turned
// away by MaxConns.
func (m *MXServer) Connections() int { return m.counter(&m.connTotal) }

// ActiveConnections counts currently open connections.
func (m *MXServer) ActiveConnections() int { return m.counter(&m.active) }

// MaxActiveConnections is the most connections open at once so far
// (including those being turned away by MaxConns).
func (m *MXServer) MaxActiveConnections() int { return m.counter(&m.maxActive) }

// Transactions counts MAIL FROM commands answered 2xx.
func (m *MXServer) Transactions() int { return m.counter(&m.txns) }

// Resets counts RSET commands.
func (m *MXServer) Resets() int { return m.counter(&m.rsets) }

// ClearRecords forgets messages, commands and counters (not the open
// connections, connection numbering nor the rate limit's memory).
func (m *MXServer) ClearRecords() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.msgs, m.tried, m.cmds = nil, nil, nil
	m.connTotal, m.maxActive, m.txns, m.rsets = 0, m.active, 0, 0
	m.notify()
}

func (m *MXServer) logCommand(id int, line string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.cmds) < maxCommandLog {
		m.cmds = append(m.cmds, Command{Conn: id, Line: line, Time: time.Now()})
	}
	m.notify()
}

// rateTake reserves a slot under rl, false when the limit is reached.
func (m *MXServer) rateTake(rl RateLimit) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	cut := time.Now().Add(-rl.Window)
	i := 0
	for i < len(m.rateTimes) && !m.rateTimes[i].After(cut) {
		i++
	}
	m.rateTimes = m.rateTimes[i:]
	if len(m.rateTimes)+m.rateHeld >= rl.Messages {
		return false
	}
	m.rateHeld++
	return true
}

// rateRelease gives back a slot, counting it as a message if accepted.
func (m *MXServer) rateRelease(accepted bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rateHeld--
	if accepted {
		m.rateTimes = append(m.rateTimes, time.Now())
	}
}
