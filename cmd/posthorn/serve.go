package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/posthorn/posthorn/internal/config"
	"github.com/posthorn/posthorn/internal/logbuf"
	"github.com/posthorn/posthorn/internal/logthrottle"
	"github.com/posthorn/posthorn/internal/server"
)

func serveCmd(g *globals) *cobra.Command {
	var (
		smtpListen, httpListen, dnsServer, smarthost, hostname, trusted, logLevel string
		bounceDomain, inboundListen, metricsListen                                string
		submissionsListen, tlsCert, tlsKey                                        string
		storeURL, nodeName                                                        string
		deliveryPort                                                              int
		allowUnverified                                                           bool
		retryMin, retryMax, lifetime, shutdownTimeout                             time.Duration
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the mail server",
		Long: `Run posthorn: SMTP submission, the queue and delivery, the HTTP API and the admin socket.
With no config file and no flags it uses ./posthorn-data, SMTP on 127.0.0.1:2525 and HTTP on 127.0.0.1:8025.
On an empty data directory it first creates the default tenant and prints its credentials once.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// load reads the file and applies the flags; SIGHUP runs it again
			// on the file found now (not one that appears later).
			g.configPath = g.resolveConfigPath()
			load := func() (config.Config, error) {
				cfg, err := g.loadConfig()
				if err != nil {
					return cfg, err
				}
				f := cmd.Flags()
				set := func(name string, apply func()) {
					if f.Changed(name) {
						apply()
					}
				}
				set("smtp-listen", func() { cfg.SMTPListen = smtpListen })
				set("http-listen", func() { cfg.HTTPListen = httpListen })
				set("dns-server", func() { cfg.DNSServer = dnsServer })
				set("smarthost", func() { cfg.Smarthost = smarthost })
				set("hostname", func() { cfg.Hostname = hostname })
				set("trusted-networks", func() { cfg.TrustedNetworks = splitList(trusted) })
				set("delivery-port", func() { cfg.DeliveryPort = deliveryPort })
				set("retry-min", func() { cfg.RetryMin = config.Duration{Duration: retryMin} })
				set("retry-max", func() { cfg.RetryMax = config.Duration{Duration: retryMax} })
				set("queue-lifetime", func() { cfg.QueueLifetime = config.Duration{Duration: lifetime} })
				set("shutdown-timeout", func() { cfg.ShutdownTimeout = config.Duration{Duration: shutdownTimeout} })
				set("log-level", func() { cfg.LogLevel = logLevel })
				set("bounce-domain", func() { cfg.BounceDomain = bounceDomain })
				set("inbound-listen", func() { cfg.InboundListen = inboundListen })
				set("allow-unverified-senders", func() { cfg.AllowUnverifiedSenders = allowUnverified })
				set("metrics-listen", func() { cfg.MetricsListen = metricsListen })
				set("submissions-listen", func() { cfg.SubmissionsListen = submissionsListen })
				set("tls-cert", func() { cfg.SMTP.TLSCert = tlsCert })
				set("tls-key", func() { cfg.SMTP.TLSKey = tlsKey })
				set("store", func() { cfg.Store = storeURL })
				set("node-name", func() { cfg.NodeName = nodeName })
				return cfg, nil
			}
			cfg, err := load()
			if err != nil {
				return err
			}
			return serve(cfg, load)
		},
	}
	f := cmd.Flags()
	f.StringVar(&smtpListen, "smtp-listen", "", "SMTP submission address, with STARTTLS (default 127.0.0.1:2525; e.g. :587)")
	f.StringVar(&submissionsListen, "submissions-listen", "", "SMTP submission over implicit TLS, RFC 8314 (default: off; e.g. :465)")
	f.StringVar(&tlsCert, "tls-cert", "", "certificate chain (PEM) for the SMTP listeners, reloaded when the file changes (default: self-signed, for loopback)")
	f.StringVar(&tlsKey, "tls-key", "", "private key (PEM) of --tls-cert")
	f.StringVar(&httpListen, "http-listen", "", "HTTP API address (default 127.0.0.1:8025)")
	f.StringVar(&dnsServer, "dns-server", "", "DNS server host:port for MX lookups (default: /etc/resolv.conf)")
	f.IntVar(&deliveryPort, "delivery-port", 25, "TCP port of MX hosts")
	f.DurationVar(&retryMin, "retry-min", 0, "first retry delay (default 5m)")
	f.DurationVar(&retryMax, "retry-max", 0, "longest retry delay (default 1h)")
	f.DurationVar(&lifetime, "queue-lifetime", 0, "give up on a delivery after this long (default 120h)")
	f.DurationVar(&shutdownTimeout, "shutdown-timeout", 0, "on SIGTERM, wait this long for deliveries in flight (default 30s)")
	f.StringVar(&smarthost, "smarthost", "", "relay all mail through host:port (like Postfix's relayhost)")
	f.StringVar(&hostname, "hostname", "", "name in the SMTP greeting and in EHLO (default: this machine's FQDN)")
	f.StringVar(&trusted, "trusted-networks", "", "CIDRs that may submit without AUTH, comma separated (default none)")
	f.StringVar(&logLevel, "log-level", "", "debug, info, warn or error (default info)")
	f.StringVar(&bounceDomain, "bounce-domain", "", "domain for VERP return paths and the inbound bounce MX (default: none, VERP off)")
	f.StringVar(&inboundListen, "inbound-listen", "", "address of the inbound bounce MX (default :25; only with --bounce-domain)")
	f.BoolVar(&allowUnverified, "allow-unverified-senders", false, "let tenants send from domains that are not their verified sending domains (default: refused)")
	f.StringVar(&metricsListen, "metrics-listen", "", "address serving /metrics without authentication (default: none; /metrics on the HTTP listener needs an admin API key except from loopback)")
	storeFlag(cmd, &storeURL)
	f.StringVar(&nodeName, "node-name", "", "this node's name in a cluster (default: hostname-<hash of the data directory>)")
	f.SortFlags = false
	return cmd
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// serve runs the server until SIGTERM or SIGINT (a graceful shutdown);
// SIGHUP reloads the configuration (internal/server/reload.go). A second
// SIGTERM or SIGINT during the shutdown exits at once; what was being sent
// is retried after the next start.
func serve(cfg config.Config, load func() (config.Config, error)) error {
	level := new(slog.LevelVar)
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return fmt.Errorf("log level %q: %w", cfg.LogLevel, err)
	}
	// Repeated warnings and errors (a full disk fails every write) are
	// throttled so they cannot bury the rest of the log.
	// The log's lines leave in batches (one write for many lines; a
	// SIGKILL loses at most the last logbuf.Delay of them).
	logOut := logbuf.New(os.Stderr, logbuf.Delay)
	defer logOut.Close()
	log := slog.New(logthrottle.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: level}), logthrottle.Options{}))
	// Signals are caught from here on: a SIGHUP while starting must not
	// kill the process (the default action), and a SIGTERM waits for the
	// start to finish, then shuts down cleanly.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	srv, err := server.Start(context.Background(), cfg, log)
	if err != nil {
		return err
	}
	srv.SetReloader(load, level)
	if c := srv.Created; c != nil {
		fmt.Printf("posthorn: created tenant %q. These secrets are shown only once:\n  API key:       %s\n  SMTP username: %s\n  SMTP password: %s\n",
			c.Tenant, c.APIKey, c.SMTPUsername, c.SMTPPassword)
	}
	if !strings.Contains(strings.Trim(cfg.Hostname, "."), ".") {
		log.Warn("hostname is not a fully qualified domain name: it goes into Message-ID headers, MAILER-DAEMON addresses, the greeting and EHLO, and remote servers may refuse it; set hostname (or --hostname) to this server's DNS name",
			"hostname", cfg.Hostname)
	}
	log.Info("posthorn running", "version", server.Version(), "data_dir", cfg.DataDir, "hostname", cfg.Hostname, "pid", os.Getpid())
	for sig := range sigs {
		if sig == syscall.SIGHUP {
			log.Info("SIGHUP: reloading the configuration")
			srv.Reload() // logs what changed, or why it was refused
			continue
		}
		log.Info(signalName(sig) + ": shutting down")
		go func() {
			for sig := range sigs {
				if sig != syscall.SIGHUP {
					log.Warn("second " + signalName(sig) + ": exiting now; deliveries in flight are retried after the next start")
					logOut.Close()
					os.Exit(1)
				}
			}
		}()
		return srv.Shutdown()
	}
	return nil
}

func signalName(s os.Signal) string {
	switch s {
	case syscall.SIGTERM:
		return "SIGTERM"
	case os.Interrupt:
		return "SIGINT"
	}
	return s.String()
}
