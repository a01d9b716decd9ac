package dmarc

import (
	"archive/zip"
	"bytes"
	"compress/gzip"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Limits bound what one report may cost to read.
type Limits struct {
	MaxReportBytes   int64 // the attachment as sent (compressed)
	MaxXMLBytes      int64 // the XML after decompression
	MaxRecords       int   // <record> elements
	MaxCompressRatio int   // decompressed / compressed, checked above ratioFloor
}

// DefaultLimits are the config defaults.
func DefaultLimits() Limits {
	return Limits{MaxReportBytes: 1 << 20, MaxXMLBytes: 20 << 20, MaxRecords: 100000, MaxCompressRatio: 1000}
}

// ratioFloor: small reports may compress well; the ratio matters only
// for output beyond it.
const ratioFloor = 1 << 20

// ErrTooLarge marks a report refused for its size (SMTP 552); every other
// error means a malformed report (SMTP 550 5.6.0).
var ErrTooLarge = errors.New("report too large")

func tooLarge(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrTooLarge, fmt.Sprintf(format, a...))
}

// Report is a parsed aggregate report (RFC 7489 appendix C; the DMARCbis
// namespace is accepted too).
type Report struct {
	OrgName  string
	Email    string
	ReportID string
	Begin    time.Time
	End      time.Time
	Domain   string // policy_published
	Policy   string // p=
	Records  []Record
}

// Record is one row of a report.
type Record struct {
	SourceIP    netip.Addr
	Count       int
	Disposition string
	DKIM        string // policy_evaluated (aligned) pass/fail
	SPF         string
	HeaderFrom  string
	EnvFrom     string
	AuthResults string
}

// The XML shapes, RFC 7489 appendix C. Only what posthorn keeps.
type xmlMetadata struct {
	OrgName   string `xml:"org_name"`
	Email     string `xml:"email"`
	ReportID  string `xml:"report_id"`
	DateRange struct {
		Begin string `xml:"begin"`
		End   string `xml:"end"`
	} `xml:"date_range"`
}

type xmlPolicy struct {
	Domain string `xml:"domain"`
	P      string `xml:"p"`
}

type xmlRecord struct {
	Row struct {
		SourceIP string `xml:"source_ip"`
		Count    string `xml:"count"`
		Policy   struct {
			Disposition string `xml:"disposition"`
			DKIM        string `xml:"dkim"`
			SPF         string `xml:"spf"`
		} `xml:"policy_evaluated"`
	} `xml:"row"`
	Identifiers struct {
		HeaderFrom   string `xml:"header_from"`
		EnvelopeFrom string `xml:"envelope_from"`
	} `xml:"identifiers"`
	Auth struct {
		DKIM []struct {
			Domain string `xml:"domain"`
			Result string `xml:"result"`
		} `xml:"dkim"`
		SPF []struct {
			Domain string `xml:"domain"`
			Result string `xml:"result"`
		} `xml:"spf"`
	} `xml:"auth_results"`
}

// Extract returns the XML of an attachment: a zip archive (its one .xml
// member), gzip, or plain XML, recognised by content. Sizes are capped
// before and during decompression; a truncated archive is an error.
func Extract(data []byte, lim Limits) ([]byte, error) {
	if int64(len(data)) > lim.MaxReportBytes {
		return nil, tooLarge("attachment of %d bytes exceeds %d", len(data), lim.MaxReportBytes)
	}
	switch {
	case bytes.HasPrefix(data, []byte("PK\x03\x04")):
		zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return nil, fmt.Errorf("truncated or corrupt zip archive: %w", err)
		}
		var f *zip.File
		for _, zf := range zr.File {
			if zf.FileInfo().IsDir() {
				continue
			}
			if f != nil {
				return nil, errors.New("zip archive holds more than one file")
			}
			f = zf
		}
		if f == nil {
			return nil, errors.New("empty zip archive")
		}
		if f.UncompressedSize64 > uint64(lim.MaxXMLBytes) {
			return nil, tooLarge("zip member declares %d bytes, limit %d", f.UncompressedSize64, lim.MaxXMLBytes)
		}
		rc, err := f.Open()
		if err != nil {
			return nil, fmt.Errorf("corrupt zip archive: %w", err)
		}
		defer rc.Close()
		return readCapped(rc, len(data), lim, "zip")
	case bytes.HasPrefix(data, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("truncated or corrupt gzip data: %w", err)
		}
		return readCapped(zr, len(data), lim, "gzip")
	}
	return data, nil
}

// readCapped decompresses r (from n compressed bytes) up to the limits.
func readCapped(r io.Reader, n int, lim Limits, kind string) ([]byte, error) {
	out, err := io.ReadAll(io.LimitReader(r, lim.MaxXMLBytes+1))
	if int64(len(out)) > lim.MaxXMLBytes {
		return nil, tooLarge("%s decompresses to more than %d bytes", kind, lim.MaxXMLBytes)
	}
	if len(out) > ratioFloor && len(out)/max(n, 1) > lim.MaxCompressRatio {
		return nil, tooLarge("%s compression ratio above %d (a decompression bomb?)", kind, lim.MaxCompressRatio)
	}
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("truncated %s data", kind)
		}
		return nil, fmt.Errorf("corrupt %s data: %w", kind, err)
	}
	return out, nil
}

// Parse decodes a report's XML. It refuses DTDs (<!DOCTYPE ...>, hence
// entity definitions: no billion laughs), unknown entities (the decoder is
// strict and knows only the five XML ones), other encodings than UTF-8,
// and more than MaxRecords records.
func Parse(data []byte, lim Limits) (*Report, error) {
	if int64(len(data)) > lim.MaxXMLBytes {
		return nil, tooLarge("XML of %d bytes exceeds %d", len(data), lim.MaxXMLBytes)
	}
	dec := xml.NewDecoder(bytes.NewReader(data))
	dec.Strict = true
	dec.Entity = nil // only &lt; &gt; &amp; &apos; &quot;
	dec.CharsetReader = func(label string, in io.Reader) (io.Reader, error) {
		if strings.EqualFold(label, "us-ascii") {
			return in, nil
		}
		return nil, fmt.Errorf("encoding %q not accepted (UTF-8 only)", label)
	}
	rep := &Report{}
	var meta xmlMetadata
	var pol xmlPolicy
	root, sawMeta := false, false
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("malformed XML: %w", err)
		}
		switch t := tok.(type) {
		case xml.Directive:
			return nil, errors.New("DTD or other directive in report: refused (no entity definitions)")
		case xml.StartElement:
			if !root {
				if t.Name.Local != "feedback" {
					return nil, fmt.Errorf("root element <%s>, want <feedback>", t.Name.Local)
				}
				root = true
				continue
			}
			var err error
			switch t.Name.Local {
			case "report_metadata":
				err, sawMeta = dec.DecodeElement(&meta, &t), true
			case "policy_published":
				err = dec.DecodeElement(&pol, &t)
			case "record":
				if len(rep.Records) >= lim.MaxRecords {
					return nil, tooLarge("more than %d records", lim.MaxRecords)
				}
				var x xmlRecord
				if err = dec.DecodeElement(&x, &t); err == nil {
					var r Record
					if r, err = record(x); err == nil {
						rep.Records = append(rep.Records, r)
					}
				}
			default:
				err = dec.Skip()
			}
			if err != nil {
				return nil, fmt.Errorf("<%s>: %w", t.Name.Local, err)
			}
		}
	}
	if !root || !sawMeta {
		return nil, errors.New("not a DMARC aggregate report: no <feedback> with <report_metadata>")
	}
	rep.OrgName, rep.Email, rep.ReportID = strings.TrimSpace(meta.OrgName), strings.TrimSpace(meta.Email), strings.TrimSpace(meta.ReportID)
	if rep.OrgName == "" || rep.ReportID == "" {
		return nil, errors.New("report_metadata lacks org_name or report_id")
	}
	var err error
	if rep.Begin, err = unix(meta.DateRange.Begin); err != nil {
		return nil, fmt.Errorf("date_range begin: %w", err)
	}
	if rep.End, err = unix(meta.DateRange.End); err != nil {
		return nil, fmt.Errorf("date_range end: %w", err)
	}
	rep.Domain = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(pol.Domain), "."))
	rep.Policy = strings.ToLower(strings.TrimSpace(pol.P))
	return rep, nil
}

func unix(s string) (time.Time, error) {
	v, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || v < 0 {
		return time.Time{}, fmt.Errorf("%q is not a Unix time", s)
	}
	return time.Unix(v, 0).UTC(), nil
}

func record(x xmlRecord) (Record, error) {
	ip, err := netip.ParseAddr(strings.TrimSpace(x.Row.SourceIP))
	if err != nil {
		return Record{}, fmt.Errorf("source_ip %q: %w", x.Row.SourceIP, err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(x.Row.Count))
	if err != nil || n < 0 {
		return Record{}, fmt.Errorf("count %q is not a number", x.Row.Count)
	}
	low := func(s string) string { return strings.ToLower(strings.TrimSpace(s)) }
	r := Record{SourceIP: ip.Unmap(), Count: n, Disposition: low(x.Row.Policy.Disposition), DKIM: low(x.Row.Policy.DKIM),
		SPF: low(x.Row.Policy.SPF), HeaderFrom: strings.TrimSuffix(low(x.Identifiers.HeaderFrom), "."), EnvFrom: low(x.Identifiers.EnvelopeFrom)}
	var auth []string
	for _, d := range x.Auth.DKIM {
		auth = append(auth, "dkim="+low(d.Domain)+":"+low(d.Result))
	}
	for _, s := range x.Auth.SPF {
		auth = append(auth, "spf="+low(s.Domain)+":"+low(s.Result))
	}
	r.AuthResults = strings.Join(auth, " ")
	if len(r.AuthResults) > 1000 {
		r.AuthResults = r.AuthResults[:1000]
	}
	return r, nil
}
