// Package server wires posthorn's parts together in one place, with every
// dependency explicit: store, tenants, scheduler, delivery, the accept
// pipeline, the SMTP listener and the HTTP and admin APIs. It owns their
// start and stop order, the graceful shutdown (shutdown.go), configuration
// reloads (reload.go) and the operator endpoints of the admin socket:
// status, reload, backup (ops.go).
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/posthorn/posthorn/internal/abuse"
	"github.com/posthorn/posthorn/internal/accept"
	"github.com/posthorn/posthorn/internal/api/admin"
	v1 "github.com/posthorn/posthorn/internal/api/v1"
	"github.com/posthorn/posthorn/internal/bounce"
	"github.com/posthorn/posthorn/internal/classify"
	"github.com/posthorn/posthorn/internal/config"
	"github.com/posthorn/posthorn/internal/delivery"
	"github.com/posthorn/posthorn/internal/delivery/tlsrpt"
	"github.com/posthorn/posthorn/internal/dkimqueue"
	"github.com/posthorn/posthorn/internal/domain"
	"github.com/posthorn/posthorn/internal/events"
	"github.com/posthorn/posthorn/internal/events/alerts"
	"github.com/posthorn/posthorn/internal/events/webhook"
	"github.com/posthorn/posthorn/internal/inbound"
	"github.com/posthorn/posthorn/internal/metrics"
	"github.com/posthorn/posthorn/internal/queue"
	"github.com/posthorn/posthorn/internal/queue/ops"
	"github.com/posthorn/posthorn/internal/scan"
	"github.com/posthorn/posthorn/internal/shaping"
	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/store/postgres"
	"github.com/posthorn/posthorn/internal/store/sqlite"
	"github.com/posthorn/posthorn/internal/submission"
	"github.com/posthorn/posthorn/internal/suppress"
	"github.com/posthorn/posthorn/internal/tenant"
	"github.com/posthorn/posthorn/internal/tlscert"
	"github.com/posthorn/posthorn/internal/unsubscribe"
	"github.com/posthorn/posthorn/internal/verp"
	"github.com/posthorn/posthorn/internal/web"
)

// Server is a running posthorn.
type Server struct {
	cfg     config.Config
	log     *slog.Logger
	res     *delivery.Resolver // the delivery's DNS lookups (its counters are metrics)
	lock    *os.File
	st      store.Store
	tenants *tenant.Manager
	sched   *queue.Scheduler
	smtp    *submission.Server
	smtps   *submission.Server // implicit TLS (submissions_listen)
	certs   *tlscert.Reloader  // the listeners' certificate files; nil with the self-signed one
	tlsrpt  *tlsrpt.Service    // TLS reports; nil when off
	http    *http.Server
	admin   *http.Server
	adminLn net.Listener
	httpLn  net.Listener
	janitor chan struct{}
	pipe    *accept.Pipeline
	inbound *inbound.Server
	sup     *suppress.List
	dl      *delivery.Deliverer
	ops     opsState // reload, drain, status (reload.go, shutdown.go, ops.go)
	domains *domain.Service
	signq   *dkimqueue.Queue // DKIM signing after the commit
	// sendmail serves posthorn sendmail on its own socket (sendmail.go).
	sendmail *http.Server

	metrics    *metrics.Collector // metrics.go
	metricsH   http.Handler
	metricsSrv *http.Server
	webhooks   *webhook.Sender // events.go
	alerts     *alerts.Service
	guard      *abuse.Guard        // quotas and the anomaly detector
	scan       *scan.Check         // nil: no content scanning
	live       *events.Broadcaster // committed events for the live streams
	pruner     *events.Pruner
	rep        reputation        // source pools, blocklists, DMARC (reputation.go)
	cluster    *postgres.Cluster // this node's membership when the store is shared (cluster.go)

	// Created is set when this start created the default tenant; its
	// secrets are shown once.
	Created *tenant.Credentials
}

// OpenStore creates or checks the data directory, takes its lock (one
// posthorn per data directory) and opens the store. log (nil: none) gets
// the store's background errors.
func OpenStore(cfg *config.Config, log *slog.Logger) (store.Store, *os.File, error) {
	if err := prepareDataDir(cfg.DataDir); err != nil {
		return nil, nil, err
	}
	lock, err := os.OpenFile(filepath.Join(cfg.DataDir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("lock file: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, nil, fmt.Errorf("data dir %s is in use by another posthorn: %w", cfg.DataDir, err)
	}
	if cfg.SharedStore() {
		st, err := openShared(cfg, log) // cluster.go
		if err != nil {
			lock.Close()
			return nil, nil, err
		}
		return st, lock, nil
	}
	var opts []sqlite.Option
	if log != nil {
		opts = append(opts, sqlite.WithLogger(log.With("part", "store")))
	}
	st, err := sqlite.Open(cfg.DBPath(), opts...)
	if err != nil {
		lock.Close()
		return nil, nil, err
	}
	return st, lock, nil
}

// Init creates the default tenant and its credentials in an empty data
// directory (or shared store); it returns nil credentials if it was
// initialised already.
func Init(ctx context.Context, cfg *config.Config) (*tenant.Credentials, error) {
	st, release, err := openForTool(cfg) // cluster.go
	if err != nil {
		return nil, err
	}
	defer release()
	return tenant.New(st).EnsureDefault(ctx)
}

// Start opens everything and starts serving. On error, what was started is
// stopped again.
func Start(ctx context.Context, cfg config.Config, log *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	for _, w := range cfg.Warnings() {
		log.Warn("config: " + w)
	}
	s := &Server{cfg: cfg, log: log}
	s.ops.started = time.Now()
	if err := s.start(ctx); err != nil {
		s.Stop(context.Background())
		return nil, err
	}
	return s, nil
}

func (s *Server) start(ctx context.Context) error {
	cfg := &s.cfg
	var err error
	if s.st, s.lock, err = OpenStore(cfg, s.log); err != nil {
		return err
	}
	s.live = events.NewBroadcaster()
	if el, ok := s.st.(store.EventLog); ok {
		el.SetEventSink(s.live.Publish)
		s.pruner = &events.Pruner{Store: el, EventsRetention: cfg.EventsRetention.Duration, BodyRetention: cfg.BodyRetention.Duration,
			Log: s.log.With("part", "retention")}
		s.pruner.Start(ctx)
	}
	s.tenants = tenant.New(s.st)
	if s.Created, err = s.tenants.EnsureDefault(ctx); err != nil {
		return fmt.Errorf("first start: %w", err)
	}
	def, err := s.tenants.Resolve(ctx, tenant.DefaultTenant)
	if err != nil {
		return err
	}

	res, err := delivery.NewResolver(cfg.DNSServer)
	if err != nil {
		return err
	}
	s.res = res
	routes := routesOf(cfg)
	tlsPolicy, err := s.deliveryTLS(res)
	if err != nil {
		return err
	}
	var provs []delivery.Provider
	for _, p := range cfg.Providers {
		provs = append(provs, delivery.Provider{Name: p.Name, MXSuffixes: p.MXSuffixes})
	}
	s.dl = delivery.New(delivery.Config{
		Hostname: cfg.Hostname, Port: cfg.DeliveryPort, Routes: routes,
		Providers:      delivery.MergeProviders(delivery.DefaultProviders, provs),
		ConnectTimeout: cfg.Delivery.ConnectTimeout.Duration, CommandTimeout: cfg.Delivery.CommandTimeout.Duration,
		DataTimeout: cfg.Delivery.DataTimeout.Duration, TLS: tlsPolicy,
	}, res)
	dl := s.dl
	// The addresses load in the background; lookups ask the store meanwhile.
	sup, err := suppress.Start(ctx, s.st, s.log.With("part", "suppress"))
	if err != nil {
		return fmt.Errorf("suppression lists: %w", err)
	}
	s.sup = sup
	var signer *verp.Signer
	if cfg.BounceDomain != "" {
		key, err := verp.LoadKey(cfg.VERPKey())
		if err != nil {
			return err
		}
		signer = verp.New(key, cfg.BounceDomain, 30*24*time.Hour)
	}
	var unsub *unsubscribe.Service
	lanes := map[store.Lane]bool{}
	if cfg.Unsubscribe.BaseURL != "" {
		key, err := verp.LoadKey(cfg.UnsubscribeKey())
		if err != nil {
			return err
		}
		unsub = &unsubscribe.Service{Key: key, BaseURL: strings.TrimSuffix(cfg.Unsubscribe.BaseURL, "/"), Mailto: cfg.Unsubscribe.Mailto,
			Store: s.st, Supp: sup, Log: s.log.With("part", "unsubscribe")}
		for _, l := range cfg.Unsubscribe.Lanes {
			lane, err := store.ParseLane(l)
			if err != nil {
				return fmt.Errorf("unsubscribe lanes: %w", err)
			}
			lanes[lane] = true
		}
	}
	if err := s.startPools(); err != nil {
		return err
	}
	cls := classify.Default()
	if cfg.Classify.Rules != "" {
		if cls, err = classify.Load(cfg.Classify.Rules, cfg.Classify.Replace); err != nil {
			return fmt.Errorf("classify rules: %w", err)
		}
	}
	s.sched = queue.New(queue.Config{
		Cluster:    s.joinCluster(), // cluster.go; nil on the embedded store
		Classifier: cls, Suppressions: sup, ReturnPath: returnPath(signer), UnsubscribeLanes: lanes,
		Unsubscribe: unsubHeaders(unsub), SignPending: s.signPending, Signing: s.signing, SignAdded: s.signAdded, OnFailed: s.onFailed, Source: s.poolSource(), OnHoldAfter: cfg.Suppress.OnHoldAfter,
		OnHoldWindow: cfg.Suppress.OnHoldWindow.Duration, OnHoldFor: cfg.Suppress.OnHoldFor.Duration,
		RetryMin: cfg.RetryMin.Duration, RetryMax: cfg.RetryMax.Duration,
		MaxConnections: cfg.Delivery.MaxConnections, MaxConnsPerDest: cfg.Delivery.MaxConnectionsPerDest,
		MaxMsgsPerConn: cfg.Delivery.MaxMessagesPerConnection, IdleTimeout: cfg.Delivery.IdleTimeout.Duration,
		RatePerMinute: cfg.Delivery.RatePerMinute, Cooldown: cfg.Delivery.Cooldown.Duration,
		Limits: func(dest string) shaping.Limits {
			l := s.current().DestinationLimitsFor(dest) // reloadable
			return shaping.Limits{MaxConns: l.MaxConnections, MaxMsgsPerConn: l.MaxMessagesPerConnection, MaxRcptsPerTx: l.MaxRecipientsPerTx,
				RatePerMinute: l.RatePerMinute, Cooldown: l.Cooldown.Duration}
		},
	}, s.st, dl, s.log.With("part", "queue"))
	if err := s.startDomains(ctx); err != nil {
		return err
	}
	// Each signer gets a P of its own on top of GOMAXPROCS: a signer
	// thread is SCHED_IDLE, and while the kernel holds it back for busier
	// threads it still holds the P it runs on, which would take that P
	// from accepting and delivering too (measured with bench/dkim).
	signers := runtime.GOMAXPROCS(0)
	runtime.GOMAXPROCS(runtime.GOMAXPROCS(0) + signers)
	s.signq = dkimqueue.Start(dkimqueue.Config{Store: s.st, Keys: s.domains, Sched: s.sched, Bodies: s.sched.Bodies,
		Workers: signers, Log: s.log.With("part", "dkim")})
	if err := s.startMetrics(dl); err != nil {
		return err
	}
	if err := s.startBlocklists(); err != nil {
		return err
	}
	s.dmarcIntake()
	// The pipeline exists before the scheduler starts: workers started for
	// loaded mail may report failures at once, and sendDSN uses it.
	s.pipe = &accept.Pipeline{Store: s.st, Senders: s.domains, Deferred: s.signq, AllowUnverifiedSenders: cfg.AllowUnverifiedSenders, Sched: s.sched, Bodies: s.sched.Bodies, Hostname: cfg.Hostname,
		Lifetime: cfg.QueueLifetime.Duration, Now: time.Now, IdempotencyTTL: cfg.API.IdempotencyTTL.Duration, Log: s.log.With("part", "accept"),
		Suppressed: func(tenantID, addr string) (store.Suppression, bool) {
			return sup.Check(tenantID, addr)
		}}
	if s.pipe.Checks, err = s.protection(ctx, lanes); err != nil {
		return err
	}
	s.pipe.OnEventError = func(e store.Event, err error) { s.log.Error("record accept event", "type", e.Type, "err", err) }
	pipe := s.pipe
	if err := s.startAlerts(ctx, dl); err != nil { // events.go; before the scheduler starts, so held lanes stay held
		return err
	}
	if err := s.sched.Start(ctx); err != nil {
		return fmt.Errorf("scheduler: %w", err)
	}
	if err := s.startWebhooks(ctx, res); err != nil {
		return err
	}
	if s.tlsrpt != nil {
		s.tlsrpt.Start(ctx)
	}
	ops := &ops.QueueOps{Store: s.st, Sched: s.sched, Inspect: s.sched, Lifetime: cfg.QueueLifetime.Duration, Now: time.Now}

	if err := s.startAdmin(ops); err != nil {
		return err
	}
	if cfg.HTTPListen != "" {
		public := &v1.Server{Store: s.st, Tenants: s.tenants, Accept: pipe, Ops: ops, Hostname: cfg.Hostname,
			MaxBulk: cfg.API.MaxBulk, MaxMessageSize: int(cfg.SMTP.MaxMessageSize), SendHorizon: cfg.API.SendHorizon.Duration,
			MaxBulkBytes: cfg.API.MaxBulkBytes, MaxInflight: cfg.API.MaxInflightBytes, MaxLineLength: cfg.SMTP.MaxLineLength,
			Destinations: func() any { return s.sched.Destinations() }, Suppress: s.sup, Domains: s.domains, Alerts: s.alertsAPI(), Now: time.Now, Log: s.log.With("part", "api"),
			Live: s.live, Reputation: s.reputationAPI()}
		var unsubH http.Handler
		if unsub != nil {
			unsubH = unsub.Handler()
		}
		ui, err := web.New(web.Config{Store: s.st, Tenants: s.tenants, Ops: ops, Suppress: s.sup,
			Destinations: s.sched.Destinations, Domains: s.domains, Now: time.Now, Log: s.log.With("part", "web")})
		if err != nil {
			return fmt.Errorf("dashboard: %w", err)
		}
		if err := s.startHTTP(public.Handler(), unsubH, ui.Handler()); err != nil {
			return err
		}
	}
	s.janitor = make(chan struct{})
	go s.purgeLoop(s.janitor)
	if signer != nil {
		icfg := inbound.Config{Listen: cfg.InboundListen, Hostname: cfg.Hostname, MaxMessageSize: cfg.SMTP.MaxMessageSize}
		if s.rep.dmarc != nil {
			icfg.RUA, icfg.Reports = cfg.DMARC.RUA, reportIntake{s.rep.dmarc}
		}
		s.inbound = inbound.New(icfg, signer, s.st, sup, s.log.With("part", "inbound"))
		if err := s.inbound.Start(); err != nil {
			s.inbound = nil
			return err
		}
	}
	if cfg.SMTPListen == "" && cfg.SubmissionsListen == "" {
		return nil
	}
	tlsCfg, err := s.listenerTLS()
	if err != nil {
		return err
	}
	for _, l := range []struct {
		addr     string
		implicit bool
		srv      **submission.Server
	}{{cfg.SMTPListen, false, &s.smtp}, {cfg.SubmissionsListen, true, &s.smtps}} {
		if l.addr == "" {
			continue
		}
		trusted, _ := cfg.TrustedPrefixes()
		srv := submission.New(submission.Config{
			Listen: l.addr, Hostname: cfg.Hostname, TLS: tlsCfg, ImplicitTLS: l.implicit,
			MaxMessageSize: cfg.SMTP.MaxMessageSize, MaxRecipients: cfg.SMTP.MaxRecipients,
			MaxLineLength: cfg.SMTP.MaxLineLength, MaxConnections: cfg.SMTP.MaxConnections,
			ReadTimeout: cfg.SMTP.ReadTimeout.Duration, AllowInsecureAuth: cfg.SMTP.AllowInsecureAuth,
			Trusted: trusted, DefaultTenantID: def.ID, MaxAuthFailures: cfg.SMTP.MaxAuthFailures,
			MaxErrors: cfg.SMTP.MaxErrors, MaxMessagesPerSession: cfg.SMTP.MaxMessagesPerSession,
			MaxConnectionsPerIP: cfg.SMTP.MaxConnectionsPerIP, DataTimeout: cfg.SMTP.DataTimeout.Duration,
		}, pipe, s.tenants, s.log.With("part", "smtp"))
		if err := srv.Start(ctx); err != nil {
			return err
		}
		*l.srv = srv
	}
	return nil
}

// startDomains loads the sending domains (DKIM keys sealed under dkim.key
// in the data directory) and starts their periodic DNS checks.
func (s *Server) startDomains(ctx context.Context) error {
	cfg := &s.cfg
	seal, err := domain.LoadSealer(filepath.Join(cfg.DataDir, "dkim.key"))
	if err != nil {
		return err
	}
	d, err := domain.New(domain.Config{Hostname: cfg.Hostname, BounceDomain: cfg.BounceDomain, SPF: cfg.Domains.SPF,
		DNSServer: cfg.DNSServer, CheckInterval: cfg.Domains.CheckInterval.Duration}, s.st, seal, s.log.With("part", "domains"))
	if err != nil {
		return fmt.Errorf("sending domains: %w", err)
	}
	if err := d.Load(ctx); err != nil {
		return fmt.Errorf("sending domains: %w", err)
	}
	if err := d.Start(ctx); err != nil {
		return err
	}
	s.domains = d
	if cfg.AllowUnverifiedSenders {
		s.log.Warn("SENDER CHECK OFF: allow_unverified_senders is set, tenants may send from any domain (mail of their verified domains is still DKIM-signed)")
	}
	return nil
}

func (s *Server) startAdmin(ops *ops.QueueOps) error {
	path := s.cfg.AdminSocket()
	os.Remove(path) // a stale socket from a killed run; the data dir lock says we own it
	ln, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("admin socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return err
	}
	adm := &admin.Server{Store: s.st, Ops: ops, Tenants: s.tenants, Suppress: s.sup, Domains: s.domains, Alerts: s.alertsAPI(), Accept: s.pipe, SendmailTenant: s.cfg.Sendmail.Tenant, MaxMessageSize: int(s.cfg.SMTP.MaxMessageSize), Stats: func() any { return s.sched.Stats() },
		Destinations: func() any { return s.sched.Destinations() }, Log: s.log.With("part", "admin"), Live: s.live}
	s.adminLn = ln
	mux := http.NewServeMux()
	mux.Handle("/admin/", adm.Handler())
	mux.Handle("/admin/v1/abuse", s.abuseAdmin(ops))
	mux.Handle("/admin/v1/abuse/", s.abuseAdmin(ops))
	rep := admin.ReputationHandler(s.reputationAPI())
	for _, p := range []string{"GET /admin/v1/pools", "POST /admin/v1/blocklists/check", "GET /admin/v1/dmarc"} {
		mux.Handle(p, rep)
	}
	// Profiling for operators, reachable only through the admin socket.
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	s.opsRoutes(mux)
	s.clusterRoutes(mux) // cluster.go
	s.admin = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go s.admin.Serve(ln)
	return s.startSendmail(adm)
}

// sendDSN tells the envelope sender of SMTP-submitted mail, when the SMTP
// user asked for it, that recipients finally failed: an RFC 3464 DSN with
// the null sender (so it can never bounce back in a loop).
func (s *Server) sendDSN(messageID string, failed []queue.FailedRcpt) {
	ctx := context.Background()
	m, err := s.st.GetMessage(ctx, "", messageID, true)
	if err != nil || m.Sender == "" || m.Source != "smtp" || m.SMTPUser == "" {
		return
	}
	u, err := s.st.GetSMTPUser(ctx, m.SMTPUser)
	if err != nil || !u.SendDSN {
		return
	}
	hdr := m.Body
	if i := strings.Index(string(m.Body), "\r\n\r\n"); i >= 0 {
		hdr = m.Body[:i+2]
	}
	var fs []bounce.Failed
	for _, f := range failed {
		fs = append(fs, bounce.Failed{Recipient: f.Addr, Reply: f.Outcome.Reply, Detail: f.Outcome.Error, RemoteMTA: f.Outcome.MX,
			LastTry: f.Outcome.StartedAt})
	}
	body := bounce.Compose(s.cfg.Hostname, m.Sender, m.CreatedAt, fs, hdr, time.Now())
	if _, err := s.pipe.Accept(ctx, &accept.Submission{TenantID: m.TenantID, Source: "dsn", Protocol: "local",
		Sender: "", Recipients: []string{m.Sender}, Body: body, Lane: store.LaneHigh, LaneFixed: true}); err != nil {
		s.log.Error("send DSN", "message", messageID, "err", err)
	}
}

// signPending DKIM-signs a message that awaits its signature before the
// queue sends it (internal/dkimqueue).
func (s *Server) signPending(ctx context.Context, m *store.Message) (*store.Message, error) {
	if s.signq == nil {
		return nil, fmt.Errorf("message %s awaits its DKIM signature: signing is not running", m.ID)
	}
	return s.signq.Sign(ctx, m)
}

// signing reports whether the background signers still have message id.
func (s *Server) signing(id string) bool {
	return s.signq != nil && s.signq.Signing(id)
}

// signAdded DKIM-signs the List-Unsubscribe fields of one delivery of a
// message posthorn signed (domain.Service.SignAdded).
func (s *Server) signAdded(m *store.Message, added []byte) ([]byte, error) {
	if s.domains == nil {
		return nil, fmt.Errorf("sending domains are not loaded")
	}
	return s.domains.SignAdded(m.TenantID, m.DKIMDomain, added, m.Body)
}

func unsubHeaders(u *unsubscribe.Service) func(int64) []byte {
	if u == nil {
		return nil
	}
	return u.Headers
}

func returnPath(s *verp.Signer) func(string, int64) (string, error) {
	if s == nil {
		return nil
	}
	return s.ReturnPath
}

// purgeLoop deletes expired idempotency keys every hour.
func (s *Server) purgeLoop(stop chan struct{}) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			if n, err := s.st.PurgeIdempotency(context.Background(), time.Now()); err != nil {
				s.log.Error("purge idempotency keys", "err", err)
			} else if n > 0 {
				s.log.Info("purged expired idempotency keys", "count", n)
			}
		}
	}
}

func (s *Server) startHTTP(v1, unsub, ui http.Handler) error {
	ln, err := net.Listen("tcp", s.cfg.HTTPListen)
	if err != nil {
		return fmt.Errorf("http listen %s: %w", s.cfg.HTTPListen, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/", v1)
	mux.Handle("/ui/", ui) // the dashboard (internal/web)
	mux.Handle("GET /ui", http.RedirectHandler("/ui/", http.StatusMovedPermanently))
	if unsub != nil {
		mux.Handle("/unsubscribe/", unsub)
	}
	if s.metricsH != nil {
		mux.Handle("GET /metrics", s.metricsH)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte("ok\n"))
	})
	s.httpLn = ln
	s.http = &http.Server{Handler: s.refuseWhileDraining(mux), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	go s.http.Serve(ln)
	s.log.Info("http listening", "addr", ln.Addr().String())
	return nil
}

// SMTPAddr is the submission listener's address.
func (s *Server) SMTPAddr() net.Addr { return s.smtp.Addr() }

// SubmissionsAddr is the implicit-TLS submission listener's address.
func (s *Server) SubmissionsAddr() net.Addr { return s.smtps.Addr() }

// Stop shuts down in order: stop taking mail, let deliveries in flight
// finish, then close the store.
func (s *Server) Stop(ctx context.Context) error {
	var errs []error
	if s.janitor != nil {
		close(s.janitor)
	}
	if s.smtp != nil {
		errs = append(errs, s.smtp.Stop(ctx))
	}
	if s.smtps != nil {
		errs = append(errs, s.smtps.Stop(ctx))
	}
	if s.certs != nil {
		s.certs.Stop()
	}
	if s.inbound != nil {
		errs = append(errs, s.inbound.Stop(ctx))
	}
	if s.live != nil {
		s.live.Close() // ends the event streams, which Shutdown would wait for
	}
	if s.http != nil {
		errs = append(errs, s.http.Shutdown(ctx))
	}
	if s.domains != nil {
		s.domains.Stop()
	}
	errs = append(errs, s.stopMetrics(ctx))
	if s.alerts != nil {
		s.alerts.Stop()
	}
	if s.signq != nil {
		s.signq.Stop() // what is not signed yet stays pending, signed before delivery after the next start
	}
	if s.sched != nil {
		errs = append(errs, s.sched.Stop(ctx))
	}
	if s.webhooks != nil {
		s.webhooks.Stop()
	}
	if s.tlsrpt != nil {
		errs = append(errs, s.tlsrpt.Stop()) // after the last delivery: saves the day's counts
	}
	s.stopReputation()
	if s.admin != nil {
		errs = append(errs, s.admin.Shutdown(ctx))
		os.Remove(s.cfg.AdminSocket())
	}
	if s.sendmail != nil {
		errs = append(errs, s.sendmail.Shutdown(ctx))
		os.Remove(s.cfg.SendmailSocket())
	}
	if s.pruner != nil {
		s.pruner.Stop()
	}
	s.sup.Stop() // a background load still running
	if s.st != nil {
		errs = append(errs, s.st.Close())
	}
	if s.lock != nil {
		s.lock.Close()
	}
	return errors.Join(errs...)
}
