package testkit

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"
)

// session is one SMTP connection, server side.
type session struct {
	m    *MXServer
	id   int
	done chan struct{}
	conn net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
	sc   Script // snapshot for the command being handled

	helo     string
	ehlo     bool
	tls      bool
	authUser string
	txnNo    int
	errors   int

	inTxn    bool
	from     string
	params   []string
	rcpts    []string
	rateHeld bool
}

func (s *session) setConn(c net.Conn) {
	s.conn = c
	s.r = bufio.NewReaderSize(c, 4096)
	s.w = bufio.NewWriter(c)
}

func (s *session) host() string {
	if s.sc.Hostname != "" {
		return s.sc.Hostname
	}
	return s.m.defaultHost()
}

func (s *session) maxLine() int {
	if s.sc.MaxLineLength > 0 {
		return s.sc.MaxLineLength
	}
	return defaultMaxLine
}

func (s *session) maxSize() int {
	if s.sc.MaxSize > 0 {
		return s.sc.MaxSize
	}
	return defaultMaxSize
}

func (s *session) run() {
	defer s.endTxn(false)
	s.sc = s.m.Script()
	m := s.m
	m.mu.Lock()
	admit := s.sc.MaxConns <= 0 || m.admitted < s.sc.MaxConns
	if admit {
		m.admitted++
	}
	m.mu.Unlock()
	if !admit {
		s.send(s.sc.MaxConnsReply.or(Reply{Code: 421, Text: "4.7.0 Too many connections, try again later", Close: true}))
		return
	}
	defer func() {
		m.mu.Lock()
		m.admitted--
		m.mu.Unlock()
	}()

	if !s.stall(s.sc.Stall.Greeting) ||
		!s.send(s.sc.Greeting.or(Reply{Code: 220, Text: s.host() + " ESMTP testkit"})) {
		return
	}
	for {
		line, _, long, err := s.readLine()
		if err != nil {
			return
		}
		cmd := strings.TrimRight(string(line), "\r\n")
		s.m.logCommand(s.id, cmd)
		s.sc = s.m.Script()
		if long {
			if !s.send(Reply{Code: 500, Text: "5.5.2 Line too long"}) {
				return
			}
			continue
		}
		if !s.command(cmd) {
			return
		}
	}
}

// readLine reads one line up to the line limit; a longer one is consumed
// whole but returned cut, with long set. n counts the bytes consumed.
func (s *session) readLine() (line []byte, n int, long bool, err error) {
	idle := s.sc.IdleTimeout
	if idle <= 0 {
		idle = defaultIdle
	}
	if buf, _ := s.r.Peek(s.r.Buffered()); bytes.IndexByte(buf, '\n') < 0 {
		// About to wait for the client: it must see every reply due.
		if err := s.w.Flush(); err != nil {
			return nil, 0, false, err
		}
	}
	_ = s.conn.SetReadDeadline(time.Now().Add(idle))
	limit := s.maxLine()
	for {
		chunk, err := s.r.ReadSlice('\n')
		n += len(chunk)
		if len(line)+len(chunk) <= limit {
			line = append(line, chunk...)
		} else {
			long = true
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		return line, n, long, err
	}
}

// send queues r; false means the session must end (drop, Close). Queued
// replies are flushed before waiting for input (readLine), so pipelined
// commands get their replies in one batch.
func (s *session) send(r Reply) bool {
	if r.Code == CodeDrop {
		_ = s.w.Flush()
		return false
	}
	if r.Raw != "" {
		s.w.WriteString(r.Raw)
		if r.Close {
			_ = s.w.Flush()
			return false
		}
		return true
	}
	lines := strings.Split(strings.TrimRight(r.Text, "\n"), "\n")
	for i, l := range lines {
		sep := "-"
		if i == len(lines)-1 {
			sep = " "
		}
		fmt.Fprintf(s.w, "%03d%s%s\r\n", r.Code, sep, strings.TrimRight(l, "\r"))
	}
	if r.Close {
		_ = s.w.Flush()
		return false
	}
	return true
}

// stall waits d, false if the server stopped meanwhile.
func (s *session) stall(d time.Duration) bool {
	if d <= 0 {
		return true
	}
	if s.w.Flush() != nil {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.done:
		return false
	}
}

func (s *session) endTxn(accepted bool) {
	if s.rateHeld {
		s.m.rateRelease(accepted)
		s.rateHeld = false
	}
	s.inTxn, s.from, s.params, s.rcpts = false, "", nil, nil
}

func (s *session) rateReply() Reply {
	return s.sc.RateLimit.Reply.or(Reply{Code: 421, Text: "4.7.28 Rate limit exceeded, try again later", Close: true})
}

func (s *session) command(line string) bool {
	verb, arg, _ := strings.Cut(line, " ")
	verb = strings.ToUpper(verb)
	arg = strings.TrimSpace(arg)
	switch verb {
	case "EHLO", "HELO":
		return s.hello(verb, arg)
	case "STARTTLS":
		return s.startTLS(arg)
	case "AUTH":
		return s.auth(arg)
	case "MAIL":
		return s.mail(arg)
	case "RCPT":
		return s.rcpt(arg)
	case "DATA":
		return s.data(arg)
	case "RSET":
		s.m.mu.Lock()
		s.m.rsets++
		s.m.mu.Unlock()
		s.endTxn(false)
		return s.send(Reply{Code: 250, Text: "2.0.0 OK"})
	case "NOOP":
		return s.send(Reply{Code: 250, Text: "2.0.0 OK"})
	case "VRFY":
		return s.send(Reply{Code: 252, Text: "2.1.5 Cannot VRFY user"})
	case "HELP":
		return s.send(Reply{Code: 214, Text: "2.0.0 testkit"})
	case "QUIT":
		if !s.stall(s.sc.Stall.Quit) {
			return false
		}
		s.send(Reply{Code: 221, Text: "2.0.0 Bye", Close: true})
		return false
	}
	return s.bad(Reply{Code: 500, Text: "5.5.2 Command unrecognized"})
}

// bad sends an error reply for a client mistake, hanging up after many.
func (s *session) bad(r Reply) bool {
	s.errors++
	if s.errors >= 50 {
		r = Reply{Code: 421, Text: "4.7.0 Too many errors", Close: true}
	}
	return s.send(r)
}

func (s *session) hello(verb, arg string) bool {
	if arg == "" {
		return s.bad(Reply{Code: 501, Text: "5.5.4 " + verb + " requires a domain"})
	}
	if !s.stall(s.sc.Stall.Ehlo) {
		return false
	}
	s.endTxn(false)
	r := s.sc.Helo.or(Reply{Code: 250, Text: s.host()})
	if verb == "EHLO" {
		r = s.sc.Ehlo
		if r.Code == 0 {
			r = Reply{Code: 250, Text: s.host() + " greets " + arg + "\n" + strings.Join(s.extensions(), "\n")}
		}
	}
	if r.ok() {
		s.helo, s.ehlo = arg, verb == "EHLO"
	}
	return s.send(r)
}

func (s *session) extensions() []string {
	ext := []string{"PIPELINING", "8BITMIME", "SMTPUTF8", "SIZE " + strconv.Itoa(s.maxSize()), "ENHANCEDSTATUSCODES"}
	if s.sc.StartTLS && !s.tls {
		ext = append(ext, "STARTTLS")
	}
	if len(s.sc.Auth) > 0 {
		ext = append(ext, "AUTH PLAIN LOGIN")
	}
	return slices.DeleteFunc(ext, func(e string) bool {
		kw, _, _ := strings.Cut(e, " ")
		return slices.ContainsFunc(s.sc.OmitExtensions, func(o string) bool { return strings.EqualFold(o, kw) })
	})
}

func (s *session) startTLS(arg string) bool {
	switch {
	case !s.sc.StartTLS:
		return s.bad(Reply{Code: 502, Text: "5.5.1 STARTTLS not available"})
	case s.tls:
		return s.bad(Reply{Code: 503, Text: "5.5.1 Already in TLS"})
	case arg != "":
		return s.bad(Reply{Code: 501, Text: "5.5.4 No parameters allowed"})
	}
	if !s.send(Reply{Code: 220, Text: "2.0.0 Ready to start TLS"}) {
		return false
	}
	if s.w.Flush() != nil || s.r.Buffered() > 0 { // plaintext injected after STARTTLS
		return false
	}
	if s.sc.BreakTLS {
		// Whatever the client sends as its ClientHello gets this back: not
		// a TLS record, so its handshake fails.
		_, _ = s.conn.Write([]byte("554 5.7.0 no TLS here after all\r\n"))
		return false
	}
	cert := s.m.cert
	if s.sc.TLSCert != nil {
		cert = *s.sc.TLSCert
	}
	tc := tls.Server(s.conn, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
	if tc.Handshake() != nil {
		return false
	}
	_ = tc.SetDeadline(time.Time{})
	s.setConn(tc)
	s.tls = true
	s.endTxn(false)
	s.helo, s.ehlo, s.authUser = "", false, ""
	return true
}

func (s *session) auth(arg string) bool {
	switch {
	case len(s.sc.Auth) == 0:
		return s.bad(Reply{Code: 502, Text: "5.5.1 AUTH not available"})
	case !s.ehlo:
		return s.bad(Reply{Code: 503, Text: "5.5.1 Send EHLO first"})
	case s.authUser != "":
		return s.bad(Reply{Code: 503, Text: "5.5.1 Already authenticated"})
	case s.inTxn:
		return s.bad(Reply{Code: 503, Text: "5.5.1 AUTH not allowed during a transaction"})
	}
	mech, initial, _ := strings.Cut(arg, " ")
	initial = strings.TrimSpace(initial)
	// ask returns the client's decoded answer to a 334 challenge.
	ask := func(challenge string) (string, bool, bool) {
		if !s.send(Reply{Code: 334, Text: challenge}) {
			return "", false, false
		}
		line, _, long, err := s.readLine()
		if err != nil {
			return "", false, false
		}
		resp := strings.TrimRight(string(line), "\r\n")
		if long || resp == "*" {
			return "", false, s.bad(Reply{Code: 501, Text: "5.0.0 Authentication cancelled"})
		}
		return s.decode(resp)
	}
	var user, pass string
	switch strings.ToUpper(mech) {
	case "PLAIN":
		var resp string
		var ok, cont bool
		if initial != "" {
			resp, ok, cont = s.decode(initial)
		} else {
			resp, ok, cont = ask("")
		}
		if !ok {
			return cont
		}
		parts := strings.Split(resp, "\x00")
		if len(parts) != 3 {
			return s.bad(Reply{Code: 501, Text: "5.5.2 Malformed PLAIN response"})
		}
		user, pass = parts[1], parts[2]
	case "LOGIN":
		var ok, cont bool
		if initial != "" {
			user, ok, cont = s.decode(initial)
		} else {
			user, ok, cont = ask("VXNlcm5hbWU6")
		}
		if !ok {
			return cont
		}
		if pass, ok, cont = ask("UGFzc3dvcmQ6"); !ok {
			return cont
		}
	default:
		return s.bad(Reply{Code: 504, Text: "5.5.4 Unrecognized authentication type"})
	}
	if want, ok := s.sc.Auth[user]; !ok || want != pass {
		return s.bad(Reply{Code: 535, Text: "5.7.8 Authentication credentials invalid"})
	}
	s.authUser = user
	return s.send(Reply{Code: 235, Text: "2.7.0 Authentication successful"})
}

// decode base64-decodes an AUTH response: (text, ok, continue session).
func (s *session) decode(b64 string) (string, bool, bool) {
	if b64 == "=" {
		return "", true, true
	}
	b, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return "", false, s.bad(Reply{Code: 501, Text: "5.5.2 Invalid base64"})
	}
	return string(b), true, true
}

// path parses "FROM:<addr> params" (prefix "FROM:" or "TO:").
func path(arg, prefix string) (addr string, params []string, ok bool) {
	if len(arg) < len(prefix) || !strings.EqualFold(arg[:len(prefix)], prefix) {
		return "", nil, false
	}
	rest := strings.TrimSpace(arg[len(prefix):])
	if !strings.HasPrefix(rest, "<") {
		return "", nil, false
	}
	end := strings.IndexByte(rest, '>')
	if end < 0 {
		return "", nil, false
	}
	return rest[1:end], strings.Fields(rest[end+1:]), true
}

func (s *session) mail(arg string) bool {
	switch {
	case s.helo == "":
		return s.bad(Reply{Code: 503, Text: "5.5.1 Send HELO/EHLO first"})
	case s.inTxn:
		return s.bad(Reply{Code: 503, Text: "5.5.1 Nested MAIL command"})
	case s.sc.RequireTLS && !s.tls:
		return s.bad(Reply{Code: 530, Text: "5.7.0 Must issue a STARTTLS command first"})
	case s.sc.RequireAuth && s.authUser == "":
		return s.bad(Reply{Code: 530, Text: "5.7.0 Authentication required"})
	}
	from, params, ok := path(arg, "FROM:")
	if !ok {
		return s.bad(Reply{Code: 501, Text: "5.5.4 Syntax: MAIL FROM:<address>"})
	}
	for _, p := range params {
		if k, v, _ := strings.Cut(p, "="); strings.EqualFold(k, "SIZE") {
			if n, err := strconv.Atoi(v); err == nil && n > s.maxSize() {
				return s.send(Reply{Code: 552, Text: "5.3.4 Message size exceeds fixed limit"})
			}
		}
	}
	if !s.stall(s.sc.Stall.Mail) {
		return false
	}
	if rl := s.sc.RateLimit; rl.Messages > 0 && !rl.AtEndOfData {
		if !s.m.rateTake(rl) {
			return s.send(s.rateReply())
		}
		s.rateHeld = true
	}
	r := Reply{Code: 250, Text: "2.1.0 OK"}
	if s.sc.Mail != nil {
		r = s.sc.Mail(from).or(r)
	}
	if r.ok() {
		s.inTxn, s.from, s.params, s.rcpts = true, from, params, nil
		s.txnNo++
		s.m.mu.Lock()
		s.m.txns++
		s.m.mu.Unlock()
	} else {
		s.endTxn(false)
	}
	return s.send(r)
}

func (s *session) rcpt(arg string) bool {
	if !s.inTxn {
		return s.bad(Reply{Code: 503, Text: "5.5.1 Need MAIL before RCPT"})
	}
	to, _, ok := path(arg, "TO:")
	if !ok || to == "" {
		return s.bad(Reply{Code: 501, Text: "5.5.4 Syntax: RCPT TO:<address>"})
	}
	if !s.stall(s.sc.Stall.Rcpt) {
		return false
	}
	r := Reply{Code: 250, Text: "2.1.5 OK"}
	maxRcpt := s.sc.MaxRcptsPerTxn
	if maxRcpt <= 0 {
		maxRcpt = defaultMaxRcpt
	}
	if len(s.rcpts) >= maxRcpt {
		r = Reply{Code: 452, Text: "4.5.3 Too many recipients"}
	} else if rr, found := lookupFold(s.sc.RcptReplies, to); found {
		r = rr.or(r)
	} else if s.sc.Rcpt != nil {
		r = s.sc.Rcpt(to).or(r)
	}
	if r.ok() {
		s.rcpts = append(s.rcpts, to)
	}
	return s.send(r)
}

func lookupFold(m map[string]Reply, key string) (Reply, bool) {
	if r, ok := m[key]; ok {
		return r, true
	}
	for k, r := range m {
		if strings.EqualFold(k, key) {
			return r, true
		}
	}
	return Reply{}, false
}

func (s *session) data(arg string) bool {
	switch {
	case arg != "":
		return s.bad(Reply{Code: 501, Text: "5.5.4 No parameters allowed"})
	case !s.inTxn:
		return s.bad(Reply{Code: 503, Text: "5.5.1 Need MAIL command"})
	case len(s.rcpts) == 0:
		return s.bad(Reply{Code: 554, Text: "5.5.1 No valid recipients"})
	}
	if !s.stall(s.sc.Stall.Data) {
		return false
	}
	r := s.sc.DataCmd.or(Reply{Code: 354, Text: "Start mail input; end with <CRLF>.<CRLF>"})
	if r.Code != 354 || r.Close {
		return s.send(r)
	}
	if !s.send(r) {
		return false
	}
	data, long, big, bareLF, ok := s.readData()
	if !ok {
		return false
	}
	if !s.stall(s.sc.Stall.EndOfData) {
		return false
	}
	msg := Message{
		From: s.from, To: s.rcpts, MailParams: s.params, Helo: s.helo, TLS: s.tls, Remote: remoteIP(s.conn),
		AuthUser: s.authUser, Conn: s.id, Txn: s.txnNo, BareLF: bareLF, Time: time.Now(),
	}
	if !s.sc.DiscardData {
		msg.Data = data
	}
	msg.Reply = s.endOfData(&msg, long, big)
	accepted := msg.Reply.ok()
	s.endTxn(accepted)
	m := s.m
	m.mu.Lock()
	m.tried = append(m.tried, msg)
	if accepted {
		m.msgs = append(m.msgs, msg)
	}
	m.notify()
	m.mu.Unlock()
	return s.send(msg.Reply)
}

// endOfData decides the reply to the final dot.
func (s *session) endOfData(msg *Message, long, big bool) Reply {
	m := s.m
	m.mu.Lock()
	m.attempts++
	msg.Attempt = m.attempts
	var queued *Reply
	if i := msg.Attempt - 1; i < len(s.sc.DataReplies) {
		queued = &s.sc.DataReplies[i]
	}
	m.mu.Unlock()
	switch {
	case long:
		return Reply{Code: 552, Text: "5.3.4 Message line too long"}
	case big:
		return Reply{Code: 552, Text: "5.3.4 Message size exceeds fixed limit"}
	}
	if rl := s.sc.RateLimit; rl.Messages > 0 && rl.AtEndOfData && !s.rateHeld {
		if !m.rateTake(rl) {
			return s.rateReply()
		}
		s.rateHeld = true
	}
	def := Reply{Code: 250, Text: fmt.Sprintf("2.0.0 OK queued as %d.%d", msg.Conn, msg.Txn)}
	if queued != nil {
		return queued.or(def)
	}
	if s.sc.Data != nil {
		return s.sc.Data(msg, msg.Attempt).or(def)
	}
	return def
}

// readData reads message data up to the final dot, unstuffing dots. ok is
// false when the connection must end (error or DropDataAfter).
func (s *session) readData() (data []byte, long, big, bareLF, ok bool) {
	raw, limit := 0, s.maxSize()
	for {
		line, n, l, err := s.readLine()
		raw += n
		if err != nil || (s.sc.DropDataAfter > 0 && raw >= s.sc.DropDataAfter) {
			return nil, false, false, false, false
		}
		if l {
			long = true
			continue
		}
		if bytes.Equal(line, []byte(".\r\n")) || bytes.Equal(line, []byte(".\n")) {
			bareLF = bareLF || len(line) == 2
			return data, long, big, bareLF, true
		}
		if !bytes.HasSuffix(line, []byte("\r\n")) {
			bareLF = true
		}
		if line[0] == '.' {
			line = line[1:]
		}
		if len(data)+len(line) > limit {
			big = true
			continue
		}
		data = append(data, line...)
	}
}

// remoteIP is the client's address without its port.
func remoteIP(c net.Conn) string {
	if c == nil {
		return ""
	}
	host, _, err := net.SplitHostPort(c.RemoteAddr().String())
	if err != nil {
		return c.RemoteAddr().String()
	}
	return host
}
