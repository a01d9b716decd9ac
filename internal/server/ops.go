package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"syscall"
	"time"

	"github.com/posthorn/posthorn/internal/backup"
	"github.com/posthorn/posthorn/internal/store/sqlite"
)

// Operator endpoints on the admin socket (beside internal/api/admin's
// server, which owns /admin/v1/*): reload, status and backup need the server
// itself, not just its store.
const (
	PathReload = "/admin/v1/ops/reload"
	PathStatus = "/admin/v1/ops/status"
	PathBackup = "/admin/v1/ops/backup"
)

func (s *Server) opsRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST "+PathReload, func(w http.ResponseWriter, r *http.Request) {
		rep, err := s.Reload()
		if err != nil {
			opsError(w, http.StatusUnprocessableEntity, "reload_refused", "reload refused, the running configuration is kept: "+err.Error())
			return
		}
		opsJSON(w, rep)
	})
	mux.HandleFunc("GET "+PathStatus, func(w http.ResponseWriter, r *http.Request) {
		st, err := s.Status(r.Context())
		if err != nil {
			opsError(w, http.StatusInternalServerError, "status", err.Error())
			return
		}
		opsJSON(w, st)
	})
	mux.HandleFunc("POST "+PathBackup, s.serveBackup)
}

func opsJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func opsError(w http.ResponseWriter, code int, kind, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": kind, "message": msg}})
}

// serveBackup streams a backup (internal/backup) of the running server.
// The CLI writes it to a file of its user's choosing, so the server never
// writes outside its data directory.
func (s *Server) serveBackup(w http.ResponseWriter, r *http.Request) {
	sq, ok := s.st.(*sqlite.Store)
	if !ok {
		msg := "this store cannot be backed up by posthorn; use the database's own tools"
		if s.cfg.SharedStore() {
			msg = "the store is a PostgreSQL database shared by the cluster: back it up with pg_dump (or pg_basebackup); " +
				"each node's data directory holds only its local files (keys, TLS certificate)"
		}
		opsError(w, http.StatusNotImplemented, "backup", msg)
		return
	}
	start := time.Now()
	w.Header().Set("Content-Type", "application/gzip")
	cw := &countWriter{w: w}
	err := backup.Write(r.Context(), cw, s.cfg.DataDir, Version(), sqlite.SchemaVersion(), sq.Backup)
	if err != nil {
		s.log.Error("backup failed", "err", err)
		if cw.n == 0 {
			opsError(w, http.StatusInternalServerError, "backup", err.Error())
		}
		// Otherwise the truncated stream has no manifest: restore refuses it.
		return
	}
	s.log.Info("backup written", "bytes", cw.n, "took", time.Since(start).Round(time.Millisecond).String())
}

type countWriter struct {
	w http.ResponseWriter
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Status is what `posthorn status` shows.
type Status struct {
	Version       string            `json:"version"`
	PID           int               `json:"pid"`
	Started       time.Time         `json:"started_at"`
	Uptime        string            `json:"uptime"`
	DataDir       string            `json:"data_dir"`
	Listeners     map[string]string `json:"listeners"`
	Queue         map[string]int    `json:"queue"` // deliveries by state
	Paused        []string          `json:"paused_destinations"`
	Throttled     []string          `json:"throttled_destinations"`
	StoreBytes    int64             `json:"store_bytes"` // database, WAL and shared-memory files
	SchemaVersion int               `json:"schema_version"`
	Draining      bool              `json:"shutting_down"`
}

// Status reports the running server.
func (s *Server) Status(ctx context.Context) (*Status, error) {
	counts, err := s.st.CountDeliveries(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("count deliveries: %w", err)
	}
	st := &Status{Version: Version(), PID: os.Getpid(), Started: s.ops.started.UTC(),
		Uptime: time.Since(s.ops.started).Round(time.Second).String(), DataDir: s.cfg.DataDir,
		Listeners: map[string]string{"admin": s.cfg.AdminSocket()}, Queue: map[string]int{},
		Paused: []string{}, Throttled: []string{}, SchemaVersion: schemaVersion(s.st), Draining: s.ops.draining.Load()}
	for state, n := range counts {
		st.Queue[string(state)] = n
	}
	if s.smtp != nil {
		st.Listeners["smtp"] = s.smtp.Addr().String()
	}
	if s.smtps != nil {
		st.Listeners["submissions"] = s.smtps.Addr().String()
	}
	if s.httpLn != nil {
		st.Listeners["http"] = s.httpLn.Addr().String()
	}
	if s.inbound != nil {
		st.Listeners["inbound"] = s.cfg.InboundListen
	}
	if s.metricsSrv != nil {
		st.Listeners["metrics"] = s.cfg.MetricsListen
	}
	now := time.Now()
	for _, d := range s.sched.Destinations() {
		if now.Before(d.Throttle.PausedUntil) {
			st.Paused = append(st.Paused, d.Key+" until "+d.Throttle.PausedUntil.UTC().Format(time.RFC3339))
		}
		if d.Throttle.Throttled {
			st.Throttled = append(st.Throttled, d.Key)
		}
	}
	sort.Strings(st.Paused)
	sort.Strings(st.Throttled)
	for _, f := range []string{"", "-wal", "-shm"} {
		if fi, err := os.Stat(s.cfg.DBPath() + f); err == nil {
			st.StoreBytes += fi.Size()
		}
	}
	if s.cluster != nil {
		st.StoreBytes, _ = s.cluster.DatabaseSize(ctx) // the shared database
	}
	return st, nil
}

// Version is this binary's version: the module version, or the VCS
// revision it was built from, or "devel".
func Version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	v := bi.Main.Version
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if (v == "" || v == "(devel)") && rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		return "devel-" + rev + dirty
	}
	if v == "" || v == "(devel)" {
		return "devel"
	}
	return v
}

// LockDataDir takes the data directory's lock as a server would, for
// commands that must not run beside one (restore). ErrInUse when a server
// holds it.
func LockDataDir(dir string) (release func(), err error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s (stop the server first)", ErrInUse, dir)
		}
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	return func() { f.Close() }, nil
}

// ErrInUse: a running posthorn holds the data directory.
var ErrInUse = errors.New("data directory is in use by a running posthorn")
