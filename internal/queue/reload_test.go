package queue

import (
	"log/slog"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/classify"
	"github.com/posthorn/posthorn/internal/shaping"
)

// TestReloadLimits: a reload reaches destinations the scheduler already
// holds (not only those met later), the global connection cap, the
// classifier and the soft-bounce hold settings.
func TestReloadLimits(t *testing.T) {
	conns := 2
	s := New(Config{MaxConnections: 10, OnHoldAfter: 3, Limits: func(string) shaping.Limits { return shaping.Limits{MaxConns: conns} }},
		nil, nil, slog.New(slog.DiscardHandler))
	s.mu.Lock()
	d := s.newDest("x.test")
	s.mu.Unlock()
	conns = 5
	s.ReloadLimits(20)
	if got := d.th.Conns(); got != 5 {
		t.Errorf("existing destination allows %d connections after the reload, want 5", got)
	}
	if s.cfg.MaxConnections != 20 {
		t.Errorf("global cap %d, want 20", s.cfg.MaxConnections)
	}
	c := classify.Default()
	s.SetClassifier(c)
	if s.classifier() != c {
		t.Error("classifier not replaced")
	}
	s.SetOnHold(7, time.Hour, 2*time.Hour)
	if n, w, h := s.onHoldSettings(); n != 7 || w != time.Hour || h != 2*time.Hour {
		t.Errorf("on-hold settings %d %s %s", n, w, h)
	}
}
