package mtasts

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"
)

// Resolver is the DNS the fetcher and the manager use: the delivery
// resolver, so a policy host is found where the MX hosts are (the test
// DNS server in tests).
type Resolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
	LookupIP(ctx context.Context, host string) ([]netip.Addr, error)
}

// Fetcher gets policies over HTTPS.
type Fetcher struct {
	Resolver Resolver
	// Roots verify the policy host's certificate; nil: the system's.
	Roots *x509.CertPool
	// Port is the HTTPS port (443; tests use another).
	Port int
	// Timeout bounds the whole fetch; 0: one minute (RFC 8461 §3.3
	// suggests a minute at most).
	Timeout time.Duration
}

// FetchError is a failed fetch; Detail is short text for TLS reports.
type FetchError struct {
	Domain string
	Err    error
}

func (e *FetchError) Error() string {
	return "fetch MTA-STS policy of " + e.Domain + ": " + e.Err.Error()
}
func (e *FetchError) Unwrap() error { return e.Err }

// Fetch gets and parses the policy of domain.
func (f *Fetcher) Fetch(ctx context.Context, domain string) (*Policy, error) {
	p, err := f.fetch(ctx, domain)
	if err != nil {
		return nil, &FetchError{Domain: domain, Err: err}
	}
	return p, nil
}

func (f *Fetcher) fetch(ctx context.Context, domain string) (*Policy, error) {
	timeout := f.Timeout
	if timeout <= 0 {
		timeout = time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	host := "mta-sts." + domain
	port := f.Port
	if port == 0 {
		port = 443
	}
	tr := &http.Transport{
		// Dial the addresses our resolver gives, not the system's: the
		// same DNS view as for the MX hosts.
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			ips, err := f.Resolver.LookupIP(ctx, host)
			if err != nil {
				return nil, err
			}
			var d net.Dialer
			var last error
			for _, ip := range ips {
				c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(ip.String(), strconv.Itoa(port)))
				if err == nil {
					return c, nil
				}
				last = err
			}
			return nil, last
		},
		TLSClientConfig:        &tls.Config{ServerName: host, RootCAs: f.Roots, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:      false,
		DisableKeepAlives:      true,
		ResponseHeaderTimeout:  timeout,
		MaxResponseHeaderBytes: 16 << 10,
	}
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr, Timeout: timeout,
		// RFC 8461 §3.3: "HTTP 3xx redirects MUST NOT be followed".
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	url := "https://" + host
	if port != 443 {
		url += ":" + strconv.Itoa(port)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/.well-known/mta-sts.txt", nil)
	if err != nil {
		return nil, err
	}
	resp, err := cl.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("bad https response code: %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxPolicySize+1))
	if err != nil {
		return nil, fmt.Errorf("read policy: %w", err)
	}
	if len(body) > MaxPolicySize {
		return nil, errors.New("policy larger than 64 KiB")
	}
	return Parse(body)
}
