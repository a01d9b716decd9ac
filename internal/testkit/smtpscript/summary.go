package smtpscript

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Outcome returns "pass", "FAIL", "skip" or "xfail" (an "expect fail" case
// that failed as it should).
func (r CaseResult) Outcome() string {
	switch {
	case r.Skipped:
		return "skip"
	case r.Pass && r.ExpectFail:
		return "xfail"
	case r.Pass:
		return "pass"
	}
	return "FAIL"
}

// Label is the case name, or "<file:line>" / "#index" when it has none.
func (r CaseResult) Label() string {
	switch {
	case r.Name != "":
		return r.Name
	case r.Line > 0:
		return fmt.Sprintf("<%s:%d>", r.File, r.Line)
	}
	return "#" + strconv.Itoa(r.Index)
}

// Summary renders results as a table (one row per case, with the failure
// reason), followed by per-file and overall totals.
func Summary(results []CaseResult) string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FILE\t#\tCASE\tRESULT\tDETAIL")
	type tally struct{ pass, fail, skip int }
	var files []string
	per := map[string]*tally{}
	var all tally
	for _, r := range results {
		t := per[r.File]
		if t == nil {
			t = &tally{}
			per[r.File] = t
			files = append(files, r.File)
		}
		switch {
		case r.Skipped:
			t.skip++
			all.skip++
		case r.Pass:
			t.pass++
			all.pass++
		default:
			t.fail++
			all.fail++
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", r.File, r.Index, clip(r.Label(), 50), r.Outcome(), clip(r.Err, 110))
	}
	tw.Flush()
	b.WriteByte('\n')
	for _, f := range files {
		t := per[f]
		fmt.Fprintf(&b, "%s: %d/%d passed", f, t.pass, t.pass+t.fail)
		if t.skip > 0 {
			fmt.Fprintf(&b, ", %d skipped", t.skip)
		}
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "total: %d/%d passed, %d failed, %d skipped\n", all.pass, all.pass+all.fail, all.fail, all.skip)
	return b.String()
}

// Expectation is one row of a calibration file such as
// calibration-aiosmtpd-1.4.3.tsv.
type Expectation struct {
	File   string
	Index  int
	Name   string
	Pass   bool
	Detail string
}

// LoadExpectations reads a calibration TSV with the columns
// scenario_file, case_index, name, result ("pass"/"fail"), detail.
func LoadExpectations(path string) ([]Expectation, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Expectation
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), "\r")
		if n == 1 || line == "" {
			continue // header
		}
		cols := strings.Split(line, "\t")
		for len(cols) < 5 {
			cols = append(cols, "")
		}
		idx, err := strconv.Atoi(cols[1])
		if err != nil || cols[0] == "" || (cols[3] != "pass" && cols[3] != "fail") {
			return nil, fmt.Errorf("%s:%d: malformed row %q", path, n, line)
		}
		out = append(out, Expectation{File: cols[0], Index: idx, Name: cols[2], Pass: cols[3] == "pass", Detail: cols[4]})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no rows", path)
	}
	return out, nil
}

// Compare matches results to expectations by file and index and returns
// one message per difference (nil when all match). Results for files that
// have no expectations at all are ignored; a missing result, a name
// mismatch or a different pass/fail outcome is reported.
func Compare(results []CaseResult, exps []Expectation) []string {
	type key struct {
		file  string
		index int
	}
	got := map[key]CaseResult{}
	for _, r := range results {
		got[key{r.File, r.Index}] = r
	}
	var diffs []string
	for _, e := range exps {
		r, ok := got[key{e.File, e.Index}]
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("%s #%d%s: no result", e.File, e.Index, inParens(e.Name)))
		case e.Name != "" && r.Name != e.Name:
			diffs = append(diffs, fmt.Sprintf("%s #%d: name %q, expected %q", e.File, e.Index, r.Name, e.Name))
		case r.Pass != e.Pass:
			want, gotS := "fail", "pass"
			if e.Pass {
				want, gotS = "pass", "fail: "+r.Err
			}
			diffs = append(diffs, fmt.Sprintf("%s #%d%s: expected %s, got %s", e.File, e.Index, inParens(r.Name), want, gotS))
		}
	}
	return diffs
}

func inParens(name string) string {
	if name == "" {
		return ""
	}
	return " (" + name + ")"
}

// conformancePath is where the smtp-conformance data set lives in the
// repository, relative to the module root (see its README.md for the
// sources and licences).
const conformancePath = "internal/testkit/smtpscript/testdata/smtp-conformance"

// ConformanceDir locates the repository's copy of the smtp-conformance
// data set (opensmtpd-smtpscript/ and aiosmtpd/) by walking up from the
// working directory to go.mod, so that tests of any package can use it.
func ConformanceDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("smtp-conformance data: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			d := filepath.Join(dir, filepath.FromSlash(conformancePath))
			if !isDir(filepath.Join(d, "opensmtpd-smtpscript")) {
				return "", fmt.Errorf("smtp-conformance data: %s has no opensmtpd-smtpscript/", d)
			}
			return d, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("smtp-conformance data: go.mod not found above the working directory")
		}
		dir = parent
	}
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}
