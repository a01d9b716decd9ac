// Package importcsv reads the CSV of a suppression import, cheaply: the
// CLI splits a file into records with SplitRecord (for bufio.Scanner) and
// the server walks a request body with Next, and both take a record
// apart with Fields, which returns substrings of the record and
// allocates only for a quoted field holding a doubled quote or a CRLF.
// encoding/csv copies every record and every field; for an import of
// millions of short lines that copying was a large part of the cost
// (docs/performance.md).
//
// The dialect is encoding/csv's default one (RFC 4180): comma-separated,
// a field may be quoted with "..." and then hold commas, line ends and
// doubled quotes; a quote in an unquoted field, or anything but a comma
// after a closing quote, is an error. Records end at a line end (\n or
// \r\n) outside quotes; empty lines are records with no fields and are
// skipped by the callers. Unlike encoding/csv, a UTF-8 byte order mark at
// the start of the input is dropped (StripBOM): spreadsheets write one.
package importcsv

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// ContentType is the media type of a CSV import body.
const ContentType = "text/csv"

// MaxRecord is the longest record the CLI reads (bufio.Scanner's limit).
const MaxRecord = 16 << 20

// recordEnd returns the length of s's first record and whether its line
// end was found (outside quotes).
func recordEnd[T string | []byte](s T) (int, bool) {
	quoted := false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			quoted = !quoted // a doubled quote toggles twice
		case '\n':
			if !quoted {
				return i, true
			}
		}
	}
	return len(s), false
}

// trimCR drops the \r of a \r\n line end.
func trimCR[T string | []byte](s T) T {
	if n := len(s); n > 0 && s[n-1] == '\r' {
		return s[:n-1]
	}
	return s
}

// SplitRecord is a bufio.SplitFunc whose tokens are CSV records without
// their line end. A record's line count is strings.Count(token, "\n")+1
// (a quoted field may span lines).
func SplitRecord(data []byte, atEOF bool) (advance int, token []byte, err error) {
	n, found := recordEnd(data)
	switch {
	case found:
		return n + 1, trimCR(data[:n]), nil
	case atEOF && len(data) > 0:
		return len(data), trimCR(data), nil
	}
	return 0, nil, nil // more data, or the end
}

// Next returns the first record of s (without its line end) and what
// follows it; ok is false when s is empty.
func Next(s string) (rec, rest string, ok bool) {
	if s == "" {
		return "", "", false
	}
	n, found := recordEnd(s)
	if !found {
		return trimCR(s), "", true
	}
	return trimCR(s[:n]), s[n+1:], true
}

// StripBOM drops a UTF-8 byte order mark at the start of s.
func StripBOM(s string) string { return strings.TrimPrefix(s, "\ufeff") }

// Errors of Fields, as encoding/csv words them.
var (
	ErrBareQuote = errors.New(`bare " in non-quoted field`)
	ErrQuote     = errors.New(`extraneous or missing " in quoted field`)
)

// Fields appends the fields of rec to dst and returns it. Unquoted fields
// and quoted ones without "" or \r\n are substrings of rec.
func Fields(rec string, dst []string) ([]string, error) {
	if rec == "" {
		return dst, nil
	}
	for {
		if rec != "" && rec[0] == '"' {
			// Quoted: up to the quote not followed by another.
			i, escaped := 1, false
			for {
				j := strings.IndexByte(rec[i:], '"')
				if j < 0 {
					return dst, ErrQuote // unterminated
				}
				i += j
				if i+1 < len(rec) && rec[i+1] == '"' {
					i, escaped = i+2, true
					continue
				}
				break
			}
			f := rec[1:i]
			if escaped {
				f = strings.ReplaceAll(f, `""`, `"`)
			}
			if strings.Contains(f, "\r\n") {
				f = strings.ReplaceAll(f, "\r\n", "\n") // as encoding/csv does
			}
			dst = append(dst, f)
			rec = rec[i+1:]
			if rec == "" {
				return dst, nil
			}
			if rec[0] != ',' {
				return dst, ErrQuote
			}
			rec = rec[1:]
			continue
		}
		i := strings.IndexByte(rec, ',')
		f := rec
		if i >= 0 {
			f = rec[:i]
		}
		if strings.IndexByte(f, '"') >= 0 {
			return dst, ErrBareQuote
		}
		dst = append(dst, f)
		if i < 0 {
			return dst, nil
		}
		rec = rec[i+1:]
	}
}

// Entry is one line of an import.
type Entry struct {
	Line                  int // in the caller's file when the body has a line column
	Entry, Reason, Detail string
}

// Read calls fn for each entry of an import body, in order. Without a
// header the columns are entry, reason, detail (reason and detail may be
// left out). A first record whose first field is "entry" or "line" (any
// case) is a header naming the columns: line, entry, reason and detail
// are read, others ignored (an export's created_at and expires_at). The
// CLI sends "line,entry,reason,detail" so that refusals name the lines
// of its file, which it sends sorted. Records without an entry (empty
// lines included) are skipped. A malformed record stops the reading with
// an error naming its line.
func Read(body string, fn func(Entry) error) error {
	columns := [4]string{"line", "entry", "reason", "detail"}
	col := [4]int{-1, 0, 1, 2} // where each of columns is
	var fields []string
	next, first := 1, true
	for rec, rest, ok := Next(StripBOM(body)); ok; rec, rest, ok = Next(rest) {
		line := next
		next++
		if strings.IndexByte(rec, '"') >= 0 {
			next += strings.Count(rec, "\n")
		}
		if rec == "" {
			continue
		}
		var err error
		if fields, err = Fields(rec, fields[:0]); err != nil {
			return fmt.Errorf("line %d: %w", line, err)
		}
		if first {
			first = false
			if h := strings.TrimSpace(fields[0]); strings.EqualFold(h, "entry") || strings.EqualFold(h, "line") {
				col = [4]int{-1, -1, -1, -1}
				for i, f := range fields {
					if k := slices.IndexFunc(columns[:], func(c string) bool { return strings.EqualFold(c, strings.TrimSpace(f)) }); k >= 0 && col[k] < 0 {
						col[k] = i
					}
				}
				if col[1] < 0 {
					return fmt.Errorf("line %d: the header has no entry column", line)
				}
				continue
			}
		}
		e := Entry{Line: line, Entry: pick(fields, col[1]), Reason: pick(fields, col[2]), Detail: pick(fields, col[3])}
		if e.Entry == "" {
			continue
		}
		if col[0] >= 0 {
			if e.Line, err = strconv.Atoi(pick(fields, col[0])); err != nil {
				return fmt.Errorf("line %d: bad line number %q", line, pick(fields, col[0]))
			}
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

// pick is fields[i], or "" when the record has no such field (or the
// body no such column: i < 0).
func pick(fields []string, i int) string {
	if i < 0 || i >= len(fields) {
		return ""
	}
	return fields[i]
}
