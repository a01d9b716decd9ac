package server

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/posthorn/posthorn/internal/config"
	"github.com/posthorn/posthorn/internal/queue"
	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/store/postgres"
	"github.com/posthorn/posthorn/internal/store/sqlite"
)

// openShared opens the PostgreSQL store named by cfg.Store, as node
// cfg.Node(); it migrates the database (under an advisory lock, so nodes
// starting together migrate it once).
func openShared(cfg *config.Config, log *slog.Logger) (store.Store, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	opts := []postgres.Option{postgres.WithNode(cfg.Node())}
	if log != nil {
		opts = append(opts, postgres.WithLogger(log.With("part", "store")))
	}
	st, err := postgres.Open(ctx, cfg.Store, opts...)
	if err != nil {
		return nil, err
	}
	return st, nil
}

// schemaVersion is the schema version of the store this server runs on.
func schemaVersion(st store.Store) int {
	if _, ok := st.(*postgres.Store); ok {
		return postgres.SchemaVersion()
	}
	return sqlite.SchemaVersion()
}

// Migrate opens the configured store, which brings its schema up to date,
// and closes it again; it returns the schema version. For the embedded
// store it takes the data directory's lock like a server.
func Migrate(cfg *config.Config) (int, error) {
	st, release, err := openForTool(cfg)
	if err != nil {
		return 0, err
	}
	defer release()
	return schemaVersion(st), nil
}

// openForTool opens the store for a command that runs without a server
// (init, migrate): a shared store needs no data directory; the embedded
// one is locked like a server's.
func openForTool(cfg *config.Config) (store.Store, func(), error) {
	if cfg.SharedStore() {
		st, err := openShared(cfg, nil)
		if err != nil {
			return nil, nil, err
		}
		return st, func() { st.Close() }, nil
	}
	st, lock, err := OpenStore(cfg, nil)
	if err != nil {
		return nil, nil, err
	}
	return st, func() { st.Close(); lock.Close() }, nil
}

// joinCluster makes this node's cluster membership when the store is
// shared; the scheduler joins on start and leaves on stop.
func (s *Server) joinCluster() queue.Cluster {
	pg, ok := s.st.(*postgres.Store)
	if !ok {
		return nil
	}
	s.cluster = postgres.NewCluster(pg, postgres.ClusterConfig{Version: Version()})
	return s.cluster
}

// PathNodes lists the cluster's nodes (posthorn nodes).
const PathNodes = "/admin/v1/nodes"

// NodesReport is what posthorn nodes shows.
type NodesReport struct {
	Cluster bool         `json:"cluster"` // false: the embedded store, this node alone
	Self    string       `json:"self"`
	Nodes   []store.Node `json:"nodes"`
}

func (s *Server) clusterRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET "+PathNodes, func(w http.ResponseWriter, r *http.Request) {
		rep := NodesReport{Self: s.cfg.Node(), Nodes: []store.Node{}}
		if s.cluster == nil {
			// One node: it holds every pending delivery.
			st := s.sched.Stats()
			now := time.Now().UTC()
			rep.Nodes = append(rep.Nodes, store.Node{Name: rep.Self, PID: os.Getpid(), Version: Version(), Started: s.ops.started.UTC(),
				Heartbeat: now, Alive: true, Leases: st.Known})
			opsJSON(w, rep)
			return
		}
		ns, err := s.cluster.Nodes(r.Context())
		if err != nil {
			opsError(w, http.StatusInternalServerError, "nodes", err.Error())
			return
		}
		rep.Cluster, rep.Nodes = true, append(rep.Nodes, ns...)
		opsJSON(w, rep)
	})
}
