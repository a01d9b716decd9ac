package smtpclient

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/posthorn/posthorn/internal/smtpproto"
)

// Defaults for the zero values in Options. The timeouts follow RFC 5321
// §4.5.3.2.
const (
	DefaultLocalName       = "localhost"
	DefaultCommandTimeout  = 5 * time.Minute
	DefaultDataTimeout     = 10 * time.Minute
	DefaultGreetingTimeout = 5 * time.Minute

	// maxQuitTimeout bounds the wait for the QUIT reply, which is only a
	// courtesy.
	maxQuitTimeout = 10 * time.Second
	// writeBufferSize is the size of the buffer commands and the message
	// body are written through.
	writeBufferSize = 32 << 10
)

// Options configure a Client. Zero values select the defaults above.
type Options struct {
	// LocalName is the name sent with EHLO/HELO.
	LocalName string
	// CommandTimeout bounds writing each command (or each pipelined
	// group of commands) and waiting for each reply.
	CommandTimeout time.Duration
	// DataTimeout bounds writing the whole message body, and separately
	// the wait for the reply that follows it.
	DataTimeout time.Duration
	// GreetingTimeout bounds the wait for the server's greeting.
	GreetingTimeout time.Duration
	// Context, when set, bounds the whole session: once it ends, the
	// connection is closed, a command in progress fails at once (instead
	// of waiting out its timeout) and the Client is Broken.
	Context context.Context
}

func (o Options) withDefaults() Options {
	if o.LocalName == "" {
		o.LocalName = DefaultLocalName
	}
	if o.CommandTimeout <= 0 {
		o.CommandTimeout = DefaultCommandTimeout
	}
	if o.DataTimeout <= 0 {
		o.DataTimeout = DefaultDataTimeout
	}
	if o.GreetingTimeout <= 0 {
		o.GreetingTimeout = DefaultGreetingTimeout
	}
	return o
}

// Client is an SMTP client session on one connection. It is not safe for
// concurrent use.
type Client struct {
	conn net.Conn
	br   *bufio.Reader
	bw   *bufio.Writer
	opts Options

	greeting smtpproto.Reply
	ext      map[string]string // EHLO keywords, upper case → parameters
	// Extensions Send consults, cached from ext.
	pipelining, size, eightBitMIME, smtpUTF8 bool

	helloDone bool
	inTx      bool // a MAIL command succeeded and the transaction is not over
	broken    bool
	closed    bool
	tlsState  *tls.ConnectionState

	lines   []string // scratch for readReply
	scratch [24]byte // scratch for formatting numbers

	ctx     context.Context // Options.Context, or nil
	unwatch func() bool     // stops closing the connection when ctx ends
}

// New starts an SMTP session on conn: it reads the server's greeting. A
// reply other than 2xx yields an *Error with PhaseConnect and the Reply
// (after a best-effort QUIT, unless the reply was 421). On any error conn
// is closed; on success the Client owns conn.
func New(conn net.Conn, opts Options) (*Client, error) {
	if conn == nil {
		return nil, localError(PhaseConnect, fmt.Errorf("%w: nil connection", ErrInvalidArgument))
	}
	opts = opts.withDefaults()
	if !validParam(opts.LocalName) {
		conn.Close()
		return nil, localError(PhaseConnect, fmt.Errorf("%w: local name %q", ErrInvalidArgument, opts.LocalName))
	}
	c := &Client{
		conn:  conn,
		br:    bufio.NewReaderSize(conn, MaxReplyLineLength),
		bw:    bufio.NewWriterSize(conn, writeBufferSize),
		opts:  opts,
		lines: make([]string, 0, 16),
	}
	if ctx := opts.Context; ctx != nil {
		// Closing the raw connection unblocks any read or write, TLS or
		// not; deadlines set per command cannot undo it.
		c.ctx = ctx
		c.unwatch = context.AfterFunc(ctx, func() { conn.Close() })
	}
	r, err := c.read(PhaseConnect, opts.GreetingTimeout)
	if err != nil {
		c.Close()
		return nil, err
	}
	if r.Code/100 != 2 {
		c.Quit()
		return nil, replyError(PhaseConnect, r)
	}
	c.greeting = r
	return c, nil
}

// Greeting returns the server's greeting reply.
func (c *Client) Greeting() smtpproto.Reply { return c.greeting }

// Broken reports whether the connection is unusable: after an I/O error,
// a protocol error, a 421 reply or Close.
func (c *Client) Broken() bool { return c.broken }

// Hello sends EHLO and records the advertised extensions. If the server
// answers EHLO with 5xx it falls back to HELO, and no extensions are
// assumed. Send, StartTLS and Auth call Hello themselves when it has not
// been called yet.
func (c *Client) Hello() error {
	if err := c.usable(PhaseEhlo); err != nil {
		return err
	}
	c.setExtensions("")
	r, err := c.cmd(PhaseEhlo, "EHLO ", c.opts.LocalName)
	if err != nil {
		return err
	}
	switch {
	case r.Code/100 == 2:
		c.setExtensions(r.Text)
	case r.Code/100 == 3:
		return c.outOfSequence(PhaseEhlo, r)
	case r.Permanent():
		if r, err = c.cmd(PhaseEhlo, "HELO ", c.opts.LocalName); err != nil {
			return err
		}
		if r.Code/100 == 3 {
			return c.outOfSequence(PhaseEhlo, r)
		}
		if r.Code/100 != 2 {
			return replyError(PhaseEhlo, r)
		}
	default:
		return replyError(PhaseEhlo, r)
	}
	c.helloDone = true
	c.inTx = false
	return nil
}

// setExtensions parses the text of an EHLO reply; the first line is the
// server's greeting, each further line a keyword with optional parameters.
// An empty text clears the extensions.
func (c *Client) setExtensions(text string) {
	c.ext = nil
	if text != "" {
		c.ext = make(map[string]string, 16)
		lines := strings.Split(text, "\n")
		for _, line := range lines[1:] {
			kw, param, _ := strings.Cut(strings.TrimSpace(line), " ")
			kw = strings.ToUpper(kw)
			if rest, ok := strings.CutPrefix(kw, "AUTH="); ok {
				// Pre-RFC 4954 syntax: "AUTH=LOGIN PLAIN".
				if _, seen := c.ext["AUTH"]; seen {
					continue
				}
				kw, param = "AUTH", strings.TrimSpace(rest+" "+param)
			}
			if kw != "" {
				c.ext[kw] = strings.TrimSpace(param)
			}
		}
	}
	_, c.pipelining = c.ext["PIPELINING"]
	_, c.size = c.ext["SIZE"]
	_, c.eightBitMIME = c.ext["8BITMIME"]
	_, c.smtpUTF8 = c.ext["SMTPUTF8"]
}

// Extension reports whether the server advertised the EHLO keyword name
// (compared case-insensitively) and returns its parameters, e.g.
// Extension("SIZE") → "35882577", true.
func (c *Client) Extension(name string) (param string, ok bool) {
	if c.ext == nil {
		return "", false
	}
	param, ok = c.ext[strings.ToUpper(name)]
	return param, ok
}

// StartTLS issues STARTTLS, runs the TLS handshake with cfg (which must
// set ServerName or InsecureSkipVerify) and then sends EHLO again, as RFC
// 3207 requires. A refusal by the server leaves the plaintext session
// usable; a failed handshake makes the Client Broken.
func (c *Client) StartTLS(cfg *tls.Config) error {
	if err := c.usable(PhaseStartTLS); err != nil {
		return err
	}
	if cfg == nil {
		return localError(PhaseStartTLS, fmt.Errorf("%w: nil tls.Config", ErrInvalidArgument))
	}
	if c.tlsState != nil {
		return localError(PhaseStartTLS, fmt.Errorf("%w: TLS is already active", ErrInvalidArgument))
	}
	if err := c.ensureHello(); err != nil {
		return err
	}
	if _, ok := c.ext["STARTTLS"]; !ok {
		return localError(PhaseStartTLS, fmt.Errorf("%w: STARTTLS", ErrNotSupported))
	}
	r, err := c.cmd(PhaseStartTLS, "STARTTLS", "")
	if err != nil {
		return err
	}
	if r.Code/100 == 3 {
		return c.outOfSequence(PhaseStartTLS, r)
	}
	if r.Code/100 != 2 {
		return replyError(PhaseStartTLS, r)
	}
	if c.br.Buffered() > 0 {
		// Anything the server sent after its 220 would be read as if it
		// came through TLS (CVE-2011-0411 style injection).
		c.broken = true
		return &Error{Phase: PhaseStartTLS, Err: protoErr("data received after the STARTTLS reply", nil), Temporary: true}
	}
	tc := tls.Client(c.conn, cfg)
	_ = c.conn.SetDeadline(time.Now().Add(c.opts.CommandTimeout))
	if err := tc.Handshake(); err != nil {
		c.broken = true
		return &Error{Phase: PhaseStartTLS, Err: err, Temporary: true}
	}
	st := tc.ConnectionState()
	c.conn, c.tlsState = tc, &st
	c.br.Reset(tc)
	c.bw.Reset(tc)
	c.helloDone = false
	return c.Hello()
}

// TLS returns the TLS connection state after a successful StartTLS.
func (c *Client) TLS() (tls.ConnectionState, bool) {
	if c.tlsState == nil {
		return tls.ConnectionState{}, false
	}
	return *c.tlsState, true
}

// Auth authenticates with PLAIN (with an initial response) when the
// server offers it, else with LOGIN. The credentials are sent as the
// server asks for them, so callers should use Auth only over TLS (or to a
// trusted host).
func (c *Client) Auth(username, password string) error {
	if err := c.usable(PhaseAuth); err != nil {
		return err
	}
	if err := c.ensureHello(); err != nil {
		return err
	}
	mechs, ok := c.ext["AUTH"]
	if !ok {
		return localError(PhaseAuth, fmt.Errorf("%w: AUTH", ErrNotSupported))
	}
	var plain, login bool
	for _, m := range strings.Fields(mechs) {
		plain = plain || strings.EqualFold(m, "PLAIN")
		login = login || strings.EqualFold(m, "LOGIN")
	}
	enc := base64.StdEncoding.EncodeToString
	var r smtpproto.Reply
	var err error
	switch {
	case plain:
		r, err = c.cmd(PhaseAuth, "AUTH PLAIN ", enc([]byte("\x00"+username+"\x00"+password)))
	case login:
		r, err = c.cmd(PhaseAuth, "AUTH LOGIN", "")
		for _, s := range [...]string{username, password} {
			if err != nil || r.Code != 334 {
				break
			}
			r, err = c.cmd(PhaseAuth, enc([]byte(s)), "")
		}
	default:
		return localError(PhaseAuth, fmt.Errorf("%w: no usable AUTH mechanism in %q", ErrNotSupported, mechs))
	}
	if err != nil {
		return err
	}
	if r.Code == 334 {
		// The server wants more than the mechanism needs: cancel the
		// exchange (RFC 4954 §4) to keep the session in sync.
		if _, err := c.cmd(PhaseAuth, "*", ""); err != nil {
			return err
		}
		return replyError(PhaseAuth, r)
	}
	if r.Code/100 != 2 {
		return replyError(PhaseAuth, r)
	}
	return nil
}

// Reset sends RSET, aborting any transaction in progress.
func (c *Client) Reset() error {
	if err := c.usable(PhaseRset); err != nil {
		return err
	}
	r, err := c.cmd(PhaseRset, "RSET", "")
	if err != nil {
		return err
	}
	if r.Code/100 == 3 {
		return c.outOfSequence(PhaseRset, r)
	}
	if r.Code/100 != 2 {
		return replyError(PhaseRset, r)
	}
	c.inTx = false
	return nil
}

// Quit sends QUIT and waits briefly for the reply (unless the connection
// is already broken), then closes the connection. The connection is
// closed in all cases; the error, if any, is only informative.
func (c *Client) Quit() error {
	if c.closed {
		return nil
	}
	var qerr error
	if !c.broken {
		timeout := min(c.opts.CommandTimeout, maxQuitTimeout)
		r, err := c.cmdTimeout(PhaseQuit, timeout, "QUIT", "")
		switch {
		case err != nil:
			qerr = err
		case r.Code/100 != 2:
			qerr = replyError(PhaseQuit, r)
		}
	}
	if err := c.Close(); err != nil && qerr == nil {
		qerr = &Error{Phase: PhaseQuit, Err: err, Temporary: true}
	}
	return qerr
}

// Close closes the connection without QUIT. It is safe to call more than
// once.
func (c *Client) Close() error {
	if c.closed {
		return nil
	}
	c.closed, c.broken = true, true
	if c.unwatch != nil {
		c.unwatch()
	}
	return c.conn.Close()
}

// usable returns an error when the Client may not send commands.
func (c *Client) usable(p Phase) error {
	if c.broken {
		return &Error{Phase: p, Err: ErrBroken, Temporary: true}
	}
	if c.ctx != nil && c.ctx.Err() != nil {
		c.broken = true
		return &Error{Phase: p, Err: fmt.Errorf("session aborted: %w", context.Cause(c.ctx)), Temporary: true}
	}
	return nil
}

func (c *Client) ensureHello() error {
	if c.helloDone {
		return nil
	}
	return c.Hello()
}

// cmd writes the command verb+arg, flushes and reads one reply.
func (c *Client) cmd(p Phase, verb, arg string) (smtpproto.Reply, error) {
	return c.cmdTimeout(p, c.opts.CommandTimeout, verb, arg)
}

func (c *Client) cmdTimeout(p Phase, timeout time.Duration, verb, arg string) (smtpproto.Reply, error) {
	_ = c.conn.SetWriteDeadline(time.Now().Add(timeout))
	c.bw.WriteString(verb)
	c.bw.WriteString(arg)
	c.bw.WriteString("\r\n")
	if err := c.bw.Flush(); err != nil {
		return smtpproto.Reply{}, c.ioError(p, err)
	}
	return c.read(p, timeout)
}

// read reads one reply within timeout. I/O and protocol errors, and 421
// replies, make the Client Broken.
func (c *Client) read(p Phase, timeout time.Duration) (smtpproto.Reply, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(timeout))
	r, lines, err := readReply(c.br, c.lines)
	c.lines = lines
	if err != nil {
		return r, c.ioError(p, err)
	}
	if r.Code == 421 {
		c.broken = true
	}
	return r, nil
}

// ioError marks the Client Broken and wraps err.
func (c *Client) ioError(p Phase, err error) *Error {
	c.broken = true
	if c.ctx != nil && c.ctx.Err() != nil {
		err = fmt.Errorf("session aborted: %w (%v)", context.Cause(c.ctx), err)
	}
	return &Error{Phase: p, Err: err, Temporary: true}
}

// validParam reports whether s can be sent as a command parameter: not
// empty, no control characters, spaces or angle brackets.
func validParam(s string) bool {
	for i := 0; i < len(s); i++ {
		if b := s[i]; b <= ' ' || b == 0x7f || b == '<' || b == '>' {
			return false
		}
	}
	return s != ""
}

// validPath reports whether an address can be placed between angle
// brackets in MAIL or RCPT: no control characters (which could inject
// commands) and no angle brackets. Spaces are allowed for quoted local
// parts. Full syntax checking is smtpproto.ParseAddress's job.
func validPath(s string) bool {
	for i := 0; i < len(s); i++ {
		if b := s[i]; b < ' ' || b == 0x7f || b == '<' || b == '>' {
			return false
		}
	}
	return true
}
