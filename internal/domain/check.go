package domain

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Check statuses of one record.
const (
	CheckOK      = "ok"
	CheckMissing = "missing" // no such record
	CheckWrong   = "wrong"   // a record is there but says something else
	CheckError   = "error"   // the lookup failed (timeout, SERVFAIL): try again
)

// RecordCheck is what a check found for one record.
type RecordCheck struct {
	Record
	Status string   `json:"status"`
	Found  []string `json:"found,omitempty"`
	Detail string   `json:"detail,omitempty"`
}

// Report is the result of checking a domain's records.
type Report struct {
	Domain    string        `json:"domain"`
	Status    string        `json:"status"` // the domain's status after the check
	CheckedAt time.Time     `json:"checked_at"`
	Records   []RecordCheck `json:"records"`
}

// lookup asks the configured DNS servers. It returns the answer records of
// qtype, or errNoRecord for NXDOMAIN / an empty answer.
type lookup struct {
	servers []string
	client  *dns.Client
}

var errNoRecord = errors.New("no such record")

func newLookup(server string) (*lookup, error) {
	l := &lookup{client: &dns.Client{Timeout: 5 * time.Second}}
	if server != "" {
		l.servers = []string{server}
		return l, nil
	}
	cc, err := dns.ClientConfigFromFile("/etc/resolv.conf")
	if err != nil {
		return nil, fmt.Errorf("read /etc/resolv.conf: %w", err)
	}
	for _, s := range cc.Servers {
		l.servers = append(l.servers, net.JoinHostPort(s, cc.Port))
	}
	if len(l.servers) == 0 {
		return nil, errors.New("no nameserver in /etc/resolv.conf")
	}
	return l, nil
}

func (l *lookup) query(ctx context.Context, name string, qtype uint16) ([]dns.RR, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.RecursionDesired = true
	var lastErr error
	for _, srv := range l.servers {
		r, _, err := l.client.ExchangeContext(ctx, m, srv)
		if err == nil && r.Truncated {
			tcp := &dns.Client{Net: "tcp", Timeout: l.client.Timeout}
			r, _, err = tcp.ExchangeContext(ctx, m, srv)
		}
		if err != nil {
			lastErr = err
			continue
		}
		switch r.Rcode {
		case dns.RcodeNameError:
			return nil, errNoRecord
		case dns.RcodeSuccess:
		default:
			lastErr = fmt.Errorf("%s %s: %s", name, dns.TypeToString[qtype], dns.RcodeToString[r.Rcode])
			continue
		}
		var out []dns.RR
		for _, rr := range r.Answer {
			if rr.Header().Rrtype == qtype {
				out = append(out, rr)
			}
		}
		if len(out) == 0 {
			return nil, errNoRecord
		}
		return out, nil
	}
	return nil, fmt.Errorf("lookup %s: %w", name, lastErr)
}

func (l *lookup) txt(ctx context.Context, name string) ([]string, error) {
	rrs, err := l.query(ctx, name, dns.TypeTXT)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, rr := range rrs {
		out = append(out, strings.Join(rr.(*dns.TXT).Txt, ""))
	}
	return out, nil
}

// checkRecord looks up one record and compares it with what it should be.
func (l *lookup) checkRecord(ctx context.Context, r Record) RecordCheck {
	c := RecordCheck{Record: r}
	var found []string
	var err error
	if r.Type == "MX" {
		var rrs []dns.RR
		rrs, err = l.query(ctx, r.Name, dns.TypeMX)
		for _, rr := range rrs {
			mx := rr.(*dns.MX)
			found = append(found, fmt.Sprintf("%d %s", mx.Preference, mx.Mx))
		}
	} else {
		found, err = l.txt(ctx, r.Name)
	}
	switch {
	case errors.Is(err, errNoRecord):
		c.Status = CheckMissing
		return c
	case err != nil:
		c.Status, c.Detail = CheckError, err.Error()
		return c
	}
	switch r.Purpose {
	case PurposeDKIM:
		c.Found = found
		c.Status, c.Detail = CheckWrong, "no record has this key"
		want := parseTags(r.Value)
		for _, f := range found {
			got := parseTags(f)
			k := got["k"]
			if k == "" {
				k = AlgRSA
			}
			if got["p"] == want["p"] && k == want["k"] && (got["v"] == "" || got["v"] == "DKIM1") {
				c.Status, c.Detail = CheckOK, ""
			}
		}
	case PurposeSPF, PurposeReturnPathSPF:
		c.Found = prefixed(found, "v=spf1")
		c.Status, c.Detail = spfStatus(c.Found, r.Value)
	case PurposeDMARC:
		c.Found = prefixed(found, "v=dmarc1")
		switch len(c.Found) {
		case 0:
			c.Status = CheckMissing
		case 1:
			c.Status = CheckOK
		default:
			c.Status, c.Detail = CheckWrong, "more than one DMARC record"
		}
	case PurposeReturnPath:
		c.Found = found
		c.Status, c.Detail = CheckWrong, "no MX points at "+strings.TrimSuffix(strings.Fields(r.Value)[1], ".")
		want := strings.ToLower(dns.Fqdn(strings.Fields(r.Value)[1]))
		for _, f := range found {
			if strings.ToLower(strings.Fields(f)[1]) == want {
				c.Status, c.Detail = CheckOK, ""
			}
		}
	}
	if c.Status == CheckMissing {
		c.Found = nil
	}
	return c
}

// prefixed keeps the TXT values that start with tag (case-insensitively,
// as SPF and DMARC records are recognised).
func prefixed(vals []string, tag string) []string {
	var out []string
	for _, v := range vals {
		f := strings.FieldsFunc(v, func(r rune) bool { return r == ';' || r == ' ' || r == '\t' })
		if len(f) > 0 && strings.EqualFold(f[0], tag) {
			out = append(out, v)
		}
	}
	return out
}

// spfStatus says whether the one SPF record holds every mechanism of want.
func spfStatus(found []string, want string) (string, string) {
	switch len(found) {
	case 0:
		return CheckMissing, ""
	case 1:
	default:
		return CheckWrong, "more than one SPF record (a permanent error for receivers)"
	}
	have := map[string]bool{}
	for _, t := range strings.Fields(strings.ToLower(found[0])) {
		have[strings.TrimPrefix(t, "+")] = true
	}
	for _, t := range strings.Fields(strings.ToLower(want))[1:] {
		if strings.HasSuffix(t, "all") {
			continue
		}
		if !have[t] {
			return CheckWrong, "the SPF record lacks " + t
		}
	}
	return CheckOK, ""
}
