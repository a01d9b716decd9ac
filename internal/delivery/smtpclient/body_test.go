package smtpclient

import (
	"bufio"
	"bytes"
	"testing"
)

func encodeBody(body []byte) string {
	var buf bytes.Buffer
	w := bufio.NewWriterSize(&buf, 16) // small, to exercise large writes
	writeBody(w, body)
	w.Flush()
	return buf.String()
}

func TestWriteBody(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ".\r\n"},
		{"a\r\n", "a\r\n.\r\n"},
		{"a", "a\r\n.\r\n"},
		{".", "..\r\n.\r\n"},
		{".\r\n", "..\r\n.\r\n"},
		{"a\r\n.\r\nb\r\n", "a\r\n..\r\nb\r\n.\r\n"},
		{"..x\r\n.y", "...x\r\n..y\r\n.\r\n"},
		{"a\nb\n", "a\r\nb\r\n.\r\n"},
		{"a\n.\nb", "a\r\n..\r\nb\r\n.\r\n"},
		{"a\r.\r\nb", "a\r\n..\r\nb\r\n.\r\n"}, // bare CR cannot smuggle an end of data
		{"a\r", "a\r\n.\r\n"},
		{"\r\n\r\n", "\r\n\r\n.\r\n"},
		{"\n", "\r\n.\r\n"},
		{"x.y\r\n a.\r\n", "x.y\r\n a.\r\n.\r\n"},
		{"a\r\r\nb", "a\r\n\r\nb\r\n.\r\n"},
	} {
		if got := encodeBody([]byte(tc.in)); got != tc.want {
			t.Errorf("writeBody(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// referenceBody is a byte-at-a-time implementation of writeBody.
func referenceBody(body []byte) string {
	var out []byte
	bol := true
	for i := 0; i < len(body); i++ {
		b := body[i]
		if bol && b == '.' {
			out = append(out, '.')
		}
		bol = false
		switch {
		case b == '\r' && i+1 < len(body) && body[i+1] == '\n':
			out = append(out, "\r\n"...)
			i++
			bol = true
		case b == '\r' || b == '\n':
			out = append(out, "\r\n"...)
			bol = true
		default:
			out = append(out, b)
		}
	}
	if !bol {
		out = append(out, "\r\n"...)
	}
	return string(append(out, ".\r\n"...))
}

// unstuff decodes DATA content the way a server does and reports whether
// the end-of-data line appears exactly once, at the end, and every line
// ends in CRLF with no bare CR or LF.
func unstuff(wire string) (string, bool) {
	var out []byte
	for len(wire) > 0 {
		i := bytes.Index([]byte(wire), []byte("\r\n"))
		if i < 0 {
			return "", false
		}
		line := wire[:i]
		wire = wire[i+2:]
		if bytes.ContainsAny([]byte(line), "\r\n") {
			return "", false
		}
		if line == "." {
			return string(out), wire == ""
		}
		if len(line) > 0 && line[0] == '.' {
			line = line[1:]
		}
		out = append(out, line...)
		out = append(out, "\r\n"...)
	}
	return "", false
}

func FuzzWriteBody(f *testing.F) {
	for _, s := range []string{"", "a\r\n.\r\n", ".\n.", "\r.\r\n", "x\ry\nz", "\r\n.\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got := encodeBody(body)
		if want := referenceBody(body); got != want {
			t.Fatalf("writeBody(%q) = %q, reference %q", body, got, want)
		}
		if _, ok := unstuff(got); !ok {
			t.Fatalf("writeBody(%q) = %q is not well-formed DATA", body, got)
		}
	})
}

func newDiscardWriter(buf *bytes.Buffer) *bufio.Writer {
	return bufio.NewWriterSize(buf, writeBufferSize)
}
