package smtpd

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"net"
	"net/netip"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Conn is one client connection.
type Conn struct {
	srv  *Server
	nc   net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
	sess Session

	helo     string
	ehlo     bool
	tls      bool
	authed   bool
	inMail   bool
	rcpts    int
	messages int
	utf8     bool
	errors   int
	sizeHint int // the last body's size: the next one's buffer starts this large
	inData   atomic.Bool
	stopping atomic.Bool
}

func newConn(s *Server, nc net.Conn) *Conn {
	return &Conn{srv: s, nc: nc, r: bufio.NewReaderSize(nc, 8192), w: bufio.NewWriterSize(nc, 4096)}
}

// RemoteIP is the client's address.
func (c *Conn) RemoteIP() netip.Addr { return remoteIP(c.nc) }

func remoteIP(nc net.Conn) netip.Addr {
	if ap, err := netip.ParseAddrPort(nc.RemoteAddr().String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// Helo is the name the client gave in HELO/EHLO.
func (c *Conn) Helo() string { return c.helo }

// TLS reports whether STARTTLS completed.
func (c *Conn) TLS() bool { return c.tls }

// Authenticated reports whether AUTH succeeded.
func (c *Conn) Authenticated() bool { return c.authed }

func (c *Conn) shutdown() {
	c.stopping.Store(true)
	if !c.inData.Load() {
		c.nc.SetReadDeadline(time.Now()) // wake the reader; serve answers 421
	}
}

func (c *Conn) reply(code int, enhanced, text string) {
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		c.w.WriteString(strconv.Itoa(code))
		if i < len(lines)-1 {
			c.w.WriteByte('-')
		} else {
			c.w.WriteByte(' ')
		}
		if enhanced != "" {
			c.w.WriteString(enhanced)
			c.w.WriteByte(' ')
		}
		c.w.WriteString(l)
		c.w.WriteString("\r\n")
	}
}

func (c *Conn) replyErr(e *Error) { c.reply(e.Code, e.Enhanced, e.Text) }

func (c *Conn) flush() error {
	c.nc.SetWriteDeadline(time.Now().Add(time.Minute))
	return c.w.Flush()
}

// bad counts a protocol error; too many end the session.
func (c *Conn) bad(code int, enhanced, text string) bool {
	c.reply(code, enhanced, text)
	c.errors++
	if c.errors >= c.srv.cfg.MaxErrors {
		c.reply(421, "4.7.0", "Too many errors; closing connection")
		return false
	}
	return true
}

func (c *Conn) serve() {
	defer c.nc.Close()
	defer func() {
		if p := recover(); p != nil {
			c.srv.log.Error("smtp session panic", "err", p, "stack", string(debug.Stack()))
			c.reply(421, "4.3.0", "Internal error; closing connection")
			c.flush()
		}
		if c.sess != nil {
			c.sess.Close()
		}
	}()
	if tc, ok := c.nc.(*tls.Conn); ok {
		// Implicit TLS (RFC 8314): the handshake comes before the greeting,
		// bounded like the one after STARTTLS.
		tc.SetDeadline(time.Now().Add(time.Minute))
		if err := tc.Handshake(); err != nil {
			return
		}
		tc.SetDeadline(time.Time{})
		c.tls = true
	}
	c.sess = c.srv.backend.NewSession(c)
	c.reply(220, "", c.srv.cfg.Hostname+" ESMTP posthorn")
	for {
		if c.r.Buffered() == 0 {
			if c.flush() != nil {
				return
			}
		}
		if c.stopping.Load() {
			c.reply(421, "4.3.2", "Service shutting down; try again later")
			c.flush()
			return
		}
		line, err := c.readLine()
		if err != nil {
			switch {
			case errors.Is(err, errLineTooLong):
				if !c.bad(500, "5.5.2", "Line too long") {
					c.flush()
					return
				}
				continue
			case isTimeout(err) && c.stopping.Load():
				continue // answered at the top of the loop
			case isTimeout(err):
				c.reply(421, "4.4.2", c.srv.cfg.Hostname+" idle too long; closing connection")
				c.flush()
			}
			return
		}
		if !c.command(line) {
			c.flush()
			return
		}
	}
}

var errLineTooLong = errors.New("line too long")

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// readLine reads one command line without its CRLF (a bare LF also ends a
// command line). Over-long lines are consumed and reported.
func (c *Conn) readLine() (string, error) {
	c.nc.SetReadDeadline(time.Now().Add(c.srv.cfg.ReadTimeout))
	var buf []byte
	for {
		chunk, err := c.r.ReadSlice('\n')
		if len(buf)+len(chunk) > c.srv.cfg.MaxLineLength {
			buf = nil
			for errors.Is(err, bufio.ErrBufferFull) || (err == nil && !bytes.HasSuffix(chunk, []byte("\n"))) {
				chunk, err = c.r.ReadSlice('\n')
			}
			if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
				return "", err
			}
			return "", errLineTooLong
		}
		buf = append(buf, chunk...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil {
			return "", err
		}
		return strings.TrimRight(string(buf), "\r\n"), nil
	}
}

// command runs one command; false ends the session.
func (c *Conn) command(line string) bool {
	verb, arg, _ := strings.Cut(line, " ")
	verb = strings.ToUpper(verb)
	arg = strings.TrimSpace(arg)
	switch verb {
	case "HELO", "EHLO":
		return c.hello(verb == "EHLO", arg)
	case "MAIL":
		return c.mail(arg)
	case "RCPT":
		return c.rcpt(arg)
	case "DATA":
		return c.data(arg)
	case "RSET":
		if arg != "" {
			return c.bad(501, "5.5.4", "RSET takes no argument")
		}
		c.reset()
		c.reply(250, "2.0.0", "OK")
	case "NOOP":
		c.reply(250, "2.0.0", "OK")
	case "QUIT":
		if arg != "" {
			return c.bad(501, "5.5.4", "QUIT takes no argument")
		}
		c.reply(221, "2.0.0", c.srv.cfg.Hostname+" closing connection")
		return false
	case "VRFY":
		if arg == "" {
			return c.bad(501, "5.5.4", "VRFY needs an address")
		}
		if _, err := parsePath(strings.Trim(arg, "<>"), true); err != nil {
			c.reply(502, "5.5.1", "Cannot VRFY that")
			return true
		}
		c.reply(252, "2.5.0", "Cannot VRFY user, but will accept message and attempt delivery")
	case "HELP":
		if arg != "" && !knownCommand(strings.ToUpper(arg)) {
			return c.bad(501, "5.5.4", "No help for that")
		}
		c.reply(214, "2.0.0", "Commands: HELO EHLO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP STARTTLS AUTH")
	case "STARTTLS":
		return c.startTLS(arg)
	case "AUTH":
		return c.auth(arg)
	case "":
		return c.bad(500, "5.5.2", "Empty command")
	default:
		return c.bad(500, "5.5.2", "Command not recognized")
	}
	return true
}

func knownCommand(v string) bool {
	switch v {
	case "HELO", "EHLO", "MAIL", "RCPT", "DATA", "RSET", "NOOP", "QUIT", "VRFY", "HELP", "STARTTLS", "AUTH":
		return true
	}
	return false
}

func (c *Conn) reset() {
	if c.inMail {
		c.sess.Reset()
	}
	c.inMail, c.rcpts = false, 0
}

func (c *Conn) hello(ehlo bool, arg string) bool {
	if arg == "" || strings.ContainsAny(arg, " \t") && !strings.HasPrefix(arg, "[") {
		return c.bad(501, "5.5.4", "Syntax: "+map[bool]string{true: "EHLO", false: "HELO"}[ehlo]+" hostname")
	}
	c.reset()
	c.helo, c.ehlo = arg, ehlo
	if !ehlo {
		c.reply(250, "", c.srv.cfg.Hostname)
		return true
	}
	ext := []string{c.srv.cfg.Hostname, "PIPELINING", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES",
		"SIZE " + strconv.FormatInt(c.srv.cfg.MaxMessageSize, 10)}
	if c.srv.cfg.TLS != nil && !c.tls {
		ext = append(ext, "STARTTLS")
	}
	if mechs := c.sess.AuthMechanisms(); len(mechs) > 0 && !c.authed {
		ext = append(ext, "AUTH "+strings.Join(mechs, " "))
	}
	c.reply(250, "", strings.Join(ext, "\n"))
	return true
}

func (c *Conn) startTLS(arg string) bool {
	switch {
	case arg != "":
		return c.bad(501, "5.5.4", "STARTTLS takes no argument")
	case c.srv.cfg.TLS == nil:
		return c.bad(502, "5.5.1", "STARTTLS not available")
	case c.tls:
		return c.bad(503, "5.5.1", "TLS already active")
	}
	c.reply(220, "2.0.0", "Ready to start TLS")
	if c.flush() != nil {
		return false
	}
	if c.r.Buffered() > 0 {
		// Commands pipelined after STARTTLS would be taken as if sent over
		// TLS: a command injection (CVE-2011-0411). Refuse the session.
		return false
	}
	tc := tls.Server(c.nc, c.srv.cfg.TLS)
	tc.SetDeadline(time.Now().Add(time.Minute))
	if err := tc.Handshake(); err != nil {
		return false
	}
	tc.SetDeadline(time.Time{})
	c.nc = tc
	c.r.Reset(tc)
	c.w.Reset(tc)
	c.tls = true
	c.reset()
	c.helo, c.ehlo, c.authed = "", false, false // RFC 3207: start over
	return true
}

func (c *Conn) auth(arg string) bool {
	mech, initial, _ := strings.Cut(arg, " ")
	mech = strings.ToUpper(mech)
	switch {
	case !c.ehlo:
		return c.bad(503, "5.5.1", "Send EHLO first")
	case c.authed:
		return c.bad(503, "5.5.1", "Already authenticated")
	case c.inMail:
		return c.bad(503, "5.5.1", "AUTH not allowed during a mail transaction")
	case mech == "":
		return c.bad(501, "5.5.4", "Syntax: AUTH mechanism")
	}
	offered := false
	for _, m := range c.sess.AuthMechanisms() {
		offered = offered || m == mech
	}
	if !offered {
		if len(c.sess.AuthMechanisms()) == 0 {
			c.reply(538, "5.7.11", "Encryption required for requested authentication mechanism")
			return true
		}
		return c.bad(504, "5.5.4", "Unrecognized authentication mechanism")
	}
	var identity, user, pass string
	switch mech {
	case "PLAIN":
		resp, ok := c.saslResponse(initial, "")
		if !ok {
			return !c.stopping.Load()
		}
		parts := strings.Split(string(resp), "\x00")
		if len(parts) != 3 {
			return c.bad(501, "5.5.2", "Malformed PLAIN response")
		}
		identity, user, pass = parts[0], parts[1], parts[2]
	case "LOGIN":
		u, ok := c.saslResponse(initial, "VXNlcm5hbWU6") // "Username:"
		if !ok {
			return !c.stopping.Load()
		}
		p, ok := c.saslResponse("", "UGFzc3dvcmQ6") // "Password:"
		if !ok {
			return !c.stopping.Load()
		}
		user, pass = string(u), string(p)
	}
	if err := c.sess.Auth(mech, identity, user, pass); err != nil {
		e := replyFor(err)
		if e.Code == 421 {
			c.replyErr(e)
			return false
		}
		c.replyErr(e)
		return true
	}
	c.authed = true
	c.reply(235, "2.7.0", "Authentication successful")
	return true
}

// saslResponse returns the initial response if given, else challenges the
// client and reads its answer. On a cancel or bad base64 it has replied.
func (c *Conn) saslResponse(initial, challenge string) ([]byte, bool) {
	line := initial
	if line == "" {
		c.reply(334, "", challenge)
		if c.flush() != nil {
			return nil, false
		}
		var err error
		if line, err = c.readLine(); err != nil {
			c.stopping.Store(true)
			return nil, false
		}
	}
	if line == "*" {
		c.reply(501, "5.7.0", "Authentication cancelled")
		return nil, false
	}
	if line == "=" {
		return []byte{}, true
	}
	b, err := base64.StdEncoding.DecodeString(line)
	if err != nil {
		c.reply(501, "5.5.2", "Invalid base64 data")
		return nil, false
	}
	return b, true
}
