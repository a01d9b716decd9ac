// Package logthrottle keeps a flood of one repeated log message from
// burying everything else (and filling the disk that is already full: a
// full disk once produced 51,000 identical error lines in 20 seconds).
//
// Handler wraps a slog.Handler. Records at or above a level (Warn by
// default) are counted per (level, message) in fixed windows: the first
// Burst of a window pass, the rest are dropped and counted, and when the
// window is over one line reports how many were suppressed ("suppressed K
// similar log lines", with the message). The report is written by the next
// record logged at any level after the window ends, so a server that goes
// completely quiet reports its last window only when it logs again.
// Records below the level (info, debug) always pass: they are the normal
// story of the server, not a storm.
package logthrottle

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Options tune the Handler; zero values take the defaults.
type Options struct {
	Burst    int              // records per message per window (default 10)
	Window   time.Duration    // default 10s
	MinLevel slog.Level       // records below it are never throttled (default Warn)
	Now      func() time.Time // default time.Now
}

// Handler is the throttling slog.Handler.
type Handler struct {
	inner slog.Handler
	st    *state // shared by the handlers derived with WithAttrs/WithGroup
}

type state struct {
	opt       Options
	mu        sync.Mutex
	windows   map[key]*window
	lastSweep time.Time
}

type key struct {
	level slog.Level
	msg   string
}

type window struct {
	start      time.Time
	n          int
	suppressed int
	h          slog.Handler // the handler of the last record, for its attributes
}

// maxKeys bounds memory when messages are not constant strings.
const maxKeys = 10000

// New wraps inner.
func New(inner slog.Handler, o Options) *Handler {
	if o.Burst <= 0 {
		o.Burst = 10
	}
	if o.Window <= 0 {
		o.Window = 10 * time.Second
	}
	if o.MinLevel == 0 {
		o.MinLevel = slog.LevelWarn
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Handler{inner: inner, st: &state{opt: o, windows: map[key]*window{}}}
}

// Enabled implements slog.Handler.
func (h *Handler) Enabled(ctx context.Context, l slog.Level) bool { return h.inner.Enabled(ctx, l) }

// WithAttrs implements slog.Handler.
func (h *Handler) WithAttrs(as []slog.Attr) slog.Handler {
	return &Handler{inner: h.inner.WithAttrs(as), st: h.st}
}

// WithGroup implements slog.Handler.
func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{inner: h.inner.WithGroup(name), st: h.st}
}

// report is a summary line owed for a finished window.
type report struct {
	h     slog.Handler
	level slog.Level
	msg   string
	n     int
}

// Handle implements slog.Handler.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	st := h.st
	now := st.opt.Now()
	st.mu.Lock()
	reports := st.sweep(now, false)
	pass := true
	if r.Level >= st.opt.MinLevel {
		k := key{r.Level, r.Message}
		w := st.windows[k]
		if w == nil {
			if len(st.windows) >= maxKeys {
				reports = append(reports, st.sweep(now, true)...)
			}
			w = &window{start: now}
			st.windows[k] = w
		}
		w.n++
		w.h = h.inner
		if w.n > st.opt.Burst {
			w.suppressed++
			pass = false
		}
	}
	st.mu.Unlock()
	var first error
	for _, rep := range reports {
		s := slog.NewRecord(now, rep.level, fmt.Sprintf("suppressed %d similar log lines", rep.n), 0)
		s.AddAttrs(slog.String("message", rep.msg), slog.Duration("window", st.opt.Window))
		if err := rep.h.Handle(ctx, s); err != nil && first == nil {
			first = err
		}
	}
	if pass {
		if err := h.inner.Handle(ctx, r); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// sweep ends the windows that are over (all of them with force) and
// returns the reports they owe. Called with mu held.
func (st *state) sweep(now time.Time, force bool) []report {
	if !force && now.Sub(st.lastSweep) < st.opt.Window/10 {
		return nil
	}
	st.lastSweep = now
	var out []report
	for k, w := range st.windows {
		if !force && now.Sub(w.start) < st.opt.Window {
			continue
		}
		if w.suppressed > 0 {
			out = append(out, report{h: w.h, level: k.level, msg: k.msg, n: w.suppressed})
		}
		delete(st.windows, k)
	}
	return out
}
