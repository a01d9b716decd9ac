package smtpscript

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSummary(t *testing.T) {
	res := []CaseResult{
		{File: "a.scr", Index: 1, Line: 7, Pass: true},
		{File: "a.scr", Index: 2, Name: "named", Err: "line 9: expect smtp ok: got 550 no"},
		{File: "a.scr", Index: 3, Name: "x", Pass: true, ExpectFail: true},
		{File: "b.json", Index: 1, Name: "T.s", Skipped: true, Err: "skipped"},
	}
	got := Summary(res)
	for _, want := range []string{
		"FILE", "a.scr   1  <a.scr:7>", "pass",
		"named", "FAIL    line 9: expect smtp ok: got 550 no",
		"xfail", "skip",
		"a.scr: 2/3 passed\n", "b.json: 0/0 passed, 1 skipped\n",
		"total: 2/3 passed, 1 failed, 1 skipped\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("summary lacks %q:\n%s", want, got)
		}
	}
}

func TestExpectationsAndCompare(t *testing.T) {
	p := filepath.Join(t.TempDir(), "cal.tsv")
	tsv := "scenario_file\tcase_index\tname\tresult\tdetail\n" +
		"a.scr\t1\t\tpass\t\n" +
		"a.scr\t2\tnamed\tfail\texpected ok got '550 no'\n" +
		"a.scr\t3\t\tpass\t\n"
	if err := os.WriteFile(p, []byte(tsv), 0o600); err != nil {
		t.Fatal(err)
	}
	exps, err := LoadExpectations(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(exps) != 3 || exps[1] != (Expectation{File: "a.scr", Index: 2, Name: "named", Pass: false, Detail: "expected ok got '550 no'"}) {
		t.Fatalf("expectations: %+v", exps)
	}
	res := []CaseResult{
		{File: "a.scr", Index: 1, Pass: true},
		{File: "a.scr", Index: 2, Name: "renamed"},
		{File: "other.scr", Index: 1}, // no expectations for this file: ignored
	}
	diffs := Compare(res, exps)
	want := []string{`a.scr #2: name "renamed", expected "named"`, "a.scr #3: no result"}
	if strings.Join(diffs, "\n") != strings.Join(want, "\n") {
		t.Errorf("Compare:\n got %q\nwant %q", diffs, want)
	}
	res[1].Name = "named"
	res = append(res, CaseResult{File: "a.scr", Index: 3, Err: "boom"})
	diffs = Compare(res, exps)
	if len(diffs) != 1 || diffs[0] != "a.scr #3: expected pass, got fail: boom" {
		t.Errorf("Compare: %q", diffs)
	}
	if err := os.WriteFile(p, []byte("h\na.scr\tx\t\tmaybe\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadExpectations(p); err == nil {
		t.Error("malformed TSV accepted")
	}
}

// TestConformanceDir finds the in-repo data set from this package's
// directory and from a sibling package's, as the e2e tests use it.
func TestConformanceDir(t *testing.T) {
	d, err := ConformanceDir()
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := filepath.Abs(filepath.Join("testdata", "smtp-conformance")); d != want {
		t.Errorf("ConformanceDir() = %q, want %q", d, want)
	}
	t.Chdir(filepath.Join("..", "..", "e2e"))
	if d2, err := ConformanceDir(); err != nil || d2 != d {
		t.Errorf("from internal/e2e: ConformanceDir() = %q, %v; want %q", d2, err, d)
	}
}
