package importcsv

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
)

// read collects what Read gives for body.
func read(t *testing.T, body string) ([]Entry, error) {
	t.Helper()
	var out []Entry
	err := Read(body, func(e Entry) error { out = append(out, e); return nil })
	return out, err
}

func TestRead(t *testing.T) {
	huge := strings.Repeat("x", 3<<20)
	for _, c := range []struct {
		name, body string
		want       []Entry
		err        string
	}{
		{"empty", "", nil, ""},
		{"only a header", "entry,reason,detail\n", nil, ""},
		{"no header", "a@x.test\nb@x.test,complaint\nc@x.test,manual,note\n", []Entry{
			{1, "a@x.test", "", ""}, {2, "b@x.test", "complaint", ""}, {3, "c@x.test", "manual", "note"}}, ""},
		{"crlf and no last line end", "entry,reason\r\na@x.test,manual\r\n\r\nb@x.test", []Entry{
			{2, "a@x.test", "manual", ""}, {4, "b@x.test", "", ""}}, ""},
		{"bom", "\ufeffentry,reason\na@x.test,manual\n", []Entry{{2, "a@x.test", "manual", ""}}, ""},
		{"quotes", "\"a@x.test\",\"manual\",\"say \"\"hi\"\", twice\"\n\"b@x.test\",,\"two\r\nlines\"\nnext@x.test\n", []Entry{
			{1, "a@x.test", "manual", "say \"hi\", twice"}, {2, "b@x.test", "", "two\nlines"}, {4, "next@x.test", "", ""}}, ""},
		{"text after a closing quote", "ok@x.test\n\"a\"@x.test,manual\n", nil, "line 2: " + ErrQuote.Error()},
		{"bare quote", "ok@x.test\nbad\"@x.test,manual\n", nil, "line 2: " + ErrBareQuote.Error()},
		{"unterminated quote", "ok@x.test\n\"bad@x.test,manual\nmore\n", nil, "line 2: " + ErrQuote.Error()},
		{"skips entries left empty", ",manual\n\na@x.test\n", []Entry{{3, "a@x.test", "", ""}}, ""},
		{"header names the columns", "Line, Detail ,entry,created_at\n7,d,a@x.test,2026\n3,,b@x.test\n", []Entry{
			{7, "a@x.test", "", "d"}, {3, "b@x.test", "", ""}}, ""},
		{"bad line number", "line,entry\nx,a@x.test\n", nil, `line 2: bad line number "x"`},
		{"header without entry", "line,reason\n", nil, "line 1: the header has no entry column"},
		{"huge line", "a@x.test,manual," + huge + "\nb@x.test\n", []Entry{{1, "a@x.test", "manual", huge}, {2, "b@x.test", "", ""}}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := read(t, c.body)
			if c.err != "" {
				if err == nil || err.Error() != c.err {
					t.Fatalf("err %v, want %s", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got %+v\nwant %+v", got, c.want)
			}
		})
	}
}

// TestSplitRecord: the records a bufio.Scanner gives with SplitRecord,
// with small buffers so that records cross reads.
func TestSplitRecord(t *testing.T) {
	in := "a,b\r\n\"multi\nline\",x\n\nlast"
	sc := bufio.NewScanner(iotestOneByte(in))
	sc.Split(SplitRecord)
	var got []string
	for sc.Scan() {
		got = append(got, sc.Text())
	}
	if want := []string{"a,b", "\"multi\nline\",x", "", "last"}; sc.Err() != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q (%v), want %q", got, sc.Err(), want)
	}
}

func iotestOneByte(s string) io.Reader { return &oneByte{s} }

type oneByte struct{ s string }

func (r *oneByte) Read(p []byte) (int, error) {
	if r.s == "" {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	p[0], r.s = r.s[0], r.s[1:]
	return 1, nil
}

// FuzzFields: Next and Fields split a body as encoding/csv does (for the
// inputs encoding/csv accepts), and refuse what it refuses, lone \r and
// empty-line subtleties aside.
func FuzzFields(f *testing.F) {
	for _, s := range []string{"a,b,c\n", "\"a\"\"b\",c\r\n", "\"x\ny\",z\n\nq", "a\"b", "\"a\"b", ",,\n", "\"a\r\nb\""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		if strings.Contains(body, "\r") && strings.ContainsAny(strings.ReplaceAll(body, "\r\n", ""), "\r") {
			return // encoding/csv turns a lone \r into \n in places; no CSV of ours has one
		}
		r := csv.NewReader(strings.NewReader(body))
		r.FieldsPerRecord = -1
		var want [][]string
		var wantErr error
		for {
			rec, err := r.Read()
			if err == io.EOF {
				break
			}
			if err != nil {
				wantErr = err
				break
			}
			want = append(want, rec)
		}
		var got [][]string
		var gotErr error
		for rec, rest, ok := Next(body); ok; rec, rest, ok = Next(rest) {
			if rec == "" {
				continue // an empty line: encoding/csv skips it too
			}
			fields, err := Fields(rec, nil)
			if err != nil {
				gotErr = err
				break
			}
			got = append(got, fields)
		}
		if (gotErr == nil) != (wantErr == nil) {
			t.Fatalf("%q: error %v, encoding/csv %v", body, gotErr, wantErr)
		}
		if wantErr == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("%q:\ngot  %q\nwant %q", body, got, want)
		}
		if gotErr != nil && !errors.Is(gotErr, ErrQuote) && !errors.Is(gotErr, ErrBareQuote) {
			t.Fatalf("%q: unexpected error %v", body, gotErr)
		}
		// Read never fails on what Fields takes, nor panics on anything.
		_ = Read(body, func(Entry) error { return nil })
	})
}

func BenchmarkRead(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("line,entry,reason,detail\n")
	for i := range 20000 {
		fmt.Fprintf(&sb, "%d,u%016x@d%03d.example.com,unsubscribe,\n", i+1, i*7919, i%1000)
	}
	body := sb.String()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		if err := Read(body, func(Entry) error { n++; return nil }); err != nil || n != 20000 {
			b.Fatal(n, err)
		}
	}
}
