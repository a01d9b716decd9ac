package delivery

import (
	"strings"
	"sync"
)

// Provider groups the domains whose MX hosts a big mailbox provider runs:
// they share one destination, so one set of connections and limits.
type Provider struct {
	Name       string   `toml:"name"`
	MXSuffixes []string `toml:"mx_suffixes"` // e.g. ".google.com"
}

// DefaultProviders are the built-in groups (overridable by name in config).
var DefaultProviders = []Provider{
	{Name: "google", MXSuffixes: []string{".google.com", ".googlemail.com"}},
	{Name: "microsoft", MXSuffixes: []string{".protection.outlook.com", ".outlook.com", ".hotmail.com"}},
	{Name: "yahoo", MXSuffixes: []string{".yahoodns.net", ".yahoo.com"}},
	{Name: "apple", MXSuffixes: []string{".mail.icloud.com"}},
	{Name: "proton", MXSuffixes: []string{".protonmail.ch"}},
	{Name: "gmx", MXSuffixes: []string{".gmx.net", ".web.de"}},
	{Name: "mailru", MXSuffixes: []string{".mail.ru"}},
	{Name: "yandex", MXSuffixes: []string{".yandex.net", ".yandex.ru"}},
	{Name: "zoho", MXSuffixes: []string{".zoho.com", ".zoho.eu"}},
	{Name: "comcast", MXSuffixes: []string{".comcast.net"}},
}

// providerMap remembers which provider hosts a domain, learned from its
// MX hosts at the first connection.
type providerMap struct {
	rules []Provider
	mu    sync.Mutex
	byDom map[string]string
}

// match returns the provider whose MX suffix matches host, or "".
func (p *providerMap) match(host string) string {
	host = "." + strings.ToLower(strings.TrimSuffix(host, "."))
	for _, r := range p.rules {
		for _, suf := range r.MXSuffixes {
			if strings.HasSuffix(host, "."+strings.TrimPrefix(strings.ToLower(suf), ".")) {
				return r.Name
			}
		}
	}
	return ""
}

func (p *providerMap) learn(domain string, mxs []MXHost) {
	for _, mx := range mxs {
		if name := p.match(mx.Name); name != "" {
			p.mu.Lock()
			if len(p.byDom) > 1_000_000 {
				clear(p.byDom)
			}
			p.byDom[domain] = name
			p.mu.Unlock()
			return
		}
	}
}

func (p *providerMap) lookup(domain string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.byDom[domain]
}

// MergeProviders overrides built-in providers by name and appends new ones.
func MergeProviders(base, extra []Provider) []Provider {
	out := append([]Provider(nil), base...)
	for _, e := range extra {
		replaced := false
		for i := range out {
			if out[i].Name == e.Name {
				out[i], replaced = e, true
			}
		}
		if !replaced {
			out = append(out, e)
		}
	}
	return out
}

// hostMap remembers each domain's MX host names from its last lookup, so
// the queue can tell which domains a failing host would also fail.
type hostMap struct {
	mu    sync.Mutex
	byDom map[string][]string
}

func (h *hostMap) learn(domain string, mxs []MXHost) {
	names := make([]string, len(mxs))
	for i, mx := range mxs {
		names[i] = mx.Name
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.byDom) > 1_000_000 {
		clear(h.byDom)
	}
	h.byDom[domain] = names
}

func (h *hostMap) lookup(domain string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.byDom[domain]
}
