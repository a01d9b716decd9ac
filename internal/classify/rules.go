package classify

import (
	_ "embed"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/BurntSushi/toml"
)

//go:embed rules.toml
var builtinRules []byte

// BuiltinSource is the Source of the rules embedded in the binary.
const BuiltinSource = "builtin"

// Rule is one classification rule as written in a rules file. All the
// conditions that are set must hold for the rule to match; within one
// list, any one entry is enough. An empty list is no condition.
type Rule struct {
	// Name identifies the rule: unique within a file, shown in results,
	// used to override or disable a built-in rule.
	Name string `toml:"name" json:"name"`
	// Class is the result when the rule matches.
	Class Class `toml:"class" json:"class"`
	// Codes are reply codes: "550", or with x for any digit: "5xx", "55x".
	Codes []string `toml:"codes" json:"codes,omitempty"`
	// Enhanced are RFC 3463 codes with * (or x) for any component:
	// "5.1.1", "*.2.2", "5.7.*". NotEnhanced excludes codes likewise.
	Enhanced    []string `toml:"enhanced" json:"enhanced,omitempty"`
	NotEnhanced []string `toml:"not_enhanced" json:"not_enhanced,omitempty"`
	// Phases are the dialogue steps the reply answered ("connect",
	// "ehlo", "mail", "rcpt", "data", ...); NotPhases excludes some.
	Phases    []string `toml:"phases" json:"phases,omitempty"`
	NotPhases []string `toml:"not_phases" json:"not_phases,omitempty"`
	// Text are regular expressions (RE2 syntax, case-insensitive) searched
	// in the reply text; NotText excludes replies whose text matches.
	Text    []string `toml:"text" json:"text,omitempty"`
	NotText []string `toml:"not_text" json:"not_text,omitempty"`
	// Provider names the mailbox provider the rule is about, if any.
	Provider string `toml:"provider" json:"provider,omitempty"`
	// EscalateAfter, when above zero, makes ClassifyAttempt answer
	// EscalateTo (default hard_bounce) from that attempt on.
	EscalateAfter int   `toml:"escalate_after" json:"escalate_after,omitempty"`
	EscalateTo    Class `toml:"escalate_to" json:"escalate_to,omitempty"`
	// Note says why the rule exists (documentation only).
	Note string `toml:"note" json:"note,omitempty"`
	// Source is where the rule came from: "builtin" or a file path.
	Source string `toml:"-" json:"source"`
}

// ruleFile is the schema of a rules file.
type ruleFile struct {
	// Disable lists names of earlier (built-in) rules to drop.
	Disable []string `toml:"disable"`
	Rules   []Rule   `toml:"rule"`
}

// Classifier maps replies to classes with an ordered list of rules: the
// first rule that matches decides. It is immutable and safe for
// concurrent use.
type Classifier struct {
	rules []*rule
}

// Load returns a classifier for the rules file at path. With replace
// false the file extends the built-in rules: its rules come first, a rule
// with the name of a built-in rule replaces it, and `disable` drops
// built-in rules by name. With replace true only the file's rules are
// used. An empty path gives the default classifier.
func Load(path string, replace bool) (*Classifier, error) {
	if path == "" {
		return Default(), nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("classify: %w", err)
	}
	return Compile(data, path, replace)
}

// Compile is Load for rules already read; source names them in results
// and errors.
func Compile(data []byte, source string, replace bool) (*Classifier, error) {
	if replace {
		return compile(data, source, nil)
	}
	return compile(data, source, Default())
}

// compile builds a classifier from data, followed by the rules of base
// that data neither replaces nor disables.
func compile(data []byte, source string, base *Classifier) (*Classifier, error) {
	f, err := parseFile(data, source)
	if err != nil {
		return nil, err
	}
	c := &Classifier{}
	names := map[string]bool{}
	for i := range f.Rules {
		r, err := compileRule(f.Rules[i], source)
		if err != nil {
			return nil, err
		}
		if names[r.Name] {
			return nil, fmt.Errorf("classify: %s: rule %q defined twice", source, r.Name)
		}
		names[r.Name] = true
		c.rules = append(c.rules, r)
	}
	if base == nil {
		if len(f.Disable) > 0 {
			return nil, fmt.Errorf("classify: %s: disable has no effect when the built-in rules are replaced", source)
		}
		return c, nil
	}
	known := map[string]bool{}
	for _, r := range base.rules {
		known[r.Name] = true
	}
	drop := map[string]bool{}
	for _, n := range f.Disable {
		if !known[n] {
			return nil, fmt.Errorf("classify: %s: disable: no built-in rule %q", source, n)
		}
		drop[n] = true
	}
	for _, r := range base.rules {
		if !drop[r.Name] && !names[r.Name] {
			c.rules = append(c.rules, r)
		}
	}
	return c, nil
}

// Rules returns the classifier's rules in the order they are tried.
func (c *Classifier) Rules() []Rule {
	out := make([]Rule, len(c.rules))
	for i, r := range c.rules {
		out[i] = r.Rule
	}
	return out
}

func parseFile(data []byte, source string) (ruleFile, error) {
	var f ruleFile
	md, err := toml.Decode(string(data), &f)
	if err != nil {
		return f, fmt.Errorf("classify: %s: %w", source, err)
	}
	if u := md.Undecoded(); len(u) > 0 {
		keys := make([]string, len(u))
		for i, k := range u {
			keys[i] = k.String()
		}
		return f, fmt.Errorf("classify: %s: unknown keys: %s", source, strings.Join(keys, ", "))
	}
	return f, nil
}

// rule is a compiled Rule.
type rule struct {
	Rule
	codes             []string // three characters, 'x' for any digit
	enh, notEnh       [][3]string
	phases, notPhases []string
	text, notText     []pattern
}

func compileRule(src Rule, source string) (*rule, error) {
	src.Source = source
	r := &rule{Rule: src}
	fail := func(format string, args ...any) (*rule, error) {
		return nil, fmt.Errorf("classify: %s: rule %q: %s", source, src.Name, fmt.Sprintf(format, args...))
	}
	if src.Name == "" {
		return nil, fmt.Errorf("classify: %s: a rule without a name (class %q)", source, src.Class)
	}
	if !src.Class.Valid() {
		return fail("unknown class %q", src.Class)
	}
	for _, c := range src.Codes {
		p, err := parseCodePattern(c)
		if err != nil {
			return fail("%v", err)
		}
		r.codes = append(r.codes, p)
	}
	var err error
	if r.enh, err = parseEnhancedPatterns(src.Enhanced); err != nil {
		return fail("enhanced: %v", err)
	}
	if r.notEnh, err = parseEnhancedPatterns(src.NotEnhanced); err != nil {
		return fail("not_enhanced: %v", err)
	}
	for _, p := range src.Phases {
		r.phases = append(r.phases, normPhase(p))
	}
	for _, p := range src.NotPhases {
		r.notPhases = append(r.notPhases, normPhase(p))
	}
	if r.text, err = compilePatterns(src.Text); err != nil {
		return fail("text: %v", err)
	}
	if r.notText, err = compilePatterns(src.NotText); err != nil {
		return fail("not_text: %v", err)
	}
	switch {
	case src.EscalateAfter < 0:
		return fail("escalate_after must not be negative")
	case src.EscalateTo != "" && src.EscalateAfter == 0:
		return fail("escalate_to without escalate_after")
	case src.EscalateAfter > 0 && src.EscalateTo == "":
		r.EscalateTo = HardBounce
	case src.EscalateTo != "" && (!src.EscalateTo.Valid() || src.EscalateTo == Delivered):
		return fail("bad escalate_to %q", src.EscalateTo)
	}
	return r, nil
}

func parseCodePattern(s string) (string, error) {
	p := strings.ToLower(strings.TrimSpace(s))
	if len(p) != 3 || p[0] < '2' || p[0] > '5' {
		return "", fmt.Errorf("bad code %q (want e.g. \"550\" or \"5xx\")", s)
	}
	for i := 1; i < 3; i++ {
		if p[i] != 'x' && (p[i] < '0' || p[i] > '9') {
			return "", fmt.Errorf("bad code %q (want e.g. \"550\" or \"5xx\")", s)
		}
	}
	return p, nil
}

func parseEnhancedPatterns(list []string) ([][3]string, error) {
	var out [][3]string
	for _, s := range list {
		parts := strings.Split(strings.TrimSpace(s), ".")
		if len(parts) != 3 {
			return nil, fmt.Errorf("bad enhanced code %q (want e.g. \"5.1.1\" or \"*.7.*\")", s)
		}
		var p [3]string
		for i, c := range parts {
			switch {
			case c == "*" || c == "x" || c == "X":
				p[i] = "*"
			case i == 0 && (c == "2" || c == "4" || c == "5"):
				p[i] = c
			case i > 0 && len(c) >= 1 && len(c) <= 3 && strings.Trim(c, "0123456789") == "":
				p[i] = strings.TrimLeft(c, "0")
				if p[i] == "" {
					p[i] = "0"
				}
			default:
				return nil, fmt.Errorf("bad enhanced code %q (want e.g. \"5.1.1\" or \"*.7.*\")", s)
			}
		}
		out = append(out, p)
	}
	return out, nil
}

func compilePatterns(list []string) ([]pattern, error) {
	var out []pattern
	for _, s := range list {
		if s == "" {
			return nil, errors.New("empty pattern")
		}
		p, err := compilePattern(s)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}
