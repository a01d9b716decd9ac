package tlsrpt_test

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// validateReport checks a JSON report against the schema of RFC 8460
// §4.4: the required members and their types, the policy types and
// result types it defines, RFC 3339 date-times, IP addresses, and no
// members the schema does not have.
func validateReport(b []byte) error {
	var r map[string]any
	if err := json.Unmarshal(b, &r); err != nil {
		return fmt.Errorf("not a JSON object: %w", err)
	}
	if err := members(r, "report", []string{"organization-name", "date-range", "contact-info", "report-id", "policies"}, nil); err != nil {
		return err
	}
	for _, k := range []string{"organization-name", "contact-info", "report-id"} {
		if s, ok := r[k].(string); !ok || s == "" {
			return fmt.Errorf("%s: want a non-empty string, got %v", k, r[k])
		}
	}
	dr, ok := r["date-range"].(map[string]any)
	if !ok {
		return fmt.Errorf("date-range: want an object")
	}
	if err := members(dr, "date-range", []string{"start-datetime", "end-datetime"}, nil); err != nil {
		return err
	}
	var times [2]time.Time
	for i, k := range []string{"start-datetime", "end-datetime"} {
		s, _ := dr[k].(string)
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return fmt.Errorf("date-range %s %q: not an RFC 3339 date-time", k, s)
		}
		times[i] = t
	}
	if !times[0].Before(times[1]) {
		return fmt.Errorf("date-range: start %s not before end %s", times[0], times[1])
	}
	pols, ok := r["policies"].([]any)
	if !ok || len(pols) == 0 {
		return fmt.Errorf("policies: want a non-empty array")
	}
	for i, p := range pols {
		if err := validatePolicy(p); err != nil {
			return fmt.Errorf("policies[%d]: %w", i, err)
		}
	}
	return nil
}

func validatePolicy(v any) error {
	p, ok := v.(map[string]any)
	if !ok {
		return fmt.Errorf("want an object")
	}
	if err := members(p, "policy results", []string{"policy", "summary"}, []string{"failure-details"}); err != nil {
		return err
	}
	pol, ok := p["policy"].(map[string]any)
	if !ok {
		return fmt.Errorf("policy: want an object")
	}
	if err := members(pol, "policy", []string{"policy-type", "policy-domain"}, []string{"policy-string", "mx-host"}); err != nil {
		return err
	}
	if t, _ := pol["policy-type"].(string); !slices.Contains([]string{"tlsa", "sts", "no-policy-found"}, t) {
		return fmt.Errorf("policy-type %v", pol["policy-type"])
	}
	if d, _ := pol["policy-domain"].(string); d == "" {
		return fmt.Errorf("policy-domain empty")
	}
	for _, k := range []string{"policy-string", "mx-host"} {
		if x, ok := pol[k]; ok {
			if err := stringArray(x); err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
		}
	}
	sum, ok := p["summary"].(map[string]any)
	if !ok {
		return fmt.Errorf("summary: want an object")
	}
	if err := members(sum, "summary", []string{"total-successful-session-count", "total-failure-session-count"}, nil); err != nil {
		return err
	}
	for k, v := range sum {
		if err := count(v); err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
	}
	fds, ok := p["failure-details"]
	if !ok {
		return nil
	}
	arr, ok := fds.([]any)
	if !ok {
		return fmt.Errorf("failure-details: want an array")
	}
	resultTypes := []string{"starttls-not-supported", "certificate-host-mismatch", "certificate-expired", "certificate-not-trusted",
		"validation-failure", "tlsa-invalid", "dnssec-invalid", "dane-required", "sts-policy-fetch-error", "sts-policy-invalid", "sts-webpki-invalid"}
	for i, x := range arr {
		f, ok := x.(map[string]any)
		if !ok {
			return fmt.Errorf("failure-details[%d]: want an object", i)
		}
		if err := members(f, "failure-details", []string{"result-type", "failed-session-count"},
			[]string{"sending-mta-ip", "receiving-mx-hostname", "receiving-mx-helo", "receiving-ip", "additional-information", "failure-reason-code"}); err != nil {
			return err
		}
		if rt, _ := f["result-type"].(string); !slices.Contains(resultTypes, rt) {
			return fmt.Errorf("failure-details[%d]: result-type %v", i, f["result-type"])
		}
		if err := count(f["failed-session-count"]); err != nil {
			return fmt.Errorf("failure-details[%d]: failed-session-count: %w", i, err)
		}
		for _, k := range []string{"sending-mta-ip", "receiving-ip"} {
			if s, ok := f[k]; ok {
				if _, err := netip.ParseAddr(fmt.Sprint(s)); err != nil {
					return fmt.Errorf("failure-details[%d]: %s %v is not an IP address", i, k, s)
				}
			}
		}
		for _, k := range []string{"receiving-mx-hostname", "receiving-mx-helo", "additional-information", "failure-reason-code"} {
			if s, ok := f[k]; ok {
				if _, isStr := s.(string); !isStr {
					return fmt.Errorf("failure-details[%d]: %s: want a string", i, k)
				}
			}
		}
	}
	return nil
}

// members checks that o has every required member and nothing outside
// required and optional.
func members(o map[string]any, what string, required, optional []string) error {
	for _, k := range required {
		if _, ok := o[k]; !ok {
			return fmt.Errorf("%s: missing %q", what, k)
		}
	}
	for k := range o {
		if !slices.Contains(required, k) && !slices.Contains(optional, k) {
			return fmt.Errorf("%s: unknown member %q", what, k)
		}
	}
	return nil
}

func stringArray(v any) error {
	a, ok := v.([]any)
	if !ok {
		return fmt.Errorf("want an array of strings")
	}
	for _, x := range a {
		if _, ok := x.(string); !ok {
			return fmt.Errorf("want an array of strings, got %v", x)
		}
	}
	return nil
}

func count(v any) error {
	n, ok := v.(float64)
	if !ok || n < 0 || n != float64(int64(n)) {
		return fmt.Errorf("want a non-negative integer, got %v", v)
	}
	return nil
}

// TestValidator: the validator accepts a real report from another
// implementation and refuses broken variants of it.
func TestValidator(t *testing.T) {
	b, err := os.ReadFile("testdata/mail.ru.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := validateReport(b); err != nil {
		t.Fatalf("Mail.ru's report: %v", err)
	}
	for _, breakIt := range []func(string) string{
		func(s string) string { return strings.Replace(s, `"organization-name"`, `"organisation-name"`, 1) },
		func(s string) string { return strings.Replace(s, `"sts-policy-fetch-error"`, `"fetch-error"`, 1) },
		func(s string) string { return strings.Replace(s, `"2024-02-22T00:00:00Z"`, `"22.02.2024"`, 1) },
		func(s string) string {
			return strings.Replace(s, `"failed-session-count": 1`, `"failed-session-count": "1"`, 1)
		},
		func(s string) string { return strings.Replace(s, `"policy-type": "sts"`, `"policy-type": "dane"`, 1) },
		func(s string) string { return strings.Replace(s, `"total-failure-session-count": 1,`, ``, 1) },
	} {
		if bad := breakIt(string(b)); bad == string(b) {
			t.Fatal("variant did not change the report")
		} else if validateReport([]byte(bad)) == nil {
			t.Errorf("validator accepted a broken report:\n%s", bad)
		}
	}
}
