// Package mtasts implements the sending side of SMTP MTA Strict Transport
// Security (RFC 8461): it reads a domain's "_mta-sts" TXT record, fetches
// its policy over HTTPS, keeps policies for their max_age in a cache that
// survives restarts, and says which MX hosts a policy allows.
//
// What it owns, and its invariants:
//   - A policy is fetched only from https://mta-sts.<domain>/.well-known/mta-sts.txt,
//     with a certificate valid for that name, no redirects, at most
//     MaxPolicySize bytes, within a time limit (RFC 8461 §3.3).
//   - The TXT record decides when to refetch: a cached, unexpired policy
//     with the TXT record's id is used as is; another id fetches anew
//     (§5.1). When the fetch fails, a cached unexpired policy still
//     applies (§5.1: the point of caching is to survive an attacker who
//     blocks the fetch); without one the domain is treated as having no
//     policy, and the fetch failure is reported (TLS-RPT
//     sts-policy-fetch-error).
//   - A domain whose TXT record disappears keeps its cached policy until
//     it expires (§5.1).
//   - A cached policy older than half its max_age (at most a day) is
//     fetched again on its next use, so it is renewed before it expires;
//     if that fetch fails the cached policy still applies.
//   - The cache (a JSON file in the data directory) is written atomically
//     after every change, so a restart does not refetch every policy.
//
// What the tests prove (mtasts_test.go): policy and TXT parsing with the
// RFC's examples and malformed input, MX pattern matching (a wildcard
// covers exactly one label), fetching from an HTTPS server found through
// the test DNS server with a test CA, redirect, size and certificate
// refusals, caching by id and expiry, persistence across a new Manager.
package mtasts

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Mode is a policy's mode.
type Mode string

// The policy modes (RFC 8461 §5).
const (
	Enforce Mode = "enforce"
	Testing Mode = "testing"
	None    Mode = "none"
)

// MaxPolicySize is the largest policy body accepted (RFC 8461 §3.3
// recommends 64 KiB).
const MaxPolicySize = 64 << 10

// maxMaxAge is the largest max_age allowed: 31557600 seconds, a year.
const maxMaxAge = 31557600 * time.Second

// Policy is a parsed policy.
type Policy struct {
	Mode   Mode          `json:"mode"`
	MX     []string      `json:"mx,omitempty"`
	MaxAge time.Duration `json:"max_age"`
	// Text is the policy as served, for TLS reports (policy-string).
	Text string `json:"text"`
}

// Parse reads a policy body: "key: value" lines, CRLF or LF. Unknown keys
// are ignored (RFC 8461 §3.2); version, mode and max_age are required, and
// mx unless the mode is none.
func Parse(body []byte) (*Policy, error) {
	if len(body) > MaxPolicySize {
		return nil, fmt.Errorf("policy larger than %d bytes", MaxPolicySize)
	}
	p := &Policy{Text: string(body)}
	var version string
	var haveAge bool
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 0, 1024), MaxPolicySize+1)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("policy line %q: want key: value", clip(line))
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch k {
		case "version":
			version = v
		case "mode":
			switch Mode(v) {
			case Enforce, Testing, None:
				p.Mode = Mode(v)
			default:
				return nil, fmt.Errorf("policy mode %q: want enforce, testing or none", clip(v))
			}
		case "max_age":
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil || len(v) > 10 {
				return nil, fmt.Errorf("policy max_age %q: want seconds", clip(v))
			}
			p.MaxAge = time.Duration(min(n, uint64(maxMaxAge/time.Second))) * time.Second
			haveAge = true
		case "mx":
			if !validPattern(v) {
				return nil, fmt.Errorf("policy mx %q: not a host name or *.domain pattern", clip(v))
			}
			p.MX = append(p.MX, strings.ToLower(strings.TrimSuffix(v, ".")))
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read policy: %w", err)
	}
	switch {
	case version != "STSv1":
		return nil, fmt.Errorf("policy version %q: want STSv1", clip(version))
	case p.Mode == "":
		return nil, errors.New("policy without mode")
	case !haveAge:
		return nil, errors.New("policy without max_age")
	case len(p.MX) == 0 && p.Mode != None:
		return nil, errors.New("policy without mx")
	}
	return p, nil
}

func validPattern(v string) bool {
	rest := strings.TrimPrefix(v, "*.")
	return rest != "" && len(rest) <= 253 && !strings.ContainsAny(rest, " \t*/:@")
}

func clip(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}

// Match reports whether host (an MX host name) matches one of the
// policy's mx patterns: equal, ignoring case and a trailing dot, or
// "*.example.com" matching exactly one more label (RFC 8461 §4.1).
func (p *Policy) Match(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, pat := range p.MX {
		if rest, ok := strings.CutPrefix(pat, "*."); ok {
			label, parent, found := strings.Cut(host, ".")
			if found && label != "" && parent == rest {
				return true
			}
			continue
		}
		if host == pat {
			return true
		}
	}
	return false
}

// ParseTXT reads the "_mta-sts" TXT records of a domain and returns the
// policy id. Records not starting with "v=STSv1" are ignored; more than
// one STSv1 record, or one without a valid id, is an error (RFC 8461 §3.1:
// the domain is then treated as having no policy).
func ParseTXT(records []string) (id string, found bool, err error) {
	n := 0
	for _, r := range records {
		fields := strings.Split(r, ";")
		if strings.TrimSpace(fields[0]) != "v=STSv1" {
			continue
		}
		n++
		id = ""
		for _, f := range fields[1:] {
			k, v, _ := strings.Cut(strings.TrimSpace(f), "=")
			if k == "id" {
				id = v
			}
		}
	}
	switch {
	case n == 0:
		return "", false, nil
	case n > 1:
		return "", true, errors.New("more than one v=STSv1 TXT record")
	case id == "" || len(id) > 32 || strings.IndexFunc(id, func(r rune) bool {
		return !(r < 128 && (r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'))
	}) >= 0:
		return "", true, fmt.Errorf("TXT record id %q: want 1 to 32 letters and digits", clip(id))
	}
	return id, true, nil
}
