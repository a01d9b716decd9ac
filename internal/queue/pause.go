package queue

import (
	"context"
	"fmt"
	"time"

	"github.com/posthorn/posthorn/internal/store"
)

// An operator's pause of a destination: no new connection to it starts
// until the pause ends (Until, or ResumeDestination when Until is zero),
// and workers it has close after the message they are sending. Ready mail
// waits in its ready list (its queue lifetime still runs). Pauses live in
// memory only: a restart clears them (the events record who paused what).

// ManualPause is an operator's pause of one destination.
type ManualPause struct {
	By    string    `json:"paused_by"`
	At    time.Time `json:"paused_at"`
	Until time.Time `json:"paused_until,omitzero"` // zero: until resumed
}

// active reports whether p holds connections at now.
func (p ManualPause) active(now time.Time) bool {
	return !p.At.IsZero() && (p.Until.IsZero() || now.Before(p.Until))
}

// String says who paused and until when, for why-explanations.
func (p ManualPause) String() string {
	until := "until resumed"
	if !p.Until.IsZero() {
		until = "until " + p.Until.UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("paused by operator %s %s", p.By, until)
}

// PauseDestination pauses the destination key (as `posthorn destinations`
// lists it) until until (zero: until resumed), recording by as who did it.
func (s *Scheduler) PauseDestination(key string, until time.Time, by string) (ManualPause, error) {
	now := s.now()
	if !until.IsZero() && !until.After(now) {
		return ManualPause{}, fmt.Errorf("pause %s: the end %s is not in the future", key, until.UTC().Format(time.RFC3339))
	}
	p := ManualPause{By: by, At: now, Until: until}
	s.mu.Lock()
	if s.manual == nil {
		s.manual = map[string]ManualPause{}
	}
	s.manual[key] = p
	for _, d := range s.dests {
		if baseDest(d.key) == key && d.rekick != nil {
			d.rekick.Stop() // an earlier timer may be later than this pause's end
			d.rekick = nil
			s.kick(d) // sets the timer for this pause's end
		}
	}
	s.mu.Unlock()
	s.recordPause(store.EventDestinationPaused, key, by, now, p.String())
	return p, nil
}

// ResumeDestination ends an operator's pause of key; it reports whether
// there was one. Ready mail is sent at once (within the throttle).
func (s *Scheduler) ResumeDestination(key, by string) bool {
	now := s.now()
	s.mu.Lock()
	p, ok := s.manual[key]
	delete(s.manual, key)
	if ok {
		for _, d := range s.dests {
			if baseDest(d.key) == key {
				if d.rekick != nil {
					d.rekick.Stop()
					d.rekick = nil
				}
				s.kick(d)
			}
		}
	}
	s.mu.Unlock()
	if ok && p.active(now) {
		s.recordPause(store.EventDestinationResumed, key, by, now, "resumed by operator "+by)
	}
	return ok && p.active(now)
}

// manualPause is the operator's pause holding d at now, if any (an ended
// one is forgotten). Caller holds s.mu.
func (s *Scheduler) manualPause(d *dest, now time.Time) (ManualPause, bool) {
	key := baseDest(d.key)
	p, ok := s.manual[key]
	if !ok {
		return ManualPause{}, false
	}
	if !p.active(now) {
		delete(s.manual, key)
		return ManualPause{}, false
	}
	return p, true
}

// holdManual reports whether d is paused by an operator and, if the pause
// ends, sets the timer that kicks d then. Caller holds s.mu.
func (s *Scheduler) holdManual(d *dest) bool {
	p, ok := s.manualPause(d, s.now())
	if !ok {
		return false
	}
	if !p.Until.IsZero() {
		s.kickAt(d, p.Until)
	}
	return true
}

// ManualPauses returns the operators' pauses in force, by destination.
func (s *Scheduler) ManualPauses() map[string]ManualPause {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	out := map[string]ManualPause{}
	for k, p := range s.manual {
		if p.active(now) {
			out[k] = p
		}
	}
	return out
}

func (s *Scheduler) recordPause(typ, key, by string, now time.Time, detail string) {
	s.log.Warn("destination "+typ, "dest", key, "by", by)
	ev := store.Event{At: now, Type: typ, MX: key, Detail: key + ": " + detail}
	if err := s.st.RecordEvent(context.Background(), ev); err != nil {
		s.log.Error("record destination pause event", "err", err)
	}
}
