package dmarc

import (
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/testkit/pgtest"
	"github.com/posthorn/posthorn/internal/testkit/stores"
)

// The tests run on each store backend (testkit/stores).
func TestMain(m *testing.M) { pgtest.Main(m) }

func newService(t *testing.T, st store.Store, lim Limits) *Service {
	t.Helper()
	return &Service{Store: st, Limits: lim, Log: slog.New(slog.DiscardHandler),
		Ours: func() []netip.Addr {
			return []netip.Addr{netip.MustParseAddr("127.0.0.11"), netip.MustParseAddr("127.0.0.12")}
		}}
}

// mailWith wraps an attachment in a report mail as reporters send it.
func mailWith(ctype, name string, att []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: reports@reporter.test\r\nTo: dmarc@bounces.posthorn.test\r\nSubject: Report Domain: example.com\r\n")
	fmt.Fprintf(&b, "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n")
	fmt.Fprintf(&b, "--b1\r\nContent-Type: text/plain\r\n\r\nThis is a DMARC aggregate report.\r\n")
	fmt.Fprintf(&b, "--b1\r\nContent-Type: %s; name=\"%s\"\r\nContent-Disposition: attachment; filename=\"%s\"\r\nContent-Transfer-Encoding: base64\r\n\r\n", ctype, name, name)
	enc := base64.StdEncoding.EncodeToString(att)
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n--b1--\r\n")
	return b.Bytes()
}

func zipOf(t testing.TB, name string, data []byte) []byte {
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	w, err := zw.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	zw.Close()
	return b.Bytes()
}

func gzipOf(data []byte) []byte {
	var b bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
	zw.Write(data)
	zw.Close()
	return b.Bytes()
}

func corpus(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "corpus", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ownReport is a report the test writes: posthorn's own address passing,
// one of its messages failing DKIM, and a stranger sending as the domain.
const ownReport = `<?xml version="1.0" encoding="UTF-8"?>
<feedback>
  <report_metadata><org_name>posthorn-test</org_name><email>r@reporter.test</email><report_id>own-1</report_id>
    <date_range><begin>1764720000</begin><end>1764806399</end></date_range></report_metadata>
  <policy_published><domain>example.com</domain><p>quarantine</p></policy_published>
  <record><row><source_ip>127.0.0.11</source_ip><count>40</count>
    <policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>pass</spf></policy_evaluated></row>
    <identifiers><header_from>example.com</header_from></identifiers>
    <auth_results><dkim><domain>example.com</domain><result>pass</result></dkim><spf><domain>example.com</domain><result>pass</result></spf></auth_results></record>
  <record><row><source_ip>127.0.0.11</source_ip><count>2</count>
    <policy_evaluated><disposition>none</disposition><dkim>fail</dkim><spf>pass</spf></policy_evaluated></row>
    <identifiers><header_from>example.com</header_from></identifiers></record>
  <record><row><source_ip>203.0.113.9</source_ip><count>5</count>
    <policy_evaluated><disposition>quarantine</disposition><dkim>fail</dkim><spf>fail</spf></policy_evaluated></row>
    <identifiers><header_from>example.com</header_from></identifiers></record>
</feedback>`

// TestCorpusFigures: real reports (plain XML, gzip, zip, a Google report
// mail as received) and one the test writes are accepted over the
// intake, stored once, and summed per domain and source IP; sources that
// are not posthorn's are listed.
func TestCorpusFigures(t *testing.T) { stores.Each(t, testCorpusFigures) }

func testCorpusFigures(t *testing.T, st store.Store) {
	s := newService(t, st, DefaultLimits())
	ctx := context.Background()
	for _, c := range []struct{ file, ctype string }{
		{"addisonfoods.xml", "text/xml"}, {"outlook.xml", "application/xml"}, {"fastmail.xml.gz", "application/gzip"},
		{"xyz.xml.zip", "application/zip"}, {"rfc9990-sample.xml", "text/xml"}, {"empty_reason.xml", "text/xml"},
	} {
		if r := s.Take(ctx, mailWith(c.ctype, c.file, corpus(t, c.file))); r.Code != 250 {
			t.Fatalf("%s: %+v", c.file, r)
		}
	}
	if r := s.Take(ctx, mailWith("application/zip", "own.zip", zipOf(t, "own.xml", []byte(ownReport)))); r.Code != 250 || !strings.Contains(r.Text, "3 records") {
		t.Fatalf("own report: %+v", r)
	}
	if r := s.Take(ctx, mailWith("application/zip", "own.zip", zipOf(t, "own.xml", []byte(ownReport)))); r.Code != 250 || !strings.Contains(r.Text, "already") {
		t.Fatalf("the same report again: %+v", r)
	}
	if r := s.Take(ctx, corpus(t, "google.eml")); r.Code != 250 {
		t.Fatalf("google.eml: %+v", r)
	}

	sum, err := s.Summarize(ctx, "example.com", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Reports != 7 || sum.Messages != 176 || sum.DMARCPass != 167 || sum.DMARCFail != 9 || sum.DKIMPass != 165 || sum.SPFPass != 42 {
		t.Errorf("totals %+v", sum)
	}
	var own *Source
	for i := range sum.Sources {
		if sum.Sources[i].IP == "127.0.0.11" {
			own = &sum.Sources[i]
		}
	}
	if own == nil || own.Messages != 42 || own.DKIMPass != 40 || own.DKIMFail != 2 || own.SPFPass != 42 || own.Ours == nil || !*own.Ours {
		t.Errorf("own source %+v", own)
	}
	want := []string{"192.0.2.123", "203.0.113.9", "198.51.100.123", "100.24.188.149", "104.195.80.20", "109.203.100.17", "148.243.137.254"}
	if !slices.Equal(sum.NotOurs, want) {
		t.Errorf("not ours %v, want %v", sum.NotOurs, want)
	}
	g, err := s.Summarize(ctx, "borschow.com", time.Time{})
	if err != nil || g.Messages != 1 || len(g.Sources) != 1 || g.Sources[0].Rejected != 1 || g.Sources[0].IP != "92.53.116.102" {
		t.Errorf("google report: %+v %v", g, err)
	}
	if late, _ := s.Summarize(ctx, "example.com", time.Unix(1764720000, 0)); late.Messages != 47 {
		t.Errorf("since the own report's day: %d messages, want 47", late.Messages)
	}
}

// TestHostileReports: malformed and oversized reports get a clear refusal
// (550 5.6.0 or 552 5.3.4), never a crash, and nothing is stored.
func TestHostileReports(t *testing.T) { stores.Each(t, testHostileReports) }

func testHostileReports(t *testing.T, st store.Store) {
	lim := DefaultLimits()
	lim.MaxXMLBytes = 4 << 20
	lim.MaxCompressRatio = 100
	s := newService(t, st, lim)
	ctx := context.Background()
	zeros := bytes.Repeat([]byte(" "), 30<<20)
	laughs := `<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<feedback><report_metadata><org_name>&lol9;</org_name><report_id>1</report_id></report_metadata></feedback>`
	fastmail := corpus(t, "fastmail.xml.gz")
	xyz := corpus(t, "xyz.xml.zip")
	ratio := append([]byte("<feedback>"), bytes.Repeat([]byte(" "), 2<<20)...)
	for _, c := range []struct {
		name  string
		msg   []byte
		code  int
		about string
	}{
		{"zip bomb", mailWith("application/zip", "bomb.zip", zipOf(t, "bomb.xml", zeros)), 552, "zip member declares"},
		{"gzip bomb", mailWith("application/gzip", "bomb.xml.gz", gzipOf(zeros)), 552, "decompresses to more than"},
		{"ratio", mailWith("application/gzip", "r.xml.gz", gzipOf(ratio)), 552, "compression ratio"},
		{"billion laughs", mailWith("text/xml", "lol.xml", []byte(laughs)), 550, "DTD"},
		{"undefined entity", mailWith("text/xml", "e.xml", []byte(`<feedback><report_metadata><org_name>&lol9;</org_name></report_metadata></feedback>`)), 550, "entity"},
		{"truncated zip", mailWith("application/zip", "t.zip", xyz[:len(xyz)/2]), 550, "truncated or corrupt zip"},
		{"truncated gzip", mailWith("application/gzip", "t.xml.gz", fastmail[:len(fastmail)-20]), 550, "truncated gzip"},
		{"invalid XML", mailWith("text/xml", "invalid_xml.xml", corpus(t, "invalid_xml.xml")), 550, "XML syntax error"},
		{"no attachment", []byte("Subject: hi\r\n\r\nno report here\r\n"), 550, "no report attachment"},
		{"big attachment", mailWith("application/zip", "big.zip", bytes.Repeat([]byte("x"), 2<<20)), 552, "attachment exceeds"},
		{"latin1", mailWith("text/xml", "l.xml", []byte(`<?xml version="1.0" encoding="ISO-8859-1"?><feedback/>`)), 550, "UTF-8 only"},
	} {
		r := s.Take(ctx, c.msg)
		if r.Code != c.code || !strings.Contains(r.Text, c.about) {
			t.Errorf("%s: %+v, want %d about %q", c.name, r, c.code, c.about)
		}
	}
	if sum, _ := s.Summarize(ctx, "example.com", time.Time{}); sum.Reports != 0 {
		t.Errorf("a refused report was stored: %+v", sum)
	}
	// Too many records.
	lim = DefaultLimits()
	lim.MaxRecords = 2
	if _, err := Parse([]byte(ownReport), lim); err == nil || !strings.Contains(err.Error(), "more than 2 records") {
		t.Errorf("record cap: %v", err)
	}
}

// FuzzParse: whatever arrives, extraction and parsing end without a
// panic, within the caps.
func FuzzParse(f *testing.F) {
	f.Add([]byte(ownReport))
	f.Add(zipOf(f, "a.xml", []byte(ownReport)))
	f.Add(gzipOf([]byte(ownReport)))
	for _, n := range []string{"addisonfoods.xml", "fastmail.xml.gz", "xyz.xml.zip", "invalid_xml.xml"} {
		if b, err := os.ReadFile(filepath.Join("testdata", "corpus", n)); err == nil {
			f.Add(b)
		}
	}
	lim := Limits{MaxReportBytes: 64 << 10, MaxXMLBytes: 256 << 10, MaxRecords: 50, MaxCompressRatio: 100}
	f.Fuzz(func(t *testing.T, data []byte) {
		x, err := Extract(data, lim)
		if err != nil {
			return
		}
		if int64(len(x)) > lim.MaxXMLBytes && !bytes.Equal(x, data) {
			t.Fatalf("extracted %d bytes over the cap", len(x))
		}
		rep, err := Parse(x, lim)
		if err != nil {
			return
		}
		if len(rep.Records) > lim.MaxRecords || rep.OrgName == "" || rep.ReportID == "" {
			t.Fatalf("parsed beyond its rules: %d records", len(rep.Records))
		}
	})
}
