package domain

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// SignAdded returns a second DKIM-Signature field for a message to which
// header fields are added at delivery (added: CRLF-terminated fields, as
// the List-Unsubscribe and List-Unsubscribe-Post that name one delivery).
// msg is the stored message, its own DKIM-Signature of this domain first.
//
// Receivers such as Gmail and Yahoo honour one-click unsubscribe (RFC
// 8058) only when a valid DKIM signature covers List-Unsubscribe and
// List-Unsubscribe-Post; the stored signature cannot, since these fields
// name the delivery and are made after it. The new signature covers the
// added fields (listed twice, so one more added on the way breaks it) and
// everything the stored one covers, and reuses the stored body hash: the
// body is not read again, only the header is hashed and signed. The
// result goes on top of the added fields.
func (s *Signer) SignAdded(added, msg []byte) ([]byte, error) {
	hdr := msg
	if i := bytes.Index(msg, []byte("\r\n\r\n")); i >= 0 {
		hdr = msg[:i+2]
	}
	own := headerFields(hdr)
	var tags map[string]string
	for _, f := range own {
		if fieldName(f) == "dkim-signature" {
			tags = parseTags(f[len("dkim-signature:"):])
			break
		}
	}
	if tags == nil {
		return nil, errors.New("dkim: the message has no DKIM-Signature to extend")
	}
	if !strings.EqualFold(tags["d"], s.Domain) || tags["c"] != "relaxed/relaxed" || tags["bh"] == "" ||
		tags["h"] == "" || !strings.HasSuffix(tags["a"], "-sha256") {
		return nil, fmt.Errorf("dkim: the message's signature (d=%s c=%s a=%s) is not one of %s to extend", tags["d"], tags["c"], tags["a"], s.Domain)
	}
	extra := headerFields(added)
	var names []string
	for _, f := range extra {
		n, _, _ := strings.Cut(f, ":")
		names = append(names, strings.TrimSpace(n))
	}
	// Each added field twice (oversigned), then the stored h= list.
	h := strings.Join(append(append(names, names...), tags["h"]), ":")
	return s.sign(append(extra, own...), strings.Split(h, ":"), tags["bh"], false)
}

// headerFields splits a header block into fields, each with its
// continuation lines and final CRLF.
func headerFields(hdr []byte) []string {
	var out []string
	for _, line := range strings.SplitAfter(string(hdr), "\r\n") {
		switch {
		case line == "" || line == "\r\n":
		case (line[0] == ' ' || line[0] == '\t') && len(out) > 0:
			out[len(out)-1] += line
		default:
			out = append(out, line)
		}
	}
	return out
}

func fieldName(f string) string {
	n, _, _ := strings.Cut(f, ":")
	return strings.ToLower(strings.TrimRight(n, " \t"))
}

// relaxedField is the "relaxed" header canonicalization (RFC 6376
// §3.4.2): lower-case name, unfolded value, runs of blanks as one space,
// none around the colon or at the end.
func relaxedField(f string) string {
	name, value, _ := strings.Cut(f, ":")
	value = strings.ReplaceAll(value, "\r\n", "")
	var b strings.Builder
	b.WriteString(strings.ToLower(strings.TrimRight(name, " \t")))
	b.WriteByte(':')
	start, blank := b.Len(), false
	for i := 0; i < len(value); i++ {
		if c := value[i]; c == ' ' || c == '\t' {
			blank = true
			continue
		}
		if blank && b.Len() > start {
			b.WriteByte(' ')
		}
		blank = false
		b.WriteByte(value[i])
	}
	b.WriteString("\r\n")
	return b.String()
}
