package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/posthorn/posthorn/internal/classify"
	"github.com/posthorn/posthorn/internal/config"
	"github.com/posthorn/posthorn/internal/delivery"
	"github.com/posthorn/posthorn/internal/submission"
)

// Reloading (SIGHUP, `posthorn reload`): the configuration is read again
// (file, then the flags serve was started with), validated, and the keys
// below are applied to the running parts. Any other changed key is
// reported as needing a restart and not applied: listeners, the data
// directory, hostname, timeouts fixed into open listeners, the queue's
// retry policy, VERP and unsubscribe keys, API limits. An invalid file,
// an unreadable rules file or TLS certificate refuses the whole reload: the
// server keeps the configuration it has. The TLS certificate files and the
// classifier rules file are read again on every reload even when their
// paths did not change (a renewed certificate, edited rules); new
// certificate paths need a restart.
var reloadable = map[string]bool{
	"log_level": true, "trusted_networks": true, "smarthost": true, "route": true, "destination": true,
	"delivery.max_connections": true, "delivery.max_connections_per_destination": true,
	"delivery.max_messages_per_connection": true, "delivery.rate_per_minute": true,
	"delivery.max_recipients_per_transaction": true, "delivery.cooldown": true,
	"classify.rules": true, "classify.replace": true,
	"suppression.on_hold_after": true, "suppression.on_hold_window": true, "suppression.on_hold_for": true,
	"shutdown_timeout": true,
}

// secretKeys are shown as "changed", never with their values.
var secretKeys = map[string]bool{"route": true}

// opsState is what reloading, draining and status need beside the parts.
type opsState struct {
	live     atomic.Pointer[config.Config] // the configuration in force
	reloadMu sync.Mutex                    // one reload at a time
	rulesSum [32]byte                      // of the classifier rules file last loaded (under reloadMu)
	level    *slog.LevelVar
	load     func() (config.Config, error)
	started  time.Time
	draining atomic.Bool
}

// current is the configuration in force (the start configuration with
// reloaded keys applied).
func (s *Server) current() *config.Config {
	if c := s.ops.live.Load(); c != nil {
		return c
	}
	return &s.cfg
}

// SetReloader tells the server how to read its configuration again (the
// file and the serve flags) and which log level to change; without it,
// Reload refuses.
func (s *Server) SetReloader(load func() (config.Config, error), level *slog.LevelVar) {
	s.ops.load, s.ops.level = load, level
}

// ReloadReport says what a reload changed.
type ReloadReport struct {
	Applied      []string `json:"applied"`       // "key: old -> new", or what was re-read
	NeedsRestart []string `json:"needs_restart"` // changed keys not applied
}

// Reload reads the configuration again and applies what can change while
// running. On error nothing was changed. Every outcome is logged, whatever
// the log level (old or new): an operator asked for it.
func (s *Server) Reload() (ReloadReport, error) {
	rep, err := s.reload()
	if err != nil {
		s.logAlways(slog.LevelError, "configuration reload refused; keeping the running configuration", "err", err)
		return rep, err
	}
	for _, k := range rep.NeedsRestart {
		s.logAlways(slog.LevelWarn, "configuration reload: changed setting needs a restart, not applied", "setting", k)
	}
	if len(rep.Applied) == 0 {
		s.logAlways(slog.LevelInfo, "configuration reloaded: nothing to apply", "needs_restart", len(rep.NeedsRestart))
	} else {
		s.logAlways(slog.LevelInfo, "configuration reloaded", "applied", strings.Join(rep.Applied, "; "), "needs_restart", len(rep.NeedsRestart))
	}
	return rep, nil
}

// logAlways logs past the level filter.
func (s *Server) logAlways(level slog.Level, msg string, args ...any) {
	r := slog.NewRecord(time.Now(), level, msg, 0)
	r.Add(args...)
	s.log.Handler().Handle(context.Background(), r)
}

func (s *Server) reload() (ReloadReport, error) {
	rep := ReloadReport{Applied: []string{}, NeedsRestart: []string{}}
	s.ops.reloadMu.Lock()
	defer s.ops.reloadMu.Unlock()
	if s.ops.load == nil {
		return rep, fmt.Errorf("this server cannot reload its configuration")
	}
	next, err := s.ops.load()
	if err != nil {
		return rep, err
	}
	if err := next.Validate(); err != nil {
		return rep, fmt.Errorf("invalid configuration: %w", err)
	}
	old := s.current()
	// Prepare everything that can fail before changing anything.
	cls, sum, err := loadRules(&next)
	if err != nil {
		return rep, err
	}
	// The listeners' certificate files are read again (internal/tlscert
	// also polls them); other paths need a restart.
	rereadCert := s.certs != nil && next.SMTP.TLSCert == old.SMTP.TLSCert && next.SMTP.TLSKey == old.SMTP.TLSKey
	if rereadCert {
		if _, err := tls.LoadX509KeyPair(next.SMTP.TLSCert, next.SMTP.TLSKey); err != nil {
			return rep, fmt.Errorf("tls certificate %s: %w", next.SMTP.TLSCert, err)
		}
	}
	trusted, err := next.TrustedPrefixes()
	if err != nil {
		return rep, err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(next.LogLevel)); err != nil {
		return rep, fmt.Errorf("log_level: %w", err)
	}

	merged := *old
	oldF, nextF, mergedF := fields(old), fields(&next), fields(&merged)
	keys := make([]string, 0, len(oldF))
	for k := range oldF {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if reflect.DeepEqual(oldF[k].Interface(), nextF[k].Interface()) {
			continue
		}
		if !reloadable[k] {
			rep.NeedsRestart = append(rep.NeedsRestart, k)
			continue
		}
		mergedF[k].Set(nextF[k])
		if secretKeys[k] || oldF[k].Kind() == reflect.Slice && oldF[k].Type().Elem().Kind() == reflect.Struct {
			rep.Applied = append(rep.Applied, k+" changed")
		} else {
			rep.Applied = append(rep.Applied, fmt.Sprintf("%s: %v -> %v", k, show(oldF[k]), show(nextF[k])))
		}
	}
	if sum != s.ops.rulesSum && merged.Classify.Rules != "" && merged.Classify.Rules == old.Classify.Rules {
		rep.Applied = append(rep.Applied, "classify rules file "+merged.Classify.Rules+" re-read (changed)")
	}

	// Apply. The order does not matter: each part reads its setting
	// atomically, and none depends on another's.
	s.ops.live.Store(&merged)
	s.ops.rulesSum = sum
	if s.ops.level != nil {
		s.ops.level.Set(level)
	}
	if s.dl != nil {
		s.dl.SetRoutes(routesOf(&merged))
	}
	if s.sched != nil {
		s.sched.SetClassifier(cls)
		s.sched.SetOnHold(merged.Suppress.OnHoldAfter, merged.Suppress.OnHoldWindow.Duration, merged.Suppress.OnHoldFor.Duration)
		s.sched.ReloadLimits(merged.Delivery.MaxConnections)
	}
	for _, l := range []*submission.Server{s.smtp, s.smtps} {
		if l != nil {
			l.SetTrusted(trusted)
		}
	}
	if rereadCert {
		before := s.certs.Certificate()
		if err := s.ReloadCertificates(); err != nil {
			s.log.Error("reload tls certificate", "err", err) // it loaded a moment ago
		} else if after := s.certs.Certificate(); before == nil || !sameCert(before, after) {
			rep.Applied = append(rep.Applied, "tls certificate "+merged.SMTP.TLSCert+" re-read (new certificate)")
		} else {
			rep.Applied = append(rep.Applied, "tls certificate "+merged.SMTP.TLSCert+" re-read (unchanged)")
		}
	}
	return rep, nil
}

// loadRules builds the classifier the configuration names (the built-in
// one without a rules file) and the checksum of the file it read.
func loadRules(c *config.Config) (*classify.Classifier, [32]byte, error) {
	if c.Classify.Rules == "" {
		return classify.Default(), [32]byte{}, nil
	}
	data, err := os.ReadFile(c.Classify.Rules)
	if err != nil {
		return nil, [32]byte{}, fmt.Errorf("classify rules: %w", err)
	}
	cls, err := classify.Load(c.Classify.Rules, c.Classify.Replace)
	if err != nil {
		return nil, [32]byte{}, fmt.Errorf("classify rules: %w", err)
	}
	return cls, sha256.Sum256(data), nil
}

func sameCert(a, b *tls.Certificate) bool {
	if len(a.Certificate) != len(b.Certificate) {
		return false
	}
	for i := range a.Certificate {
		if !bytes.Equal(a.Certificate[i], b.Certificate[i]) {
			return false
		}
	}
	return true
}

// routesOf is the relay routes of c for delivery, with the smarthost as
// the "*" route.
func routesOf(c *config.Config) []delivery.Route {
	routes := make([]delivery.Route, 0, len(c.Routes)+1)
	for _, r := range c.Routes {
		routes = append(routes, delivery.Route{Domain: r.Domain, Host: r.Host,
			Username: r.Username, Password: r.Password, TLS: r.TLS})
	}
	if c.Smarthost != "" {
		routes = append(routes, delivery.Route{Domain: "*", Host: c.Smarthost, TLS: "opportunistic"})
	}
	return routes
}

// fields maps each configuration key ("log_level", "delivery.cooldown")
// to its value in c (settable when c is addressable). Tables ([smtp],
// [delivery], ...) are walked one level deep; arrays of tables are one key.
func fields(c *config.Config) map[string]reflect.Value {
	out := map[string]reflect.Value{}
	var walk func(v reflect.Value, prefix string)
	walk = func(v reflect.Value, prefix string) {
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
			if name == "" || name == "-" {
				continue
			}
			fv := v.Field(i)
			if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeFor[config.Duration]() && prefix == "" {
				walk(fv, name+".")
				continue
			}
			out[prefix+name] = fv
		}
	}
	walk(reflect.ValueOf(c).Elem(), "")
	return out
}

func show(v reflect.Value) string {
	switch x := v.Interface().(type) {
	case config.Duration:
		return x.String()
	case string:
		if x == "" {
			return `""`
		}
		return x
	}
	return fmt.Sprint(v.Interface())
}
