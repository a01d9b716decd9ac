// Package alerts evaluates the threshold rules of the configuration
// ([[alert]]) every Interval and acts on them.
//
// Each rule (and, for a deferral_rate rule with destination "*", each
// destination) is one alert. When its condition starts to hold the alert
// fires: an alert_fired event (detail: the alert as JSON, so webhooks carry
// it) and its action; when the condition no longer holds it resolves: an
// alert_resolved event, and the action is undone. Alert states and their
// events are written together (store.Alerts.PutAlert) and survive a
// restart; a firing alert's action is applied again at start.
//
// Conditions:
//   - deferral_rate: of the delivery attempts to a destination whose
//     results were recorded within Window, at least MinAttempts were made
//     and at least Threshold percent were deferred. A destination without
//     enough attempts in the window does not fire, and a firing alert whose
//     destination has gone quiet resolves.
//   - oldest_queued: the oldest delivery waiting to be sent (queued,
//     deferred or being sent; held and scheduled mail does not count) has
//     waited longer than Age since it was due.
//   - dead_letters: at least Threshold deliveries became dead letters
//     within Window.
//
// The counts come from the event log, read forward from the last event
// seen (a primary-key range, never a scan); after a restart the windows
// fill again from the events of the last Window.
//
// Actions: throttle caps the destination's rate at Fraction of its rate
// when the alert fired (queue.Scheduler.CapRate); hold_lane keeps every
// job of Lane from being sent (queue.Scheduler.HoldLane), new mail
// included, until the alert resolves. An operator may lift an action early
// (`posthorn alerts release KEY`); the alert stays firing, the action is
// not applied again until it has resolved and fired anew.
//
// Lock order: Service.mu only; the scheduler's lock is taken inside
// Actions calls, never the other way round.
package alerts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/posthorn/posthorn/internal/config"
	"github.com/posthorn/posthorn/internal/store"
)

// Actions is what alerts act on (the scheduler).
type Actions interface {
	CapRate(dest string, fraction float64) (from, capped float64)
	ClearRateCap(dest string)
	HoldLane(lane store.Lane, hold bool)
}

// Config tunes the service.
type Config struct {
	Rules    []config.AlertRule
	Interval time.Duration
	TenantID string // receives the alert events
	// Destination maps a recipient domain to its destination key (the
	// scheduler's: a domain, provider:NAME or relay:HOST).
	Destination func(domain string) string
	Now         func() time.Time
	Log         *slog.Logger
}

// Service evaluates the rules. Start it once; Stop ends it.
type Service struct {
	cfg Config
	st  store.Store
	act Actions

	mu       sync.Mutex
	cursor   int64
	dests    map[string]*series // attempts per destination
	dead     *series            // dead letters
	firing   map[string]*store.Alert
	laneHold map[store.Lane]int // alerts holding each lane
	span     time.Duration      // the longest window

	stop chan struct{}
	done chan struct{}
}

// New returns a service; Restore and Start it.
func New(cfg Config, st store.Store, act Actions) *Service {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	span := time.Minute
	for _, r := range cfg.Rules {
		span = max(span, r.Window.Duration)
	}
	return &Service{cfg: cfg, st: st, act: act, dests: map[string]*series{}, dead: &series{}, firing: map[string]*store.Alert{},
		laneHold: map[store.Lane]int{}, span: span}
}

// Restore loads the alerts that were firing, applies their actions again
// and reads the events of the last window. Call it before the scheduler
// starts, so a held lane is held from the first moment.
func (s *Service) Restore(ctx context.Context) error {
	as, err := s.st.ListAlerts(ctx, s.cfg.Now())
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range as {
		a := as[i]
		if !a.Firing {
			continue
		}
		r := s.rule(a.Rule)
		if r == nil {
			continue // rule removed from the config: resolved at the first evaluation
		}
		s.firing[a.Key] = &a
		if a.ActionState == "applied" {
			s.apply(r, &a)
		}
	}
	last, err := s.st.LastEventID(ctx)
	if err != nil {
		return err
	}
	// Start far enough back to cover the windows at any sane event rate;
	// events older than the window are skipped as they are read.
	s.cursor = max(0, last-200000)
	return nil
}

// Start evaluates every Interval until Stop.
func (s *Service) Start(context.Context) error {
	s.stop, s.done = make(chan struct{}), make(chan struct{})
	go s.loop()
	return nil
}

// Stop ends the loop and waits for it.
func (s *Service) Stop() {
	if s.stop == nil {
		return
	}
	close(s.stop)
	<-s.done
}

func (s *Service) loop() {
	defer close(s.done)
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		if err := s.Evaluate(context.Background()); err != nil {
			s.cfg.Log.Error("alerts: evaluate", "err", err)
		}
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
	}
}

func (s *Service) rule(name string) *config.AlertRule {
	for i := range s.cfg.Rules {
		if s.cfg.Rules[i].Name == name {
			return &s.cfg.Rules[i]
		}
	}
	return nil
}

// Evaluate reads new events and checks every rule once.
func (s *Service) Evaluate(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Now()
	if err := s.readEvents(ctx, now); err != nil {
		return err
	}
	seen := map[string]bool{}
	var errs []error
	for i := range s.cfg.Rules {
		r := &s.cfg.Rules[i]
		obs, err := s.observe(ctx, r, now)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, o := range obs {
			seen[o.key] = true
			errs = append(errs, s.step(ctx, r, o, now))
		}
	}
	// Firing alerts no rule observed any more (a destination gone quiet
	// under "*", or a rule removed) resolve.
	for key, a := range s.firing {
		if !seen[key] {
			errs = append(errs, s.step(ctx, s.rule(a.Rule), observation{key: key, dest: a.Destination, value: 0}, now))
		}
	}
	return errors.Join(errs...)
}

// observation is one alert's current value.
type observation struct {
	key, dest string
	value     float64
	threshold float64
	holds     bool
	detail    string
}

func (s *Service) observe(ctx context.Context, r *config.AlertRule, now time.Time) ([]observation, error) {
	since := now.Add(-r.Window.Duration)
	switch r.Kind {
	case config.AlertDeferralRate:
		var out []observation
		for dest, ser := range s.dests {
			if r.Destination != "*" && !strings.EqualFold(r.Destination, dest) {
				continue
			}
			total, deferred := ser.count(since)
			o := observation{key: r.Name, dest: dest, threshold: r.Threshold}
			if r.Destination == "*" {
				o.key = r.Name + "/" + dest
			}
			if total > 0 {
				o.value = 100 * float64(deferred) / float64(total)
			}
			o.holds = total >= r.MinAttempts && o.value >= r.Threshold
			o.detail = fmt.Sprintf("%d of %d attempts to %s deferred in the last %s", deferred, total, dest, r.Window.Duration)
			out = append(out, o)
		}
		return out, nil
	case config.AlertDeadLetters:
		n, _ := s.dead.count(since)
		return []observation{{key: r.Name, value: float64(n), threshold: r.Threshold, holds: float64(n) >= r.Threshold,
			detail: fmt.Sprintf("%d dead letters in the last %s", n, r.Window.Duration)}}, nil
	case config.AlertOldestQueued:
		t, err := s.st.OldestQueued(ctx)
		if err != nil {
			return nil, err
		}
		o := observation{key: r.Name, threshold: r.Age.Seconds()}
		if !t.IsZero() {
			o.value = now.Sub(t).Seconds()
		}
		o.holds = !t.IsZero() && now.Sub(t) >= r.Age.Duration
		o.detail = fmt.Sprintf("oldest queued delivery waiting %s (limit %s)", time.Duration(o.value*float64(time.Second)).Round(time.Second), r.Age.Duration)
		return []observation{o}, nil
	}
	return nil, nil
}

// step fires or resolves one alert. Caller holds s.mu.
func (s *Service) step(ctx context.Context, r *config.AlertRule, o observation, now time.Time) error {
	a := s.firing[o.key]
	switch {
	case a == nil && o.holds:
		a = &store.Alert{Key: o.key, Rule: r.Name, Kind: r.Kind, Destination: o.dest, Firing: true, Value: o.value, Threshold: o.threshold,
			FiredAt: now, Action: r.Action, Detail: o.detail}
		if r.Action != "" {
			a.ActionState = "applied"
			if d := s.apply(r, a); d != "" {
				a.Detail += "; " + d
			}
		}
		if err := s.put(ctx, a, store.EventAlertFired, now); err != nil {
			return err
		}
		s.firing[o.key] = a
		s.cfg.Log.Warn("alert fired", "alert", o.key, "detail", a.Detail)
	case a != nil && !o.holds:
		if a.ActionState == "applied" {
			s.undo(r, a)
			a.ActionState = "ended"
		}
		a.Firing, a.ResolvedAt, a.Value = false, now, o.value
		if o.detail != "" {
			a.Detail = o.detail
		}
		if err := s.put(ctx, a, store.EventAlertResolved, now); err != nil {
			return err
		}
		delete(s.firing, o.key)
		s.cfg.Log.Info("alert resolved", "alert", o.key, "detail", a.Detail)
	case a != nil:
		a.Value = o.value
	}
	return nil
}

func (s *Service) put(ctx context.Context, a *store.Alert, typ string, now time.Time) error {
	detail, _ := json.Marshal(a)
	return s.st.PutAlert(ctx, *a, store.Event{At: now, Type: typ, TenantID: s.cfg.TenantID, Detail: string(detail)})
}

// apply starts a's action and says what it did. Caller holds s.mu.
func (s *Service) apply(r *config.AlertRule, a *store.Alert) string {
	switch r.Action {
	case config.ActionThrottle:
		from, capped := s.act.CapRate(a.Destination, r.Fraction)
		return fmt.Sprintf("rate of %s capped at %.0f/min (was %.0f/min)", a.Destination, capped, from)
	case config.ActionHoldLane:
		lane := store.Lane(r.Lane)
		s.laneHold[lane]++
		if s.laneHold[lane] == 1 {
			s.act.HoldLane(lane, true)
		}
		return "lane " + r.Lane + " held"
	}
	return ""
}

// undo ends a's action. Caller holds s.mu.
func (s *Service) undo(r *config.AlertRule, a *store.Alert) {
	action, lane := a.Action, store.Lane("")
	if r != nil {
		lane = store.Lane(r.Lane)
	}
	switch action {
	case config.ActionThrottle:
		s.act.ClearRateCap(a.Destination)
	case config.ActionHoldLane:
		if lane == "" {
			return
		}
		s.laneHold[lane]--
		if s.laneHold[lane] <= 0 {
			delete(s.laneHold, lane)
			s.act.HoldLane(lane, false)
		}
	}
}

// List returns firing alerts and those resolved in the last day, for
// tenantID ("" or the alert tenant; other tenants see none).
func (s *Service) List(ctx context.Context, tenantID string) ([]store.Alert, error) {
	if tenantID != "" && tenantID != s.cfg.TenantID {
		return []store.Alert{}, nil
	}
	return s.st.ListAlerts(ctx, s.cfg.Now().Add(-24*time.Hour))
}

// Release lifts a firing alert's action now; the alert stays firing.
func (s *Service) Release(ctx context.Context, key string) (*store.Alert, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.firing[key]
	if a == nil {
		return nil, fmt.Errorf("alert %q is not firing: %w", key, store.ErrNotFound)
	}
	if a.ActionState != "applied" {
		return nil, fmt.Errorf("alert %q has no action in force", key)
	}
	s.undo(s.rule(a.Rule), a)
	a.ActionState = "released"
	if err := s.st.UpdateAlert(ctx, *a); err != nil {
		return nil, err
	}
	s.cfg.Log.Info("alert action released by an operator", "alert", key)
	c := *a
	return &c, nil
}
