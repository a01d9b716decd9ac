package delivery

import (
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/delivery/mtasts"
	"github.com/posthorn/posthorn/internal/delivery/tlsrpt"
	"github.com/posthorn/posthorn/internal/testkit"
)

// tlsEnv is a small internet for TLS policy tests: the test DNS server, a
// test CA, fake MX hosts with certificates from it, and an HTTPS server
// answering as mta-sts.<domain> for every domain of the test.
type tlsEnv struct {
	t       *testing.T
	dns     *testkit.DNS
	ca      *testkit.CA
	res     *Resolver
	https   *httptest.Server
	port    int // the HTTPS server's port
	mu      sync.Mutex
	policy  map[string]string // host → policy body
	fetches atomic.Int32
	reports *sessions
}

// sessions collects TLS-RPT session results.
type sessions struct {
	mu  sync.Mutex
	all []tlsrpt.Session
}

func (s *sessions) Record(x tlsrpt.Session) { s.mu.Lock(); s.all = append(s.all, x); s.mu.Unlock() }
func (s *sessions) list() []tlsrpt.Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]tlsrpt.Session(nil), s.all...)
}

func newTLSEnv(t *testing.T, stsDomains ...string) *tlsEnv {
	t.Helper()
	e := &tlsEnv{t: t, dns: testkit.StartDNS(t), policy: map[string]string{}, reports: &sessions{}}
	e.dns.SetTTL(0) // every lookup asks again: TXT id changes are seen at once
	var err error
	if e.ca, err = testkit.NewCA(); err != nil {
		t.Fatal(err)
	}
	if e.res, err = NewResolver(e.dns.Addr()); err != nil {
		t.Fatal(err)
	}
	var hosts []string
	for _, d := range stsDomains {
		hosts = append(hosts, "mta-sts."+d)
		e.dns.SetA("mta-sts."+d, "127.0.0.1")
	}
	cert, err := e.ca.Issue(hosts...)
	if err != nil {
		t.Fatal(err)
	}
	e.https = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.Host)
		e.mu.Lock()
		body, ok := e.policy[host]
		e.mu.Unlock()
		if r.URL.Path != "/.well-known/mta-sts.txt" || !ok {
			http.NotFound(w, r)
			return
		}
		e.fetches.Add(1)
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte(body))
	}))
	e.https.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	e.https.StartTLS()
	t.Cleanup(e.https.Close)
	_, p, _ := net.SplitHostPort(e.https.Listener.Addr().String())
	e.port, _ = strconv.Atoi(p)
	return e
}

// setSTS publishes an MTA-STS policy for domain with TXT id.
func (e *tlsEnv) setSTS(domain, id, body string) {
	e.mu.Lock()
	e.policy["mta-sts."+domain] = body
	e.mu.Unlock()
	e.dns.SetTXT("_mta-sts."+domain, "v=STSv1; id="+id)
}

// mx starts a fake MX on ip with script, named host in DNS and made the
// only MX of domain.
func (e *tlsEnv) mx(domain, host, ip string, port int, script testkit.Script) *testkit.MXServer {
	e.t.Helper()
	m := testkit.StartMX(e.t, ip, port, script)
	e.dns.SetMX(domain, testkit.MX{Pref: 10, Host: host})
	e.dns.SetA(host, ip)
	return m
}

func (e *tlsEnv) cert(hosts ...string) *tls.Certificate {
	e.t.Helper()
	c, err := e.ca.Issue(hosts...)
	if err != nil {
		e.t.Fatal(err)
	}
	return &c
}

// manager is an MTA-STS manager on the env's DNS and HTTPS server.
func (e *tlsEnv) manager(cacheFile string, now func() time.Time) *mtasts.Manager {
	return mtasts.NewManager(mtasts.Options{Fetcher: &mtasts.Fetcher{Resolver: e.res, Roots: e.ca.Pool, Port: e.port, Timeout: 5 * time.Second},
		CacheFile: cacheFile, Now: now})
}

// clock is a settable time for cache expiry tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }
