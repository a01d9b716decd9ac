package classify

import (
	"regexp"
	"regexp/syntax"
	"strings"
	"unicode"
	"unicode/utf8"
)

// pattern is a compiled text expression with a cheap prefilter: the
// expression can only match a text that contains one of lits (in the
// folded form foldText produces). Running ~90 rules' regular expressions
// over every reply is the classifier's main cost; most rules are ruled
// out by a substring search instead.
type pattern struct {
	src  string
	re   *regexp.Regexp
	lits []string // nil: no prefilter
}

func compilePattern(src string) (pattern, error) {
	re, err := regexp.Compile("(?i)" + src)
	if err != nil {
		return pattern{}, err
	}
	p := pattern{src: src, re: re}
	if tree, err := syntax.Parse(src, syntax.Perl|syntax.FoldCase); err == nil {
		p.lits = requiredLiterals(tree.Simplify())
	}
	return p, nil
}

// match reports whether the expression matches text; folded is
// foldText(text).
func (p *pattern) match(text, folded string) bool {
	if p.lits != nil {
		found := false
		for _, l := range p.lits {
			if strings.Contains(folded, l) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return p.re.MatchString(text)
}

// requiredLiterals returns literals (lower-case ASCII) at least one of
// which every match must contain, or nil when it cannot tell.
func requiredLiterals(re *syntax.Regexp) []string {
	switch re.Op {
	case syntax.OpLiteral:
		s := string(re.Rune)
		for i := 0; i < len(s); i++ {
			if s[i] >= utf8.RuneSelf {
				return nil
			}
		}
		return []string{strings.ToLower(s)}
	case syntax.OpCapture, syntax.OpPlus:
		return requiredLiterals(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return requiredLiterals(re.Sub[0])
		}
	case syntax.OpConcat:
		// The child whose shortest literal is longest filters best.
		var best []string
		bestLen := 0
		for _, sub := range re.Sub {
			lits := requiredLiterals(sub)
			if lits == nil {
				continue
			}
			short := len(lits[0])
			for _, l := range lits {
				short = min(short, len(l))
			}
			if short > bestLen {
				best, bestLen = lits, short
			}
		}
		return best
	case syntax.OpAlternate:
		var all []string
		for _, sub := range re.Sub {
			lits := requiredLiterals(sub)
			if lits == nil {
				return nil
			}
			all = append(all, lits...)
		}
		return all
	}
	return nil
}

// foldText lower-cases text for the prefilter, mapping every character
// that case-folds to an ASCII letter (such as the Kelvin sign) to that
// letter, so the prefilter never rejects what (?i) would match.
func foldText(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		if r < utf8.RuneSelf {
			if 'A' <= r && r <= 'Z' {
				r += 'a' - 'A'
			}
			b.WriteByte(byte(r))
			continue
		}
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			if f < utf8.RuneSelf {
				r = unicode.ToLower(f)
				break
			}
		}
		b.WriteRune(r)
	}
	return b.String()
}
