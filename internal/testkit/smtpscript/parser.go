package smtpscript

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Op is the kind of a [Stmt].
type Op int

// Statement kinds.
const (
	OpBlock            Op = iota // { Body... }
	OpRepeat                     // repeat Count Child
	OpRandom                     // random { Body... }
	OpNoop                       // noop
	OpFail                       // fail Text
	OpCall                       // call Text
	OpConnect                    // connect Text port Port
	OpDisconnect                 // disconnect
	OpStartTLS                   // starttls
	OpSleep                      // sleep Duration
	OpWrite                      // write/writeln Text (writeln: Text ends in CRLF)
	OpExpectDisconnect           // expect disconnect
	OpExpectSMTP                 // expect smtp [Expect]
)

// Expect is the reply class an "expect smtp" statement accepts.
type Expect int

// Reply classes of "expect smtp".
const (
	ExpectAny      Expect = iota // expect smtp: any code, multiline allowed
	ExpectOK                     // expect smtp ok: 2xx/3xx, single line
	ExpectHelo                   // expect smtp helo: 2xx/3xx, multiline allowed
	ExpectTempfail               // expect smtp tempfail: 4xx, single line
	ExpectPermfail               // expect smtp permfail: 5xx, single line
)

var expectWords = [...]string{"", "ok", "helo", "tempfail", "permfail"}

// Accepts reports whether a reply with the given code and line count
// satisfies the expectation.
func (e Expect) Accepts(code, lines int) bool {
	if lines > 1 && e != ExpectAny && e != ExpectHelo {
		return false
	}
	switch e {
	case ExpectAny:
		return code >= 200 && code <= 599
	case ExpectOK, ExpectHelo:
		return code >= 200 && code <= 399
	case ExpectTempfail:
		return code >= 400 && code <= 499
	case ExpectPermfail:
		return code >= 500 && code <= 599
	}
	return false
}

func (e Expect) String() string {
	if e == ExpectAny {
		return "smtp"
	}
	if e > ExpectAny && int(e) < len(expectWords) {
		return "smtp " + expectWords[e]
	}
	return "Expect(" + strconv.Itoa(int(e)) + ")"
}

// Stmt is one statement of a script.
type Stmt struct {
	Op       Op
	Line     int
	Body     []*Stmt       // OpBlock, OpRandom
	Count    int           // OpRepeat
	Child    *Stmt         // OpRepeat
	Text     string        // OpFail reason, OpCall name, OpConnect host, OpWrite bytes
	Port     int           // OpConnect
	Duration time.Duration // OpSleep
	Expect   Expect        // OpExpectSMTP
}

// String renders the statement back in the script language (on one line).
func (s *Stmt) String() string {
	switch s.Op {
	case OpBlock:
		parts := make([]string, len(s.Body))
		for i, c := range s.Body {
			parts[i] = c.String()
		}
		if len(parts) == 0 {
			return "{ }"
		}
		return "{ " + strings.Join(parts, "; ") + " }"
	case OpRepeat:
		return fmt.Sprintf("repeat %d %s", s.Count, s.Child)
	case OpRandom:
		return "random " + (&Stmt{Op: OpBlock, Body: s.Body}).String()
	case OpNoop:
		return "noop"
	case OpFail:
		return "fail " + strconv.Quote(s.Text)
	case OpCall:
		return "call " + s.Text
	case OpConnect:
		return fmt.Sprintf("connect %q port %d", s.Text, s.Port)
	case OpDisconnect:
		return "disconnect"
	case OpStartTLS:
		return "starttls"
	case OpSleep:
		return fmt.Sprintf("sleep %d", s.Duration.Milliseconds())
	case OpWrite:
		if t, ok := strings.CutSuffix(s.Text, "\r\n"); ok {
			return "writeln " + strconv.Quote(t)
		}
		return "write " + strconv.Quote(s.Text)
	case OpExpectDisconnect:
		return "expect disconnect"
	case OpExpectSMTP:
		return "expect " + s.Expect.String()
	}
	return fmt.Sprintf("Op(%d)", int(s.Op))
}

// Proc is a procedure ("proc NAME { ... }").
type Proc struct {
	Name   string
	Params []string // declared %params (accepted, never used by the language)
	Line   int
	Body   *Stmt
}

// TestCase is one "test-case { ... }" block.
type TestCase struct {
	Index         int    // 1-based position among the file's test cases
	Line          int    // line of the test-case keyword
	Name          string // from `name "x"`; empty when not given
	NoAutoConnect bool
	ExpectFail    bool
	Skip          bool
	Body          *Stmt
}

// Label returns the case name, or "<file:line>" when it has none (as the
// original interpreter did).
func (tc *TestCase) Label(file string) string {
	if tc.Name != "" {
		return tc.Name
	}
	return fmt.Sprintf("<%s:%d>", file, tc.Line)
}

// Script is a parsed smtpscript file.
type Script struct {
	File  string // base name of the file, e.g. "test.smtp0.scr"
	Procs map[string]*Proc
	Cases []*TestCase
}

// ParseFile reads and parses the script at path.
func ParseFile(path string) (*Script, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(filepath.Base(path), src)
}

// Parse parses script source; name is used as Script.File and in errors.
func Parse(name string, src []byte) (*Script, error) {
	toks, err := Tokenize(name, src)
	if err != nil {
		return nil, err
	}
	p := &parser{file: name, toks: toks}
	s := &Script{File: name, Procs: map[string]*Proc{}}
	if err := p.parseFile(s); err != nil {
		return nil, err
	}
	if err := checkCalls(s); err != nil {
		return nil, err
	}
	return s, nil
}

type parser struct {
	file string
	toks []Token
	pos  int
}

func (p *parser) peek() Token { return p.toks[p.pos] }

func (p *parser) next() Token {
	t := p.toks[p.pos]
	if t.Kind != TokEOF {
		p.pos++
	}
	return t
}

func (p *parser) errf(t Token, format string, a ...any) error {
	return &ParseError{File: p.file, Line: t.Line, Msg: fmt.Sprintf(format, a...)}
}

func (p *parser) isWord(w string) bool {
	t := p.peek()
	return t.Kind == TokWord && t.Text == w
}

func (p *parser) isPunct(c string) bool {
	t := p.peek()
	return t.Kind == TokPunct && t.Text == c
}

func (p *parser) skipNewlines() {
	for p.peek().Kind == TokNewline {
		p.next()
	}
}

// name accepts a quoted string or a bare non-keyword word.
func (p *parser) name(what string) (string, error) {
	t := p.next()
	if t.Kind == TokString || (t.Kind == TokWord && !isKeyword(t.Text)) {
		return t.Text, nil
	}
	return "", p.errf(t, "expected %s, got %s", what, t)
}

func (p *parser) number(what string) (Token, error) {
	t := p.next()
	if t.Kind != TokNumber || t.Num < 0 {
		return t, p.errf(t, "expected %s (a non-negative number), got %s", what, t)
	}
	return t, nil
}

func (p *parser) endOfLine() error {
	if t := p.peek(); t.Kind != TokNewline && t.Kind != TokEOF {
		return p.errf(t, "expected end of line, got %s", t)
	}
	return nil
}

func (p *parser) parseFile(s *Script) error {
	for {
		p.skipNewlines()
		t := p.peek()
		switch {
		case t.Kind == TokEOF:
			return nil
		case p.isWord("proc"):
			p.next()
			pr := &Proc{Line: t.Line}
			var err error
			if pr.Name, err = p.name("procedure name"); err != nil {
				return err
			}
			if _, dup := s.Procs[pr.Name]; dup {
				return p.errf(t, "procedure %q already defined", pr.Name)
			}
			for p.isPunct("%") {
				p.next()
				v, err := p.name("parameter name")
				if err != nil {
					return err
				}
				pr.Params = append(pr.Params, v)
			}
			if pr.Body, err = p.block(); err != nil {
				return err
			}
			s.Procs[pr.Name] = pr
		case p.isWord("test-case"):
			p.next()
			tc := &TestCase{Index: len(s.Cases) + 1, Line: t.Line}
			if err := p.caseOptions(tc); err != nil {
				return err
			}
			var err error
			if tc.Body, err = p.block(); err != nil {
				return err
			}
			s.Cases = append(s.Cases, tc)
		case p.isWord("include"):
			return p.errf(t, "include is not supported")
		default:
			return p.errf(t, "expected proc or test-case, got %s", t)
		}
		if err := p.endOfLine(); err != nil {
			return err
		}
	}
}

func (p *parser) caseOptions(tc *TestCase) error {
	for {
		t := p.peek()
		switch {
		case p.isWord("name"):
			p.next()
			n, err := p.name("test-case name")
			if err != nil {
				return err
			}
			tc.Name = n
		case p.isWord("no-autoconnect"):
			p.next()
			tc.NoAutoConnect = true
		case p.isWord("expect"):
			p.next()
			if !p.isWord("fail") {
				return p.errf(p.peek(), "expected \"fail\" after test-case option expect, got %s", p.peek())
			}
			p.next()
			tc.ExpectFail = true
		case p.isWord("skip"):
			p.next()
			tc.Skip = true
		case p.isPunct("{"):
			return nil
		default:
			return p.errf(t, "unexpected %s in test-case options", t)
		}
	}
}

func (p *parser) block() (*Stmt, error) {
	t := p.next()
	if t.Kind != TokPunct || t.Text != "{" {
		return nil, p.errf(t, "expected {, got %s", t)
	}
	b := &Stmt{Op: OpBlock, Line: t.Line}
	for {
		p.skipNewlines()
		if p.isPunct("}") {
			p.next()
			return b, nil
		}
		if p.peek().Kind == TokEOF {
			return nil, p.errf(t, "block opened here is not closed")
		}
		st, err := p.statement()
		if err != nil {
			return nil, err
		}
		b.Body = append(b.Body, st)
		if n := p.peek(); n.Kind != TokNewline && !p.isPunct("}") {
			return nil, p.errf(n, "expected newline or } after statement, got %s", n)
		}
	}
}

func (p *parser) statement() (*Stmt, error) {
	t := p.peek()
	if p.isPunct("{") {
		return p.block()
	}
	if t.Kind != TokWord {
		return nil, p.errf(t, "expected a statement, got %s", t)
	}
	p.next()
	st := &Stmt{Line: t.Line}
	var err error
	switch t.Text {
	case "repeat":
		var n Token
		if n, err = p.number("repeat count"); err != nil {
			return nil, err
		}
		st.Op, st.Count = OpRepeat, int(n.Num)
		st.Child, err = p.statement()
	case "random":
		var b *Stmt
		if b, err = p.block(); err == nil {
			st.Op, st.Body = OpRandom, b.Body
		}
	case "call":
		st.Op = OpCall
		st.Text, err = p.name("procedure name")
	case "noop":
		st.Op = OpNoop
	case "fail":
		st.Op = OpFail
		st.Text, err = p.name("failure reason")
	case "connect":
		st.Op, st.Port = OpConnect, 25
		if st.Text, err = p.name("host name"); err == nil && p.isWord("port") {
			p.next()
			pt := p.next()
			switch {
			case pt.Kind == TokNumber && pt.Num > 0 && pt.Num < 65535:
				st.Port = int(pt.Num)
			case pt.Kind == TokString || pt.Kind == TokWord:
				if st.Port, err = lookupPort(pt.Text); err != nil {
					err = p.errf(pt, "%v", err)
				}
			default:
				err = p.errf(pt, "invalid port %s", pt)
			}
		}
	case "disconnect":
		st.Op = OpDisconnect
	case "starttls":
		st.Op = OpStartTLS
	case "sleep":
		st.Op = OpSleep
		st.Duration, err = p.duration()
	case "write", "writeln":
		st.Op = OpWrite
		st.Text, err = p.name("string to write")
		if t.Text == "writeln" {
			st.Text += "\r\n"
		}
	case "expect":
		err = p.expect(st)
	default:
		return nil, p.errf(t, "unknown statement %s", t)
	}
	if err != nil {
		return nil, err
	}
	return st, nil
}

func (p *parser) expect(st *Stmt) error {
	t := p.next()
	if t.Kind == TokWord && t.Text == "disconnect" {
		st.Op = OpExpectDisconnect
		return nil
	}
	if t.Kind != TokWord || t.Text != "smtp" {
		return p.errf(t, "expected smtp or disconnect after expect, got %s", t)
	}
	st.Op, st.Expect = OpExpectSMTP, ExpectAny
	if n := p.peek(); n.Kind == TokWord {
		for i, w := range expectWords {
			if i > 0 && n.Text == w {
				p.next()
				st.Expect = Expect(i)
				return nil
			}
		}
		return p.errf(n, "unknown reply class %s (want ok, helo, tempfail or permfail)", n)
	}
	return nil
}

// duration parses "N" (milliseconds) or "N unit" / "Nunit" with unit one of
// ms, s, m, h.
func (p *parser) duration() (time.Duration, error) {
	t := p.next()
	var num, unit string
	switch t.Kind {
	case TokNumber:
		num = t.Text
		if u := p.peek(); u.Kind == TokWord && isDurationUnit(u.Text) {
			unit = p.next().Text
		}
	case TokWord:
		i := 0
		for i < len(t.Text) && isDigit(t.Text[i]) {
			i++
		}
		num, unit = t.Text[:i], t.Text[i:]
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || (unit != "" && !isDurationUnit(unit)) {
		return 0, p.errf(t, "invalid duration %s", t)
	}
	mult := map[string]time.Duration{"": time.Millisecond, "ms": time.Millisecond,
		"s": time.Second, "m": time.Minute, "h": time.Hour}[unit]
	return time.Duration(n) * mult, nil
}

func isDurationUnit(u string) bool { return u == "ms" || u == "s" || u == "m" || u == "h" }

func lookupPort(s string) (int, error) {
	switch s {
	case "smtp":
		return 25, nil
	case "submission":
		return 587, nil
	case "smtps", "submissions":
		return 465, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 || n >= 65535 {
		return 0, fmt.Errorf("invalid port %q", s)
	}
	return n, nil
}

// checkCalls verifies that every call names an existing procedure and that
// procedures do not call themselves, directly or indirectly.
func checkCalls(s *Script) error {
	const (
		unvisited = iota
		active
		done
	)
	state := map[string]int{}
	var visitProc func(pr *Proc) error
	var visit func(st *Stmt) error
	visit = func(st *Stmt) error {
		if st == nil {
			return nil
		}
		if st.Op == OpCall {
			pr, ok := s.Procs[st.Text]
			if !ok {
				return &ParseError{File: s.File, Line: st.Line, Msg: fmt.Sprintf("call to undefined proc %q", st.Text)}
			}
			switch state[pr.Name] {
			case active:
				return &ParseError{File: s.File, Line: st.Line, Msg: fmt.Sprintf("recursive call to proc %q", st.Text)}
			case unvisited:
				return visitProc(pr)
			}
		}
		for _, c := range st.Body {
			if err := visit(c); err != nil {
				return err
			}
		}
		return visit(st.Child)
	}
	visitProc = func(pr *Proc) error {
		state[pr.Name] = active
		if err := visit(pr.Body); err != nil {
			return err
		}
		state[pr.Name] = done
		return nil
	}
	for _, pr := range s.Procs {
		if state[pr.Name] == unvisited {
			if err := visitProc(pr); err != nil {
				return err
			}
		}
	}
	for _, tc := range s.Cases {
		if err := visit(tc.Body); err != nil {
			return err
		}
	}
	return nil
}
