package dane_test

import (
	"crypto/x509"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/delivery/dane"
	"github.com/posthorn/posthorn/internal/testkit"
)

func rec(t *testing.T, x testkit.TLSA) dane.Record {
	t.Helper()
	r, err := dane.ParseRecord(x.Usage, x.Selector, x.MatchingType, x.Data)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestVerify(t *testing.T) {
	ca, err := testkit.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	other, _ := testkit.NewCA()
	now := time.Now()
	leafTLS, _ := ca.Issue("mx.example.test")
	expired, _ := ca.IssueValid(now.Add(-48*time.Hour), now.Add(-time.Hour), "elsewhere.test")
	strangerTLS, _ := other.Issue("mx.example.test")
	chain := func(c [][]byte) []*x509.Certificate {
		var out []*x509.Certificate
		for _, der := range c {
			x, err := x509.ParseCertificate(der)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, x)
		}
		return out
	}
	good, old, stranger := chain(leafTLS.Certificate), chain(expired.Certificate), chain(strangerTLS.Certificate)
	names := []string{"mx.example.test"}

	// Every usable usage/selector/matching combination matches its
	// certificate and not another's.
	for _, sel := range []uint8{0, 1} {
		for _, mt := range []uint8{0, 1, 2} {
			ee := rec(t, testkit.TLSAFor(good[0], 3, sel, mt))
			if m, err := dane.Verify(good, []dane.Record{ee}, names, now); err != nil || !strings.HasPrefix(m, "dane-ee") {
				t.Errorf("EE %d %d: %q %v", sel, mt, m, err)
			}
			if _, err := dane.Verify(stranger, []dane.Record{ee}, names, now); err == nil {
				t.Errorf("EE %d %d matched another certificate", sel, mt)
			}
			ta := rec(t, testkit.TLSAFor(ca.Cert, 2, sel, mt))
			if m, err := dane.Verify(good, []dane.Record{ta}, names, now); err != nil || !strings.HasPrefix(m, "dane-ta") {
				t.Errorf("TA %d %d: %q %v", sel, mt, m, err)
			}
			if _, err := dane.Verify(stranger, []dane.Record{ta}, names, now); err == nil {
				t.Errorf("TA %d %d matched a chain of another CA", sel, mt)
			}
		}
	}
	// DANE-EE ignores names and dates (RFC 7672 §3.1.1).
	if _, err := dane.Verify(old, []dane.Record{rec(t, testkit.TLSAFor(old[0], 3, 1, 1))}, names, now); err != nil {
		t.Errorf("DANE-EE with an expired certificate for another name: %v", err)
	}
	// DANE-TA checks both.
	if _, err := dane.Verify(old, []dane.Record{rec(t, testkit.TLSAFor(ca.Cert, 2, 0, 1))}, names, now); err == nil {
		t.Error("DANE-TA accepted an expired certificate for another name")
	}
	if _, err := dane.Verify(good, []dane.Record{rec(t, testkit.TLSAFor(ca.Cert, 2, 0, 1))}, []string{"mx2.example.test"}, now); err == nil {
		t.Error("DANE-TA accepted a certificate without the MX name")
	}
	// PKIX-TA(0) and PKIX-EE(1) are unusable for SMTP, as are bad lengths.
	unusable := []dane.Record{rec(t, testkit.TLSAFor(good[0], 1, 1, 1)), rec(t, testkit.TLSAFor(ca.Cert, 0, 0, 1)),
		{Usage: 3, Selector: 1, MatchingType: 1, Data: []byte{1, 2, 3}}, {Usage: 3, Selector: 2, MatchingType: 0, Data: good[0].Raw}}
	if _, err := dane.Verify(good, unusable, names, now); err == nil || !strings.Contains(err.Error(), "no usable") {
		t.Errorf("unusable records: %v", err)
	}
	if len(dane.Usable(unusable)) != 0 {
		t.Error("Usable kept unusable records")
	}
	// One match among non-matching records is enough.
	mixed := []dane.Record{rec(t, testkit.TLSAFor(stranger[0], 3, 1, 1)), rec(t, testkit.TLSAFor(good[0], 3, 1, 2))}
	if _, err := dane.Verify(good, mixed, names, now); err != nil {
		t.Errorf("mixed: %v", err)
	}
	if _, err := dane.Verify(nil, mixed, names, now); err == nil {
		t.Error("no certificate accepted")
	}
	r := rec(t, testkit.TLSAFor(good[0], 3, 1, 1))
	if s := r.String(); s != "3 1 1 "+hex.EncodeToString(r.Data) {
		t.Errorf("String: %q", s)
	}
}
