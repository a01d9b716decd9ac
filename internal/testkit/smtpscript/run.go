package smtpscript

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"syscall"
	"time"
)

// DefaultTimeout is used when Target.Timeout is zero.
const DefaultTimeout = 10 * time.Second

// Target is the SMTP server under test.
type Target struct {
	// Addr is host:port, e.g. "127.0.0.1:2525".
	Addr string
	// TLSConfig is used by starttls. Nil means InsecureSkipVerify (suitable
	// for self-signed test certificates). If ServerName is empty and
	// verification is on, the host of Addr is used.
	TLSConfig *tls.Config
	// Timeout bounds each network operation: dial, one reply, one write,
	// the TLS handshake, and the wait for "expect disconnect".
	Timeout time.Duration
}

func (t Target) timeout() time.Duration {
	if t.Timeout > 0 {
		return t.Timeout
	}
	return DefaultTimeout
}

// CaseResult is the outcome of one test case or dialogue.
type CaseResult struct {
	File       string // script base name, or "dialogues.json"
	Index      int    // 1-based position in the file
	Line       int    // line of the test-case (scripts only)
	Name       string // test-case name or dialogue id; may be empty
	Pass       bool
	Skipped    bool // the case is marked skip and was not run
	ExpectFail bool // the case is marked "expect fail" (Pass means it failed)
	// Err explains a failure (empty when Pass). For an "expect fail" case
	// that failed as expected it is empty too; the transcript has the reason.
	Err        string
	Transcript string // C:/S: lines and "--" events
	Duration   time.Duration
}

// Run executes every test case of the script, in order, against t.
func (s *Script) Run(ctx context.Context, t Target) []CaseResult {
	res := make([]CaseResult, 0, len(s.Cases))
	for _, tc := range s.Cases {
		res = append(res, s.RunCase(ctx, t, tc))
	}
	return res
}

// RunCase executes one test case of the script against t.
func (s *Script) RunCase(ctx context.Context, t Target, tc *TestCase) CaseResult {
	res := CaseResult{File: s.File, Index: tc.Index, Line: tc.Line, Name: tc.Name, ExpectFail: tc.ExpectFail}
	if tc.Skip {
		res.Skipped = true
		res.Err = "skipped (test-case option skip)"
		return res
	}
	ss := &session{ctx: ctx, t: t, procs: s.Procs}
	start := time.Now()
	var err error
	if !tc.NoAutoConnect {
		err = ss.connect()
	}
	if err == nil {
		err = ss.exec(tc.Body, 0)
	}
	ss.close()
	res.Duration = time.Since(start)
	if err != nil && ctx.Err() != nil {
		err = &failure{msg: fmt.Sprintf("%v (context: %v)", err, ctx.Err()), harness: true}
	}
	var f *failure
	switch {
	case err == nil && tc.ExpectFail:
		res.Err = "case succeeded but is marked expect fail"
	case err == nil:
		res.Pass = true
	case errors.As(err, &f) && !f.harness && tc.ExpectFail:
		res.Pass = true
		ss.logf("-- failed as expected: %s", f.msg)
	default:
		res.Err = err.Error()
		ss.logf("-- FAIL: %s", res.Err)
	}
	res.Transcript = ss.tr.String()
	return res
}

// failure is a case failure; harness failures (connect errors, cancelled
// context, internal errors) are not turned into passes by "expect fail".
type failure struct {
	msg     string
	harness bool
}

func (f *failure) Error() string { return f.msg }

// session is the state of one running case: the connection and transcript.
type session struct {
	ctx   context.Context
	t     Target
	procs map[string]*Proc

	raw   net.Conn // TCP connection
	conn  net.Conn // raw, or the TLS client on top of it
	r     *bufio.Reader
	tls   bool
	unarm func() bool // stops the context watcher of raw
	tr    strings.Builder
}

func (ss *session) logf(format string, a ...any) {
	fmt.Fprintf(&ss.tr, format, a...)
	ss.tr.WriteByte('\n')
}

func (ss *session) failf(format string, a ...any) error {
	return &failure{msg: fmt.Sprintf(format, a...)}
}

func (ss *session) harnessf(format string, a ...any) error {
	return &failure{msg: fmt.Sprintf(format, a...), harness: true}
}

const maxDepth = 50

func (ss *session) exec(st *Stmt, depth int) error {
	if depth > maxDepth {
		return ss.harnessf("line %d: nesting deeper than %d", st.Line, maxDepth)
	}
	if err := ss.ctx.Err(); err != nil {
		return ss.harnessf("line %d: %v", st.Line, err)
	}
	switch st.Op {
	case OpBlock:
		for _, c := range st.Body {
			if err := ss.exec(c, depth+1); err != nil {
				return err
			}
		}
	case OpRepeat:
		for range st.Count {
			if err := ss.exec(st.Child, depth+1); err != nil {
				return err
			}
		}
	case OpRandom:
		if len(st.Body) > 0 {
			return ss.exec(st.Body[rand.IntN(len(st.Body))], depth+1)
		}
	case OpNoop:
	case OpFail:
		return ss.failf("line %d: fail %q", st.Line, st.Text)
	case OpCall:
		pr, ok := ss.procs[st.Text]
		if !ok {
			return ss.harnessf("line %d: call to undefined proc %q", st.Line, st.Text)
		}
		return ss.exec(pr.Body, depth+1)
	case OpConnect:
		ss.logf("-- connect %q port %d (dialling target %s)", st.Text, st.Port, ss.t.Addr)
		return ss.connect()
	case OpDisconnect:
		ss.logf("-- disconnect")
		ss.close()
	case OpStartTLS:
		return ss.starttls(where(st))
	case OpSleep:
		ss.logf("-- sleep %v", st.Duration)
		tm := time.NewTimer(st.Duration)
		defer tm.Stop()
		select {
		case <-tm.C:
		case <-ss.ctx.Done():
			return ss.harnessf("line %d: %v", st.Line, ss.ctx.Err())
		}
	case OpWrite:
		return ss.write(where(st), st.Text)
	case OpExpectDisconnect:
		return ss.expectDisconnect(where(st))
	case OpExpectSMTP:
		_, err := ss.expectReply(where(st), st.Expect)
		return err
	default:
		return ss.harnessf("line %d: invalid statement %v", st.Line, st.Op)
	}
	return nil
}

// at names a statement's position for messages.
func where(st *Stmt) string { return fmt.Sprintf("line %d", st.Line) }

func (ss *session) connect() error {
	ss.close()
	d := net.Dialer{Timeout: ss.t.timeout()}
	c, err := d.DialContext(ss.ctx, "tcp", ss.t.Addr)
	if err != nil {
		return ss.harnessf("connect %s: %v", ss.t.Addr, err)
	}
	ss.raw, ss.conn, ss.r, ss.tls = c, c, bufio.NewReaderSize(c, 8192), false
	// A cancelled context unblocks any pending read or write.
	ss.unarm = context.AfterFunc(ss.ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	ss.logf("-- connected to %s", ss.t.Addr)
	return nil
}

func (ss *session) close() {
	if ss.raw == nil {
		return
	}
	ss.unarm()
	ss.conn.Close()
	ss.raw, ss.conn, ss.r, ss.tls = nil, nil, nil, false
}

// arm sets the deadline for the next network operation.
func (ss *session) arm() {
	dl := time.Now().Add(ss.t.timeout())
	if cd, ok := ss.ctx.Deadline(); ok && cd.Before(dl) {
		dl = cd
	}
	if ss.ctx.Err() != nil {
		dl = time.Unix(1, 0)
	}
	ss.raw.SetDeadline(dl)
}

func (ss *session) write(at string, data string) error {
	ss.logf("C: %s", showWrite(data))
	if ss.conn == nil {
		return ss.failf("%s: write: not connected", at)
	}
	ss.arm()
	if _, err := io.WriteString(ss.conn, data); err != nil {
		return ss.failf("%s: write: %v", at, err)
	}
	return nil
}

// readReply reads one reply and logs it; errors are failures.
func (ss *session) readReply(at string) (Reply, error) {
	if ss.conn == nil {
		return Reply{}, ss.failf("%s: expected a reply but not connected", at)
	}
	ss.arm()
	rep, err := ReadReply(ss.r)
	for _, l := range rep.Lines {
		ss.logf("S: %s", visible(l))
	}
	switch {
	case err == nil:
		return rep, nil
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || isReset(err):
		return rep, ss.failf("%s: connection closed while waiting for a reply: %v", at, err)
	case isTimeout(err):
		return rep, ss.failf("%s: no complete reply within %v", at, ss.t.timeout())
	default:
		return rep, ss.failf("%s: reading reply: %v", at, err)
	}
}

func (ss *session) expectReply(at string, exp Expect) (Reply, error) {
	rep, err := ss.readReply(at)
	if err != nil {
		return rep, err
	}
	if !exp.Accepts(rep.Code, len(rep.Lines)) {
		if rep.Multiline() && exp.Accepts(rep.Code, 1) {
			return rep, ss.failf("%s: expect %v: single-line reply expected, got %d lines: %s", at, exp, len(rep.Lines), rep)
		}
		return rep, ss.failf("%s: expect %v: got %s", at, exp, rep)
	}
	return rep, nil
}

func (ss *session) expectDisconnect(at string) error {
	if ss.conn == nil {
		return ss.failf("%s: expect disconnect: not connected", at)
	}
	if n := ss.r.Buffered(); n > 0 {
		b, _ := ss.r.Peek(n)
		return ss.failf("%s: expect disconnect: %d bytes of input left: %q", at, n, b)
	}
	ss.arm()
	buf := make([]byte, 512)
	n, err := ss.r.Read(buf)
	if n > 0 {
		ss.logf("S: %s", visible(strings.TrimRight(string(buf[:n]), "\r\n")))
		return ss.failf("%s: expect disconnect: got data %q", at, buf[:n])
	}
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || isReset(err):
		ss.logf("-- server closed the connection")
		ss.close()
		return nil
	case isTimeout(err):
		return ss.failf("%s: expect disconnect: connection still open after %v", at, ss.t.timeout())
	default:
		return ss.failf("%s: expect disconnect: %v", at, err)
	}
}

func (ss *session) starttls(at string) error {
	if ss.conn == nil {
		return ss.failf("%s: starttls: not connected", at)
	}
	if ss.tls {
		return ss.harnessf("%s: starttls: TLS is already active", at)
	}
	if n := ss.r.Buffered(); n > 0 {
		b, _ := ss.r.Peek(n)
		return ss.failf("%s: starttls: %d plaintext bytes received before the handshake: %q", at, n, b)
	}
	cfg := &tls.Config{InsecureSkipVerify: true}
	if ss.t.TLSConfig != nil {
		cfg = ss.t.TLSConfig.Clone()
	}
	if cfg.ServerName == "" && !cfg.InsecureSkipVerify {
		if h, _, err := net.SplitHostPort(ss.t.Addr); err == nil {
			cfg.ServerName = h
		}
	}
	tc := tls.Client(ss.raw, cfg)
	ss.arm()
	if err := tc.HandshakeContext(ss.ctx); err != nil {
		return ss.failf("%s: starttls: handshake: %v", at, err)
	}
	st := tc.ConnectionState()
	ss.logf("-- TLS established (%s, %s)", tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite))
	ss.conn, ss.r, ss.tls = tc, bufio.NewReaderSize(tc, 8192), true
	return nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed)
}

// showWrite renders written bytes for the transcript: a trailing CRLF is
// dropped, anything else unusual is escaped.
func showWrite(data string) string {
	if t, ok := strings.CutSuffix(data, "\r\n"); ok {
		return visible(t)
	}
	return visible(data) + " [no CRLF]"
}

// visible escapes control characters (and backslash) so a transcript line
// stays one line and is unambiguous.
func visible(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\r':
			b.WriteString(`\r`)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\t':
			b.WriteString(`\t`)
		case c == '\\':
			b.WriteString(`\\`)
		case c < ' ' || c == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
