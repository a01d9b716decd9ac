package sqlite

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/store/storetest"
)

// procIO reads a counter of /proc/self/io (syscw: write system calls;
// wchar: bytes written).
func procIO(t *testing.T, name string) int64 {
	t.Helper()
	data, err := os.ReadFile("/proc/self/io")
	if err != nil {
		t.Skip("no /proc/self/io")
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, name+": "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	t.Fatalf("no %s in /proc/self/io", name)
	return 0
}

// TestWALWritesGathered: a commit of many pages reaches the WAL in a few
// large writes, not two system calls a page (header and page), and what
// was written is all there after reopening.
func TestWALWritesGathered(t *testing.T) {
	path := filepath.Join(t.TempDir(), "posthorn.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var to []string
	for i := 0; i < 200; i++ {
		to = append(to, fmt.Sprintf("user%03d@dom%d.test", i, i%13))
	}
	var batch []*store.NewMessage
	for i := 0; i < 20; i++ {
		nm := storetest.NewTestMessage(fmt.Sprintf("m%02d", i), to...)
		nm.Message.Body = make([]byte, 8000)
		batch = append(batch, nm)
	}
	calls, bytes := procIO(t, "syscw"), procIO(t, "wchar")
	if err := s.InsertMessages(ctx, batch); err != nil {
		t.Fatal(err)
	}
	calls, bytes = procIO(t, "syscw")-calls, procIO(t, "wchar")-bytes
	frames := bytes / (4096 + 24)
	t.Logf("%d bytes (~%d WAL frames) in %d write calls", bytes, frames, calls)
	if frames < 100 {
		t.Fatalf("only %d frames written: the test needs a bigger commit", frames)
	}
	if calls*4 > frames {
		t.Fatalf("%d write calls for ~%d WAL frames: writes not gathered", calls, frames)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(path); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, nm := range batch {
		ds, err := s.MessageDeliveries(ctx, nm.Message.ID)
		if err != nil || len(ds) != len(to) {
			t.Fatalf("after reopening, message %s has %d deliveries (%v)", nm.Message.ID, len(ds), err)
		}
	}
}
