// Package logbuf gathers the log lines that many goroutines write into few
// write calls.
//
// posthorn's mail log is one line per accepted message and one per
// delivery attempt (internal/deliverylog): at 10 recipients a message that
// was eleven write system calls a message, each a few microseconds of
// kernel time on a virtual machine, for lines nobody waits for. A Writer
// keeps what is written in memory and a background goroutine writes it
// out: the first line after a quiet moment is written at most Delay later,
// and every line that arrives meanwhile goes with it.
//
// The trade: a process killed with SIGKILL (or crashing on a panic that
// nothing recovers) loses the lines of its last Delay. Close writes out
// everything, so a clean shutdown loses nothing. The mail log is a report;
// the record of every message's journey is the store's activity log, which
// is committed before anything is answered.
package logbuf

import (
	"io"
	"sync"
	"time"
)

// Writer is an io.Writer that gathers writes and passes them to the
// underlying writer in batches. Each Write is kept whole and in order.
type Writer struct {
	out   io.Writer
	delay time.Duration
	max   int

	wmu   sync.Mutex // held while writing to out: batches leave in order
	spare []byte     // the batch being written (under wmu)

	mu      sync.Mutex
	buf     []byte // written, not yet passed on
	pending bool   // the flusher has been woken for buf
	closed  bool

	wake      chan struct{}
	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// Delay is how long the first line after a quiet moment waits for others.
const Delay = 2 * time.Millisecond

// maxBuffered is how much may wait before a Write passes it on itself
// instead of leaving it to the flusher (a burst, or a slow output).
const maxBuffered = 256 << 10

// New returns a Writer passing batches to out, the first line of a batch
// waiting at most delay; Close stops it.
func New(out io.Writer, delay time.Duration) *Writer {
	w := &Writer{out: out, delay: delay, max: maxBuffered,
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go w.flusher()
	return w
}

// Write keeps a copy of p to be written later; it never fails (an error
// of the underlying writer is the next batch's, and log handlers ignore
// them). After Close it writes p directly.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		w.wmu.Lock()
		defer w.wmu.Unlock()
		return w.out.Write(p)
	}
	w.buf = append(w.buf, p...)
	full := len(w.buf) >= w.max
	if !w.pending && !full {
		w.pending = true
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
	w.mu.Unlock()
	if full {
		w.Flush()
	}
	return len(p), nil
}

// Flush writes out everything written so far.
func (w *Writer) Flush() error {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	w.mu.Lock()
	w.buf, w.spare = w.spare[:0], w.buf
	w.pending = false
	w.mu.Unlock()
	if len(w.spare) == 0 {
		return nil
	}
	_, err := w.out.Write(w.spare)
	if cap(w.spare) > 4*w.max {
		w.spare = nil // a burst's buffer is not kept for ever
	}
	return err
}

func (w *Writer) flusher() {
	defer close(w.done)
	t := time.NewTimer(time.Hour)
	t.Stop()
	for {
		select {
		case <-w.wake:
		case <-w.stop:
			return
		}
		t.Reset(w.delay)
		select {
		case <-t.C:
		case <-w.stop:
			t.Stop()
			return
		}
		w.Flush()
	}
}

// Close writes out what is buffered and stops the flusher; later writes go
// straight to the underlying writer.
func (w *Writer) Close() error {
	w.closeOnce.Do(func() {
		close(w.stop)
		<-w.done
	})
	// Writes that see closed wait for wmu, so they come after the rest.
	w.wmu.Lock()
	defer w.wmu.Unlock()
	w.mu.Lock()
	w.closed = true
	rest := w.buf
	w.buf = nil
	w.mu.Unlock()
	if len(rest) == 0 {
		return nil
	}
	_, err := w.out.Write(rest)
	return err
}
