package adminclient

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
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

// TestClientChecksPeer: a socket whose file looks right (root's, 0600) but
// is served by another user's process is refused: the kernel's peer
// credentials cannot be faked by swapping the file after the checks.
func TestClientChecksPeer(t *testing.T) {
	if path := os.Getenv("POSTHORN_TEST_SERVE_SOCKET"); path != "" {
		serveForever(path)
		return
	}
	if os.Getuid() != 0 || runtime.GOOS != "linux" {
		t.Skip("needs root (to run a server as another user) on Linux")
	}
	dir := filepath.Join(t.TempDir(), "sock")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	// The helper (a copy of this test binary) must reach its directory.
	os.Chmod(filepath.Dir(dir), 0o711)
	os.Chmod(filepath.Dir(filepath.Dir(dir)), 0o711)
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "helper.test")
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "admin.sock")
	cmd := exec.Command(bin, "-test.run=^TestClientChecksPeer$")
	cmd.Env = append(os.Environ(), "POSTHORN_TEST_SERVE_SOCKET="+path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Skipf("cannot run a helper as uid 65534: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("helper: %q %v", line, err)
	}
	// The file now passes the owner and mode checks.
	if err := os.Chown(path, 0, 0); err != nil {
		t.Fatal(err)
	}
	err = NewClient(path).Do(context.Background(), "GET", "/admin/x", nil, nil, nil)
	var unsafe *UnsafeSocketError
	if !errors.As(err, &unsafe) || !strings.Contains(err.Error(), "runs as uid 65534") {
		t.Fatalf("err %v, want a refusal naming the serving uid", err)
	}
}

// serveForever is the helper process of TestClientChecksPeer.
func serveForever(path string) {
	ln, err := net.Listen("unix", path)
	if err != nil {
		fmt.Println("listen:", err)
		os.Exit(1)
	}
	os.Chmod(path, 0o600)
	fmt.Println("ready")
	http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("{}")) }))
}
