package tlsrpt

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Resolver is the DNS the service uses (the delivery resolver).
type Resolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
	LookupIP(ctx context.Context, host string) ([]netip.Addr, error)
}

// Config configures a Service.
type Config struct {
	Dir          string // where day files are kept
	Submitter    string // this server's host name (TLS-Report-Submitter, file names)
	Organization string // organization-name; default Submitter
	Contact      string // contact-info; default postmaster@Submitter
	Resolver     Resolver
	// SendMail queues a report mail (the whole message, CRLF) from the
	// null sender to rcpt, through posthorn's own accept pipeline.
	SendMail func(ctx context.Context, rcpt string, msg []byte) error
	// Roots verify https: report servers; nil: the system's.
	Roots *x509.CertPool
	// HTTPSPort replaces the port of https: URIs without one (tests); 0: 443.
	HTTPSPort    int
	AllowPrivate bool
	Now          func() time.Time
	Log          *slog.Logger
	// Interval is how often counts are saved and finished days sent; 0: a minute.
	Interval time.Duration
}

// Service aggregates sessions and sends the reports.
type Service struct {
	cfg Config

	mu   sync.Mutex
	days map[string]map[string]*domainDay // "2006-01-02" → domain → counts
	// lastTry is when each finished day's sending was last tried.
	lastTry map[string]time.Time
	dirty   bool

	stop chan struct{}
	done chan struct{}
}

const dayFormat = "2006-01-02"

// New loads the saved day files of cfg.Dir.
func New(cfg Config) (*Service, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Organization == "" {
		cfg.Organization = cfg.Submitter
	}
	if cfg.Contact == "" {
		cfg.Contact = "postmaster@" + cfg.Submitter
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Minute
	}
	s := &Service{cfg: cfg, days: map[string]map[string]*domainDay{}, lastTry: map[string]time.Time{}}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("tlsrpt dir: %w", err)
	}
	files, err := filepath.Glob(filepath.Join(cfg.Dir, "*.json"))
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		day := strings.TrimSuffix(filepath.Base(f), ".json")
		if _, err := time.Parse(dayFormat, day); err != nil {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("tlsrpt: %w", err)
		}
		var m map[string]*domainDay
		if err := json.Unmarshal(b, &m); err != nil {
			cfg.Log.Warn("TLS report counts unreadable; dropped", "file", f, "err", err)
			continue
		}
		s.days[day] = m
	}
	return s, nil
}

// Record implements Recorder.
func (s *Service) Record(x Session) {
	if x.Domain == "" || x.Type == "" {
		return
	}
	at := x.At
	if at.IsZero() {
		at = s.cfg.Now()
	}
	day := at.UTC().Format(dayFormat)
	dom := strings.ToLower(x.Domain)
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.days[day]
	if m == nil {
		m = map[string]*domainDay{}
		s.days[day] = m
	}
	d := m[dom]
	if d == nil {
		d = &domainDay{}
		m[dom] = d
	}
	d.add(x)
	s.dirty = true
}

// Start sends the days that ended while posthorn was not running, then
// saves counts and sends finished days every Interval.
func (s *Service) Start(ctx context.Context) {
	s.stop, s.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(s.done)
		s.SendDue(ctx)
		t := time.NewTicker(s.cfg.Interval)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				if err := s.Save(); err != nil {
					s.cfg.Log.Error("save TLS report counts", "err", err)
				}
				s.SendDue(ctx)
			}
		}
	}()
}

// Stop ends the loop and saves the counts.
func (s *Service) Stop() error {
	if s.stop != nil {
		close(s.stop)
		<-s.done
		s.stop = nil
	}
	return s.Save()
}

// Save writes the counts of every day that changed.
func (s *Service) Save() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.dirty {
		return nil
	}
	for day, m := range s.days {
		if err := s.saveDayLocked(day, m); err != nil {
			return err
		}
	}
	s.dirty = false
	return nil
}

func (s *Service) saveDayLocked(day string, m map[string]*domainDay) error {
	path := filepath.Join(s.cfg.Dir, day+".json")
	if len(m) == 0 {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// SendDue sends the reports of days that are over (UTC) and not tried in
// the last hour.
func (s *Service) SendDue(ctx context.Context) {
	now := s.cfg.Now().UTC()
	today := now.Format(dayFormat)
	s.mu.Lock()
	var due []string
	for day := range s.days {
		if day < today && now.Sub(s.lastTry[day]) >= time.Hour {
			due = append(due, day)
		}
	}
	s.mu.Unlock()
	sort.Strings(due)
	for _, day := range due {
		s.SendDay(ctx, day)
	}
}

// SendDay sends the reports of one day, keeping the domains that failed
// for a later try (at most a day of tries).
func (s *Service) SendDay(ctx context.Context, day string) {
	start, err := time.Parse(dayFormat, day)
	if err != nil {
		return
	}
	s.mu.Lock()
	s.lastTry[day] = s.cfg.Now()
	doms := make([]string, 0, len(s.days[day]))
	for d := range s.days[day] {
		doms = append(doms, d)
	}
	s.mu.Unlock()
	sort.Strings(doms)
	for _, dom := range doms {
		s.mu.Lock()
		dd := s.days[day][dom]
		id := start.Format(dayFormat) + "T00:00:00Z+" + dom + "@" + s.cfg.Submitter
		rep := dd.report(start, s.cfg.Organization, s.cfg.Contact, id)
		s.mu.Unlock()
		err := s.sendDomain(ctx, start, dom, rep)
		s.mu.Lock()
		if err != nil && dd.Tries < 24 {
			dd.Tries++
			s.cfg.Log.Warn("TLS report not sent; will try again", "domain", dom, "day", day, "err", err)
		} else {
			if err != nil {
				s.cfg.Log.Warn("TLS report not sent; giving up", "domain", dom, "day", day, "err", err)
			}
			delete(s.days[day], dom)
		}
		if len(s.days[day]) == 0 {
			delete(s.days, day)
			delete(s.lastTry, day)
		}
		if err := s.saveDayLocked(day, s.days[day]); err != nil {
			s.cfg.Log.Error("save TLS report counts", "err", err)
		}
		s.mu.Unlock()
	}
}

// errNoRUA: the domain does not ask for reports.
var errNoRUA = errors.New("no _smtp._tls TXT record with rua")

// RUA returns the report URIs of domain's "_smtp._tls" TXT record.
func RUA(ctx context.Context, r Resolver, domain string) ([]string, error) {
	txts, err := r.LookupTXT(ctx, "_smtp._tls."+domain)
	if err != nil {
		return nil, err
	}
	var found []string
	n := 0
	for _, t := range txts {
		fields := strings.Split(t, ";")
		if strings.TrimSpace(fields[0]) != "v=TLSRPTv1" {
			continue
		}
		n++
		for _, f := range fields[1:] {
			k, v, _ := strings.Cut(strings.TrimSpace(f), "=")
			if strings.TrimSpace(k) != "rua" {
				continue
			}
			for _, u := range strings.Split(v, ",") {
				if u = strings.TrimSpace(u); u != "" {
					found = append(found, u)
				}
			}
		}
	}
	if n != 1 || len(found) == 0 {
		return nil, errNoRUA // RFC 8460 §3: exactly one record, or none applies
	}
	return found, nil
}

func (s *Service) sendDomain(ctx context.Context, day time.Time, domain string, rep Report) error {
	ruas, err := RUA(ctx, s.cfg.Resolver, domain)
	if errors.Is(err, errNoRUA) {
		return nil // nothing to do: counted, not wanted
	}
	if err != nil {
		return err
	}
	gz, err := rep.Gzip()
	if err != nil {
		return err
	}
	name := fmt.Sprintf("%s!%s!%d!%d!%s.json.gz", s.cfg.Submitter, domain, day.Unix(), day.Add(24*time.Hour-time.Second).Unix(), uniq())
	var errs []error
	sent := 0
	for _, u := range ruas {
		var err error
		switch {
		case strings.HasPrefix(strings.ToLower(u), "mailto:"):
			err = s.mail(ctx, strings.TrimSpace(u[len("mailto:"):]), domain, rep, gz, name)
		case strings.HasPrefix(strings.ToLower(u), "https:"):
			err = s.post(ctx, u, gz)
		default:
			err = fmt.Errorf("report URI %q: only mailto: and https: are supported", u)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		sent++
		s.cfg.Log.Info("TLS report sent", "domain", domain, "to", u, "policies", len(rep.Policies))
	}
	if sent == 0 {
		return errors.Join(errs...)
	}
	return nil
}

func uniq() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Message builds the report mail (RFC 8460 §5.3).
func (s *Service) Message(to, domain string, rep Report, gz []byte, filename string) []byte {
	var b bytes.Buffer
	boundary := "tlsrpt-" + uniq()
	w := func(format string, a ...any) { fmt.Fprintf(&b, format+"\r\n", a...) }
	w("From: TLS reporting <noreply-smtp-tls-reporting@%s>", s.cfg.Submitter)
	w("To: <%s>", to)
	w("Subject: Report Domain: %s Submitter: %s Report-ID: <%s>", domain, s.cfg.Submitter, rep.ReportID)
	w("Date: %s", s.cfg.Now().UTC().Format(time.RFC1123Z))
	w("Message-ID: <%s.tlsrpt@%s>", uniq(), s.cfg.Submitter)
	w("TLS-Report-Domain: %s", domain)
	w("TLS-Report-Submitter: %s", s.cfg.Submitter)
	w("MIME-Version: 1.0")
	w("Content-Type: multipart/report; report-type=\"tlsrpt\"; boundary=\"%s\"", boundary)
	w("")
	w("--%s", boundary)
	w("Content-Type: text/plain; charset=utf-8")
	w("")
	w("This is an aggregate TLS report (RFC 8460) from %s for %s, %s.", s.cfg.Submitter, domain, rep.DateRange.Start.Format(dayFormat))
	w("")
	w("--%s", boundary)
	w("Content-Type: application/tlsrpt+gzip")
	w("Content-Transfer-Encoding: base64")
	w("Content-Disposition: %s", mime.FormatMediaType("attachment", map[string]string{"filename": filename}))
	w("")
	enc := base64.StdEncoding.EncodeToString(gz)
	for len(enc) > 76 {
		w("%s", enc[:76])
		enc = enc[76:]
	}
	w("%s", enc)
	w("--%s--", boundary)
	return b.Bytes()
}

func (s *Service) mail(ctx context.Context, to, domain string, rep Report, gz []byte, filename string) error {
	if s.cfg.SendMail == nil {
		return errors.New("mail sending not configured")
	}
	if u, err := url.PathUnescape(to); err == nil {
		to = u
	}
	if i := strings.IndexByte(to, '?'); i >= 0 {
		to = to[:i]
	}
	if !strings.Contains(to, "@") || strings.ContainsAny(to, "\r\n<> ") {
		return fmt.Errorf("report address %q is not an address", to)
	}
	return s.cfg.SendMail(ctx, to, s.Message(to, domain, rep, gz, filename))
}

// post sends the report by HTTPS POST (RFC 8460 §5.4), dialling only an
// address it has checked.
func (s *Service) post(ctx context.Context, raw string, gz []byte) error {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.Hostname() == "" {
		return fmt.Errorf("report URI %q: want https://host/path", raw)
	}
	host := u.Hostname()
	port := u.Port()
	if port == "" {
		port = "443"
		if s.cfg.HTTPSPort != 0 {
			port = strconv.Itoa(s.cfg.HTTPSPort)
		}
	}
	ips, err := s.cfg.Resolver.LookupIP(ctx, host)
	if err != nil {
		return fmt.Errorf("report host %s: %w", host, err)
	}
	var ip netip.Addr
	for _, a := range ips {
		if s.cfg.AllowPrivate || publicAddr(a) {
			ip = a
			break
		}
	}
	if !ip.IsValid() {
		return fmt.Errorf("report host %s resolves only to private or local addresses (%v); refused (tlsrpt.allow_private)", host, ips)
	}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", net.JoinHostPort(ip.String(), port))
		},
		TLSClientConfig:   &tls.Config{ServerName: host, RootCAs: s.cfg.Roots, MinVersion: tls.VersionTLS12},
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr, Timeout: time.Minute,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, raw, bytes.NewReader(gz))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/tlsrpt+gzip")
	resp, err := cl.Do(req)
	if err != nil {
		return fmt.Errorf("post report to %s: %w", raw, err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("post report to %s: %s", raw, resp.Status)
	}
	return nil
}

// publicAddr reports whether a is a globally routed unicast address.
func publicAddr(a netip.Addr) bool {
	a = a.Unmap()
	if !a.IsGlobalUnicast() || a.IsPrivate() || a.IsLoopback() || a.IsLinkLocalUnicast() {
		return false
	}
	for _, p := range []netip.Prefix{netip.MustParsePrefix("100.64.0.0/10"), netip.MustParsePrefix("192.0.0.0/24"),
		netip.MustParsePrefix("198.18.0.0/15"), netip.MustParsePrefix("64:ff9b:1::/48")} {
		if p.Contains(a) {
			return false
		}
	}
	return true
}
