package logbuf

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder is the underlying writer: it keeps what it got and counts the
// calls.
type recorder struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	calls int
}

func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	return r.buf.Write(p)
}

func (r *recorder) snapshot() (string, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf.String(), r.calls
}

// checkLines verifies that out holds every line of every goroutine, each
// whole and in the order its goroutine wrote them.
func checkLines(t *testing.T, out string, goroutines, lines int) {
	t.Helper()
	next := make([]int, goroutines)
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		var g, i int
		if _, err := fmt.Sscanf(l, "g=%d i=%d padding", &g, &i); err != nil || g < 0 || g >= goroutines {
			t.Fatalf("line %q is not one that was written (%v)", l, err)
		}
		if i != next[g] {
			t.Fatalf("goroutine %d: line %d where %d was expected", g, i, next[g])
		}
		next[g]++
	}
	for g, n := range next {
		if n != lines {
			t.Fatalf("goroutine %d: %d of %d lines written", g, n, lines)
		}
	}
}

func writeLines(w *Writer, goroutines, lines int) {
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range lines {
				fmt.Fprintf(w, "g=%d i=%d padding\n", g, i)
			}
		}()
	}
	wg.Wait()
}

func TestLinesGatheredWholeAndInOrder(t *testing.T) {
	rec := &recorder{}
	w := New(rec, Delay)
	const goroutines, lines = 8, 500
	writeLines(w, goroutines, lines)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	out, calls := rec.snapshot()
	checkLines(t, out, goroutines, lines)
	// Written one by one, that would be 4,000 calls.
	if calls > goroutines*lines/20 {
		t.Fatalf("%d write calls for %d lines: not gathered", calls, goroutines*lines)
	}
	t.Logf("%d lines in %d write calls", goroutines*lines, calls)
}

func TestLineWrittenWithoutClose(t *testing.T) {
	rec := &recorder{}
	w := New(rec, Delay)
	defer w.Close()
	fmt.Fprintf(w, "one line\n")
	deadline := time.Now().Add(5 * time.Second)
	for {
		if out, _ := rec.snapshot(); out == "one line\n" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("a line was not written out within 5 s of being logged")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestFullBufferWrittenByTheWriter(t *testing.T) {
	rec := &recorder{}
	w := New(rec, time.Hour) // the flusher never fires: only a full buffer is written
	w.max = 64
	const goroutines, lines = 4, 200
	writeLines(w, goroutines, lines)
	out, calls := rec.snapshot()
	if calls == 0 || len(out) < goroutines*lines*10 {
		t.Fatalf("with a 64-byte limit and the flusher idle, %d bytes were written in %d calls before Close", len(out), calls)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	out, _ = rec.snapshot()
	checkLines(t, out, goroutines, lines)
}

func TestWriteAfterCloseGoesStraightThrough(t *testing.T) {
	rec := &recorder{}
	w := New(rec, time.Hour)
	fmt.Fprintf(w, "g=0 i=0 padding\n")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if out, _ := rec.snapshot(); out != "g=0 i=0 padding\n" {
		t.Fatalf("Close did not write out what was buffered: %q", out)
	}
	fmt.Fprintf(w, "g=0 i=1 padding\n")
	out, _ := rec.snapshot()
	checkLines(t, out, 1, 2)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}
