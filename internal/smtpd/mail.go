package smtpd

import (
	"bufio"
	"bytes"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/posthorn/posthorn/internal/smtpproto"
)

// splitPath takes "FROM:<path> params" (after the keyword) apart: the path
// inside angle brackets (quoted strings may hold '>'), or, leniently, a
// bare path up to the first space.
func splitPath(arg string) (path, params string, ok bool) {
	arg = strings.TrimLeft(arg, " ")
	if arg == "" {
		return "", "", false
	}
	if arg[0] != '<' {
		// Lenient: a bare path, up to the first space outside quotes.
		end, inQuote := len(arg), false
		for i := 0; i < len(arg); i++ {
			if arg[i] == '\\' {
				i++
			} else if arg[i] == '"' {
				inQuote = !inQuote
			} else if arg[i] == ' ' && !inQuote {
				end = i
				break
			}
		}
		p, rest := arg[:end], arg[end:]
		if strings.ContainsAny(p, "<>") {
			return "", "", false
		}
		return p, rest, true
	}
	inQuote := false
	for i := 1; i < len(arg); i++ {
		switch arg[i] {
		case '\\':
			i++
		case '"':
			inQuote = !inQuote
		case '>':
			if !inQuote {
				rest := arg[i+1:]
				if rest != "" && rest[0] != ' ' {
					return "", "", false
				}
				return arg[1:i], rest, true
			}
		}
	}
	return "", "", false
}

// parsePath parses a path's content: "" (null), an optional source route
// "@a,@b:" (dropped, reported), then a mailbox.
func parsePath(p string, utf8 bool) (Path, error) {
	if p == "" || p == "@" {
		return Path{Null: true}, nil // "<@>" is an old spelling of <>
	}
	var out Path
	if i := routeEnd(p); i > 0 && p[0] != '@' {
		// "relay:user@domain": a route without its @, as some old clients
		// send; dropped like a proper one.
		return withRoute(p[i+1:], utf8)
	}
	if p[0] == '@' {
		i := strings.IndexByte(p, ':')
		if i < 0 {
			return Path{}, errors.New("source route without a mailbox")
		}
		for _, hop := range strings.Split(p[:i], ",") {
			if !strings.HasPrefix(hop, "@") {
				return Path{}, errors.New("malformed source route")
			}
			if _, err := smtpproto.NormalizeDomain(hop[1:], utf8); err != nil {
				return Path{}, errors.New("malformed source route")
			}
		}
		out.Route, p = true, p[i+1:]
	}
	a, err := smtpproto.ParseAddress(p, utf8)
	if err != nil {
		return Path{}, err
	}
	out.Addr = a
	return out, nil
}

// routeEnd finds the ':' that ends a route prefix (outside quotes, before
// any '@' of the mailbox); 0 when there is none.
func routeEnd(p string) int {
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '"', '@':
			return 0
		case ':':
			return i
		}
	}
	return 0
}

func withRoute(p string, utf8 bool) (Path, error) {
	out, err := parsePath(p, utf8)
	if err != nil || out.Null {
		return Path{}, errors.New("malformed source route")
	}
	out.Route = true
	return out, nil
}

// param is one ESMTP parameter.
type param struct{ key, value string }

func parseParams(s string) ([]param, error) {
	var out []param
	for _, f := range strings.Fields(s) {
		k, v, hasValue := strings.Cut(f, "=")
		if !validKeyword(k) || hasValue && (v == "" || !validValue(v)) {
			return nil, errors.New("malformed parameter " + strconvQuote(f))
		}
		out = append(out, param{strings.ToUpper(k), v})
	}
	return out, nil
}

func validKeyword(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' && i > 0) {
			return false
		}
	}
	return true
}

func validValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if v[i] < 33 || v[i] > 126 || v[i] == '=' {
			return false
		}
	}
	return true
}

func strconvQuote(s string) string {
	if len(s) > 40 {
		s = s[:40]
	}
	return strconv.Quote(s)
}

func (c *Conn) mail(arg string) bool {
	if c.helo == "" {
		return c.bad(503, "5.5.1", "Send HELO/EHLO first")
	}
	if c.inMail {
		return c.bad(503, "5.5.1", "Nested MAIL command")
	}
	if !hasPrefixFold(arg, "FROM:") {
		return c.bad(501, "5.5.4", "Syntax: MAIL FROM:<address>")
	}
	raw, rest, ok := splitPath(arg[5:])
	if !ok {
		return c.bad(501, "5.5.4", "Syntax: MAIL FROM:<address>")
	}
	params, err := parseParams(rest)
	if err != nil {
		return c.bad(501, "5.5.4", err.Error())
	}
	// Parameters after plain HELO are accepted, as Postfix and OpenSMTPD do.
	var mp MailParams
	for _, p := range params {
		switch p.key {
		case "SIZE":
			n, err := strconv.ParseInt(p.value, 10, 64)
			if err != nil || n < 0 {
				return c.bad(501, "5.5.4", "SIZE needs a number")
			}
			mp.Size = n
		case "BODY":
			switch strings.ToUpper(p.value) {
			case "7BIT":
			case "8BITMIME":
				mp.EightBit = true
			default:
				return c.bad(501, "5.5.4", "BODY must be 7BIT or 8BITMIME")
			}
		case "SMTPUTF8":
			if p.value != "" {
				return c.bad(501, "5.5.4", "SMTPUTF8 takes no value")
			}
			mp.UTF8 = true
		case "AUTH":
			// RFC 4954: accepted and ignored (we do not relay it on).
		default:
			c.reply(555, "5.5.4", "Unsupported parameter "+strconvQuote(p.key))
			return true
		}
	}
	if mp.Size > c.srv.cfg.MaxMessageSize {
		c.reply(552, "5.3.4", "Message size exceeds the limit of "+strconv.FormatInt(c.srv.cfg.MaxMessageSize, 10)+" bytes")
		return true
	}
	path, err := parsePath(raw, true)
	if err != nil {
		c.reply(553, "5.1.7", "Bad sender address syntax: "+err.Error())
		return true
	}
	if !mp.UTF8 && !path.Null && !isASCII(path.Addr.Local+path.Addr.Domain) && !strings.Contains(path.Addr.Domain, "xn--") {
		c.reply(553, "5.6.7", "Non-ASCII address needs SMTPUTF8")
		return true
	}
	if max := c.srv.cfg.MaxMessagesPerSession; max > 0 && c.messages >= max {
		c.reply(421, "4.7.0", "Too many messages in one session; reconnect")
		return false
	}
	if err := c.sess.Mail(path, mp); err != nil {
		c.replyErr(replyFor(err))
		return true
	}
	c.inMail, c.rcpts, c.errors, c.utf8 = true, 0, 0, mp.UTF8
	c.reply(250, "2.1.0", "OK")
	return true
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func (c *Conn) rcpt(arg string) bool {
	if !c.inMail {
		return c.bad(503, "5.5.1", "Need MAIL before RCPT")
	}
	if !hasPrefixFold(arg, "TO:") {
		return c.bad(501, "5.5.4", "Syntax: RCPT TO:<address>")
	}
	raw, rest, ok := splitPath(arg[3:])
	if !ok {
		return c.bad(501, "5.5.4", "Syntax: RCPT TO:<address>")
	}
	params, err := parseParams(rest)
	if err != nil {
		return c.bad(501, "5.5.4", err.Error())
	}
	if len(params) > 0 {
		c.reply(555, "5.5.4", "Unsupported parameter "+strconvQuote(params[0].key))
		return true
	}
	if c.rcpts >= c.srv.cfg.MaxRecipients {
		c.reply(452, "4.5.3", "Too many recipients")
		return true
	}
	path, err := parsePath(raw, true)
	if err != nil || path.Null {
		msg := "Bad recipient address syntax"
		if err != nil {
			msg += ": " + err.Error()
		}
		c.reply(553, "5.1.3", msg)
		return true
	}
	if !c.utf8 && !isASCII(path.Addr.Local+path.Addr.Domain) {
		c.reply(553, "5.6.7", "Non-ASCII address needs SMTPUTF8")
		return true
	}
	if err := c.sess.Rcpt(path); err != nil {
		c.replyErr(replyFor(err))
		return true
	}
	c.rcpts++
	c.reply(250, "2.1.5", "OK")
	return true
}

func (c *Conn) data(arg string) bool {
	switch {
	case arg != "":
		return c.bad(501, "5.5.4", "DATA takes no argument")
	case !c.inMail || c.rcpts == 0:
		return c.bad(503, "5.5.1", "Need RCPT before DATA")
	}
	c.reply(354, "", "End data with <CR><LF>.<CR><LF>")
	if c.flush() != nil {
		return false
	}
	c.inData.Store(true)
	defer c.inData.Store(false)
	body, tooBig, longLine, err := c.readData()
	if isTimeout(err) {
		// The whole body must arrive within DataTimeout, however slowly
		// the bytes trickle in: a slow sender cannot hold a slot forever.
		c.reply(421, "4.4.2", c.srv.cfg.Hostname+" message data not received within "+c.srv.cfg.DataTimeout.String()+"; nothing was queued, closing connection")
		return false
	}
	if err != nil {
		return false // connection lost mid-DATA: nothing was accepted
	}
	defer c.reset()
	switch {
	case tooBig:
		c.reply(552, "5.3.4", "Message too big for this server")
		return true
	case longLine:
		c.reply(500, "5.5.2", "Line too long in message data")
		return true
	}
	c.messages++
	ok, err := c.sess.Data(body)
	if err != nil {
		c.replyErr(replyFor(err))
		return true
	}
	if ok == nil {
		ok = Reply(250, "2.0.0", "OK")
	}
	c.replyErr(ok)
	return true
}

// readData reads the body up to the line ".": only CRLF "." CRLF ends it
// (a bare LF or CR never does), leading dots are unstuffed, and the size
// and line limits are enforced while the rest is read and dropped. One read
// deadline covers the whole body (not each read), so it bounds the DATA
// phase's total time.
func (c *Conn) readData() (body []byte, tooBig, longLine bool, err error) {
	c.nc.SetReadDeadline(time.Now().Add(c.srv.cfg.DataTimeout))
	var buf bytes.Buffer
	// Sized like the session's previous message (within 1 MiB): a body
	// grown from nothing is copied about a dozen times on the way.
	buf.Grow(min(c.sizeHint, 1<<20))
	atLineStart := true // the previous chunk ended a line with CRLF
	prevCR := false     // the previous chunk ended in CR (a CRLF may span two chunks)
	lineLen := 0
	limit := int(c.srv.cfg.MaxMessageSize)
	for {
		raw, err := c.r.ReadSlice('\n')
		full := err == nil
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return nil, false, false, err
		}
		if atLineStart && full && len(raw) == 3 && raw[0] == '.' && raw[1] == '\r' {
			c.sizeHint = buf.Len() + buf.Len()/16
			return buf.Bytes(), tooBig, longLine, nil
		}
		seg := raw
		if atLineStart && len(seg) > 0 && seg[0] == '.' {
			seg = seg[1:]
		}
		lineLen += len(seg)
		if lineLen > c.srv.cfg.MaxLineLength {
			longLine = true
		}
		if buf.Len()+len(seg) > limit {
			tooBig = true
		}
		if !tooBig && !longLine {
			buf.Write(seg)
		}
		endsCRLF := full && (bytes.HasSuffix(raw, []byte("\r\n")) || len(raw) == 1 && prevCR)
		atLineStart = endsCRLF
		if endsCRLF {
			lineLen = 0
		}
		prevCR = len(raw) > 0 && raw[len(raw)-1] == '\r'
	}
}
