package api

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// serveSocket serves {} on a unix socket at a fresh path.
func serveSocket(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "admin.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("{}")) })}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return path
}

// TestClientChecksSocket: the CLI talks only to a socket of its own user
// (or root) with mode 0600, and says why it refuses another.
func TestClientChecksSocket(t *testing.T) {
	path := serveSocket(t)
	do := func() error {
		return NewClient(path).Do(context.Background(), "GET", "/admin/x", nil, nil, nil)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := do(); err != nil {
		t.Fatalf("own 0600 socket: %v", err)
	}
	refused := func(what, want string) {
		t.Helper()
		err := do()
		var unsafe *UnsafeSocketError
		if !errors.As(err, &unsafe) || !strings.Contains(err.Error(), want) {
			t.Fatalf("%s: err %v, want a refusal mentioning %q", what, err, want)
		}
	}
	os.Chmod(path, 0o666)
	refused("world-writable socket", "mode is 0666")
	os.Chmod(path, 0o600)
	if os.Getuid() == 0 {
		if err := os.Chown(path, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		refused("socket of another user", "owned by uid 65534")
	} else {
		t.Log("not root: the other-owner case needs chown and is skipped")
	}
	// A regular file in the socket's place.
	os.Remove(path)
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	refused("a regular file", "not a socket")
}
