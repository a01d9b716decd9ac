// Package tlsrpt is the sending side of SMTP TLS Reporting (RFC 8460):
// it counts, per recipient domain with a policy (MTA-STS or DANE) and per
// UTC day, the TLS sessions that met the policy and those that failed
// (with the failure details the RFC asks for), and once a day is over
// sends each domain that asks for reports (a "_smtp._tls" TXT record with
// rua=) its JSON report, gzipped: by mail through posthorn itself for
// mailto:, by HTTPS POST for https:.
//
// What it owns, and its invariants:
//   - Counts are kept in memory and written to one JSON file per day in
//     its directory (every minute and at Stop), so a restart loses at most
//     a minute of counts and never a finished day.
//   - A day's reports go out after the day ends (UTC), or at the next
//     Start for days that ended while stopped; a domain whose sending
//     failed is tried again each hour for a day, then dropped.
//   - https: report URIs must not resolve to private, loopback or
//     link-local addresses unless AllowPrivate (a report URI is chosen by
//     the remote domain, and must not be a way into our network); the
//     address checked is the one dialled.
//   - Failure details are capped per policy (maxFailureDetails) so a
//     flood of failures cannot grow memory without bound.
//
// What the tests prove (tlsrpt_test.go): a day of successes and failures
// becomes a report that passes a validator written from RFC 8460 §4.4's
// schema (itself checked on a real report, testdata/mail.ru.json), the
// mail carries the headers and the gzip part of §5.3, the HTTPS POST
// carries application/tlsrpt+gzip, private addresses are refused, and
// counts survive a restart.
package tlsrpt

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
)

// maxFailureDetails bounds the distinct failure details kept per policy.
const maxFailureDetails = 100

// Report is the JSON report (RFC 8460 §4.4).
type Report struct {
	OrganizationName string          `json:"organization-name"`
	DateRange        DateRange       `json:"date-range"`
	ContactInfo      string          `json:"contact-info"`
	ReportID         string          `json:"report-id"`
	Policies         []PolicyResults `json:"policies"`
}

// DateRange is the period a report covers.
type DateRange struct {
	Start time.Time `json:"start-datetime"`
	End   time.Time `json:"end-datetime"`
}

// PolicyResults are the counts under one policy.
type PolicyResults struct {
	Policy         PolicyDesc      `json:"policy"`
	Summary        Summary         `json:"summary"`
	FailureDetails []FailureDetail `json:"failure-details,omitempty"`
}

// PolicyDesc says which policy.
type PolicyDesc struct {
	Type   PolicyType `json:"policy-type"`
	String []string   `json:"policy-string,omitempty"`
	Domain string     `json:"policy-domain"`
	MXHost []string   `json:"mx-host,omitempty"`
}

// Summary counts sessions.
type Summary struct {
	Successful int64 `json:"total-successful-session-count"`
	Failed     int64 `json:"total-failure-session-count"`
}

// FailureDetail counts one kind of failure.
type FailureDetail struct {
	ResultType          string `json:"result-type"`
	SendingMTAIP        string `json:"sending-mta-ip,omitempty"`
	ReceivingMXHostname string `json:"receiving-mx-hostname,omitempty"`
	ReceivingIP         string `json:"receiving-ip,omitempty"`
	FailedSessionCount  int64  `json:"failed-session-count"`
	FailureReasonCode   string `json:"failure-reason-code,omitempty"`
}

// policyKey identifies a policy within a domain's day.
func policyKey(s Session) string {
	return string(s.Type) + "\x00" + strings.Join(s.Policy, "\n") + "\x00" + strings.Join(s.MXHosts, ",")
}

func failureKey(f FailureDetail) string {
	return f.ResultType + "\x00" + f.SendingMTAIP + "\x00" + f.ReceivingMXHostname + "\x00" + f.ReceivingIP + "\x00" + f.FailureReasonCode
}

// domainDay is a domain's counts for one day, by policy.
type domainDay struct {
	Policies map[string]*policyCount `json:"policies"`
	// Tries counts failed send attempts (after the day).
	Tries int `json:"tries,omitempty"`
}

type policyCount struct {
	Policy   PolicyDesc                `json:"policy"`
	Summary  Summary                   `json:"summary"`
	Failures map[string]*FailureDetail `json:"failures,omitempty"`
}

func (d *domainDay) add(s Session) {
	if d.Policies == nil {
		d.Policies = map[string]*policyCount{}
	}
	k := policyKey(s)
	p := d.Policies[k]
	if p == nil {
		p = &policyCount{Policy: PolicyDesc{Type: s.Type, String: s.Policy, Domain: s.Domain, MXHost: s.MXHosts}}
		d.Policies[k] = p
	}
	if s.Success {
		p.Summary.Successful++
		return
	}
	p.Summary.Failed++
	f := FailureDetail{ResultType: s.ResultType, SendingMTAIP: s.SendingIP, ReceivingMXHostname: s.ReceivingMX,
		ReceivingIP: s.ReceivingIP, FailureReasonCode: clip(s.Reason, 200)}
	if p.Failures == nil {
		p.Failures = map[string]*FailureDetail{}
	}
	fk := failureKey(f)
	if have := p.Failures[fk]; have != nil {
		have.FailedSessionCount++
	} else if len(p.Failures) < maxFailureDetails {
		f.FailedSessionCount = 1
		p.Failures[fk] = &f
	}
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// report builds the report of one domain's day.
func (d *domainDay) report(day time.Time, org, contact, id string) Report {
	r := Report{OrganizationName: org, ContactInfo: contact, ReportID: id,
		DateRange: DateRange{Start: day, End: day.Add(24*time.Hour - time.Second)}}
	keys := make([]string, 0, len(d.Policies))
	for k := range d.Policies {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		p := d.Policies[k]
		pr := PolicyResults{Policy: p.Policy, Summary: p.Summary}
		fks := make([]string, 0, len(p.Failures))
		for fk := range p.Failures {
			fks = append(fks, fk)
		}
		sort.Strings(fks)
		for _, fk := range fks {
			pr.FailureDetails = append(pr.FailureDetails, *p.Failures[fk])
		}
		r.Policies = append(r.Policies, pr)
	}
	return r
}

// Gzip returns the report as gzipped JSON.
func (r Report) Gzip() ([]byte, error) {
	js, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encode TLS report: %w", err)
	}
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write(js)
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
