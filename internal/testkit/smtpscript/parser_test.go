package smtpscript

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestTokenize(t *testing.T) {
	src := "# comment\ntest-case name \"a \\\"b\\\"\" {\n\twriteln 'x\ny' # trailing\n" +
		"\tconnect 127.0.0.1 port 2525\n\tsleep 500ms\n\trepeat 3 {}\n\t- %p\n\t\"joined\\\nline\"\n}\n"
	toks, err := Tokenize("t", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, tk := range toks {
		got = append(got, tk.Kind.String()+":"+tk.Text)
	}
	want := []string{
		"newline:\n",
		"word:test-case", "word:name", `string:a "b"`, "punct:{", "newline:\n",
		"word:writeln", "string:x\ny", "newline:\n",
		"word:connect", "word:127.0.0.1", "word:port", "number:2525", "newline:\n",
		"word:sleep", "word:500ms", "newline:\n",
		"word:repeat", "number:3", "punct:{", "punct:}", "newline:\n",
		"punct:-", "punct:%", "word:p", "newline:\n",
		"string:joinedline", "newline:\n",
		"punct:}", "newline:\n", "EOF:",
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("tokens:\n got %q\nwant %q", got, want)
	}
	// Line numbers count the newline inside the quoted string.
	for _, tk := range toks {
		if tk.Kind == TokWord && tk.Text == "connect" && tk.Line != 5 {
			t.Errorf("connect on line %d, want 5", tk.Line)
		}
		if tk.Kind == TokNumber && tk.Num == 2525 && tk.Text != "2525" {
			t.Errorf("number token %+v", tk)
		}
	}
}

func TestTokenizeErrors(t *testing.T) {
	for _, src := range []string{"writeln \"open", "x = $var", "'x"} {
		_, err := Tokenize("f.scr", []byte(src))
		var pe *ParseError
		if !errors.As(err, &pe) || pe.File != "f.scr" || pe.Line != 1 {
			t.Errorf("Tokenize(%q) = %v, want a ParseError at f.scr:1", src, err)
		}
	}
}

func TestParse(t *testing.T) {
	src := `proc p0 %foo %bar {
	sleep 1
}
proc p1 { call p0 }

test-case { }
test-case name "named" no-autoconnect expect fail skip {
	repeat 2 repeat 3 noop
	random { call p1
		{ sleep 2s } }
	random {}
	connect "localhost" port 25
	connect h port smtp
	write "raw"
	writeln "HELO x"
	starttls
	disconnect
	fail "why"
	expect disconnect
	expect smtp
	expect smtp ok
	expect smtp helo
	expect smtp tempfail
	expect smtp permfail
}
`
	s, err := Parse("x.scr", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Procs) != 2 || len(s.Procs["p0"].Params) != 2 || len(s.Cases) != 2 {
		t.Fatalf("procs %v cases %d", s.Procs, len(s.Cases))
	}
	c0, c1 := s.Cases[0], s.Cases[1]
	if c0.Index != 1 || c0.Line != 6 || c0.Name != "" || c0.Label("x.scr") != "<x.scr:6>" || len(c0.Body.Body) != 0 {
		t.Errorf("case 1: %+v", c0)
	}
	if c1.Index != 2 || c1.Name != "named" || !c1.NoAutoConnect || !c1.ExpectFail || !c1.Skip {
		t.Errorf("case 2 options: %+v", c1)
	}
	want := `{ repeat 2 repeat 3 noop; random { call p1; { sleep 2000 } }; random { }; ` +
		`connect "localhost" port 25; connect "h" port 25; write "raw"; writeln "HELO x"; ` +
		`starttls; disconnect; fail "why"; expect disconnect; expect smtp; expect smtp ok; ` +
		`expect smtp helo; expect smtp tempfail; expect smtp permfail }`
	if got := c1.Body.String(); got != want {
		t.Errorf("body:\n got %s\nwant %s", got, want)
	}
	if d := c1.Body.Body[1].Body[1].Body[0].Duration; d != 2*time.Second {
		t.Errorf("sleep 2s parsed as %v", d)
	}
	if w := c1.Body.Body[6]; w.Op != OpWrite || w.Text != "HELO x\r\n" {
		t.Errorf("writeln: %+v", w)
	}
}

func TestParseErrors(t *testing.T) {
	cases := map[string]string{
		"undefined call":  "test-case { call nope }",
		"recursion":       "proc a { call b }\nproc b { call a }\ntest-case { call a }",
		"self recursion":  "proc a { call a }",
		"unclosed block":  "test-case {\n writeln \"x\"\n",
		"unknown stmt":    "test-case { frobnicate }",
		"bad class":       "test-case { expect smtp maybe }",
		"expect what":     "test-case { expect mail }",
		"two statements":  "test-case { noop noop }",
		"negative repeat": "test-case { repeat -1 noop }",
		"missing block":   "test-case name \"x\"\n",
		"duplicate proc":  "proc a {}\nproc a {}",
		"include":         "include \"other\"",
		"top-level stmt":  "writeln \"x\"",
		"bad duration":    "test-case { sleep 5 fortnights }",
		"bad port":        "test-case { connect \"h\" port 99999 }",
		"keyword as name": "test-case { call noop }",
		"junk after case": "test-case {} test-case {}",
	}
	for name, src := range cases {
		if _, err := Parse("e.scr", []byte(src)); err == nil {
			t.Errorf("%s: Parse(%q) succeeded", name, src)
		} else if !strings.HasPrefix(err.Error(), "e.scr:") {
			t.Errorf("%s: error %q lacks file:line", name, err)
		}
	}
}

func TestExpectAccepts(t *testing.T) {
	cases := []struct {
		e           Expect
		code, lines int
		ok          bool
	}{
		{ExpectAny, 220, 1, true}, {ExpectAny, 554, 3, true},
		{ExpectOK, 250, 1, true}, {ExpectOK, 354, 1, true}, {ExpectOK, 250, 2, false}, {ExpectOK, 450, 1, false},
		{ExpectHelo, 250, 5, true}, {ExpectHelo, 500, 1, false},
		{ExpectTempfail, 421, 1, true}, {ExpectTempfail, 550, 1, false}, {ExpectTempfail, 421, 2, false},
		{ExpectPermfail, 501, 1, true}, {ExpectPermfail, 451, 1, false}, {ExpectPermfail, 250, 1, false},
	}
	for _, c := range cases {
		if got := c.e.Accepts(c.code, c.lines); got != c.ok {
			t.Errorf("%v.Accepts(%d, %d) = %v", c.e, c.code, c.lines, got)
		}
	}
}

// TestParseSharedScripts parses every scenario of the data set.
func TestParseSharedScripts(t *testing.T) {
	dir := filepath.Join(conformanceDir(t), "opensmtpd-smtpscript")
	want := map[string]int{
		"test.base.scr": 7, "test.mailfrom.scr": 15, "test.rcptto.scr": 15, "test.smtp0.scr": 9,
		"test.smtp1.scr": 9, "test.smtp2.scr": 3, "test.smtp4.scr": 17, "test.tls.scr": 1,
	}
	for f, n := range want {
		s, err := ParseFile(filepath.Join(dir, f))
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if len(s.Cases) != n {
			t.Errorf("%s: %d cases, want %d", f, len(s.Cases), n)
		}
	}
	s, err := ParseFile(filepath.Join(dir, "test.smtp0.scr"))
	if err != nil {
		t.Fatal(err)
	}
	// Case 8 writes a raw newline inside the RCPT address on purpose.
	if got := s.Cases[7].Body.Body[5].Text; got != "RCPT TO: <gilles\n@localhost>\r\n" {
		t.Errorf("smtp0 case 8 statement 6 writes %q", got)
	}
	m, err := ParseFile(filepath.Join(dir, "test.mailfrom.scr"))
	if err != nil {
		t.Fatal(err)
	}
	if c := m.Cases[0]; c.Name != "mailfrom.empty" || c.Body.Body[0].String() != "call init-helo" {
		t.Errorf("mailfrom case 1: %q %s", c.Name, c.Body)
	}
}
