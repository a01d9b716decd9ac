package dmarc

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"strings"
)

// Bounds on walking a report message's MIME tree.
const (
	maxDepth = 5
	maxParts = 50
)

// Attachment finds the report in a mail message: the first part that is
// a zip, gzip or XML file (by type or file name), decoded from its
// transfer encoding and capped at lim.MaxReportBytes.
func Attachment(msg []byte, lim Limits) ([]byte, error) {
	m, err := mail.ReadMessage(bytes.NewReader(msg))
	if err != nil {
		return nil, fmt.Errorf("unreadable message: %w", err)
	}
	parts := 0
	data, err := find(textproto.MIMEHeader(m.Header), m.Body, lim, 0, &parts)
	if err != nil {
		return nil, err
	}
	if data == nil {
		return nil, errors.New("no report attachment (zip, gzip or XML) in the message")
	}
	return data, nil
}

func find(h textproto.MIMEHeader, body io.Reader, lim Limits, depth int, parts *int) ([]byte, error) {
	*parts++
	if depth > maxDepth || *parts > maxParts {
		return nil, errors.New("message structure too deep or too many parts")
	}
	ct, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil {
		ct = "text/plain"
	}
	if strings.HasPrefix(ct, "multipart/") {
		if params["boundary"] == "" {
			return nil, errors.New("multipart without boundary")
		}
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextRawPart()
			if err == io.EOF {
				return nil, nil
			}
			if err != nil {
				return nil, fmt.Errorf("malformed MIME: %w", err)
			}
			data, err := find(p.Header, p, lim, depth+1, parts)
			if err != nil || data != nil {
				return data, err
			}
		}
	}
	name := strings.ToLower(params["name"])
	if _, dp, err := mime.ParseMediaType(h.Get("Content-Disposition")); err == nil && dp["filename"] != "" {
		name = strings.ToLower(dp["filename"])
	}
	isReport := ct == "application/zip" || ct == "application/x-zip-compressed" || ct == "application/gzip" ||
		ct == "application/x-gzip" || ct == "text/xml" || ct == "application/xml" ||
		strings.HasSuffix(name, ".zip") || strings.HasSuffix(name, ".gz") || strings.HasSuffix(name, ".xml")
	if !isReport {
		return nil, nil
	}
	var r io.Reader = body
	switch strings.ToLower(strings.TrimSpace(h.Get("Content-Transfer-Encoding"))) {
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, &stripSpace{r: bufio.NewReader(body)})
	case "quoted-printable":
		r = quotedprintable.NewReader(body)
	}
	data, err := io.ReadAll(io.LimitReader(r, lim.MaxReportBytes+1))
	if err != nil {
		return nil, fmt.Errorf("attachment encoding: %w", err)
	}
	if int64(len(data)) > lim.MaxReportBytes {
		return nil, tooLarge("attachment exceeds %d bytes", lim.MaxReportBytes)
	}
	return data, nil
}

// stripSpace drops line breaks and blanks from base64 text.
type stripSpace struct{ r *bufio.Reader }

func (s *stripSpace) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		b, err := s.r.ReadByte()
		if err != nil {
			if n > 0 {
				return n, nil
			}
			return 0, err
		}
		if b == '\r' || b == '\n' || b == ' ' || b == '\t' {
			continue
		}
		p[n] = b
		n++
	}
	return n, nil
}
