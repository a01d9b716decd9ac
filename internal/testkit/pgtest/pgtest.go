// Package pgtest starts a real PostgreSQL server for tests and benchmarks:
// Debian's postgresql binaries (initdb, pg_ctl) run in a temporary
// directory on a loopback port, fsync on, one server per test process and
// a fresh database per caller.
//
// When the binaries are missing, tests skip with a message, except when
// POSTHORN_REQUIRE_TOOLS=1 (CI), where they fail. PostgreSQL refuses to
// run as root, so under root the server runs as the "postgres" user (or
// "nobody") in a directory given to that user.
package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Server is a running PostgreSQL server.
type Server struct {
	dir  string // data directory parent (removed on Stop)
	bin  string
	port int
	cred *syscall.Credential
	seq  atomic.Int64
}

// URL is the connection string of database db as the superuser.
func (s *Server) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, db)
}

// Port is the server's TCP port on 127.0.0.1.
func (s *Server) Port() int { return s.port }

// Binaries returns the directory holding initdb and pg_ctl: $PATH first,
// then Debian's /usr/lib/postgresql/<newest>/bin. It is "" when absent.
func Binaries() string {
	if p, err := exec.LookPath("initdb"); err == nil {
		if _, err := exec.LookPath("pg_ctl"); err == nil {
			return filepath.Dir(p)
		}
	}
	vs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	sort.Slice(vs, func(i, j int) bool { return version(vs[i]) > version(vs[j]) })
	if len(vs) > 0 {
		return filepath.Dir(vs[0])
	}
	return ""
}

func version(initdb string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(initdb))))
	return v
}

var (
	shared    *Server
	sharedErr error
	once      sync.Once
)

// Require returns the process's shared server, starting it on first use,
// or skips t (fails it in CI) when PostgreSQL is not installed.
// Call Main from TestMain to stop the server when the tests end.
func Require(tb testing.TB) *Server {
	tb.Helper()
	once.Do(func() { shared, sharedErr = Start() })
	if sharedErr != nil {
		if errors.Is(sharedErr, ErrNoBinaries) && os.Getenv("POSTHORN_REQUIRE_TOOLS") == "" {
			tb.Skipf("pgtest: %v (install Debian's postgresql package to run this test)", sharedErr)
		}
		tb.Fatalf("pgtest: %v", sharedErr)
	}
	return shared
}

// Main runs the tests and stops the shared server afterwards.
func Main(m interface{ Run() int }) {
	code := m.Run()
	if shared != nil {
		shared.Stop()
	}
	os.Exit(code)
}

// NewDatabase creates an empty database on the shared server and returns
// its URL; the database is dropped when tb ends.
func NewDatabase(tb testing.TB) string {
	tb.Helper()
	s := Require(tb)
	name, err := s.CreateDatabase()
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	tb.Cleanup(func() { s.dropDatabase(name) })
	return s.URL(name)
}

// CreateDatabase creates a fresh empty database and returns its name.
func (s *Server) CreateDatabase() (string, error) {
	name := fmt.Sprintf("t%d_%d", os.Getpid(), s.seq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		return "", fmt.Errorf("connect: %w", err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", fmt.Errorf("create database: %w", err)
	}
	return name, nil
}

func (s *Server) dropDatabase(name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		return
	}
	defer c.Close(ctx)
	c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
}

// ErrNoBinaries is returned by Start when PostgreSQL is not installed.
var ErrNoBinaries = errors.New("PostgreSQL binaries (initdb, pg_ctl) not found")

// Start initialises and starts a new server in a temporary directory.
func Start() (*Server, error) {
	bin := Binaries()
	if bin == "" {
		return nil, ErrNoBinaries
	}
	dir, err := os.MkdirTemp("", "posthorn-pg-")
	if err != nil {
		return nil, err
	}
	s := &Server{dir: dir, bin: bin}
	if os.Geteuid() == 0 {
		cred, err := unprivileged()
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		s.cred = cred
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	if err := s.start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

func (s *Server) start() error {
	data := filepath.Join(s.dir, "data")
	if out, err := s.run("initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale"); err != nil {
		return fmt.Errorf("initdb: %v: %s", err, out)
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	s.port = port
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -c unix_socket_directories=%s -c fsync=on "+
		"-c max_connections=300 -c shared_buffers=128MB", port, s.dir)
	if out, err := s.run("pg_ctl", "-D", data, "-o", opts, "-l", filepath.Join(s.dir, "log"), "-w", "-t", "60", "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(s.dir, "log"))
		return fmt.Errorf("pg_ctl start: %v: %s %s", err, out, log)
	}
	return nil
}

// Stop stops the server and removes its files.
func (s *Server) Stop() {
	s.run("pg_ctl", "-D", filepath.Join(s.dir, "data"), "-m", "immediate", "-w", "stop")
	os.RemoveAll(s.dir)
}

func (s *Server) run(name string, args ...string) ([]byte, error) {
	cmd := exec.Command(filepath.Join(s.bin, name), args...)
	cmd.Dir = s.dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
		cmd.Env = append(os.Environ(), "HOME="+s.dir)
	}
	err := cmd.Run()
	return out.Bytes(), err
}

func unprivileged() (*syscall.Credential, error) {
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
	}
	return nil, errors.New("running as root and no unprivileged user (postgres, nobody) to run PostgreSQL as")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
