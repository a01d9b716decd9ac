package main

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync/atomic"
)

// tripCounter is a TCP proxy in front of PostgreSQL that counts the round
// trips its clients make: in the frontend protocol a client waits for the
// server after a simple Query ('Q') or a Sync ('S', which ends an
// extended-protocol exchange, a pipelined batch included). The proxy
// costs a copy per byte, so rates measured through it are not reported.
type tripCounter struct {
	ln    net.Listener
	to    string
	trips atomic.Int64
}

func newTripCounter(to string) (*tripCounter, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("trip counter: %w", err)
	}
	t := &tripCounter{ln: ln, to: to}
	go t.accept()
	return t, nil
}

func (t *tripCounter) Port() int { return t.ln.Addr().(*net.TCPAddr).Port }

func (t *tripCounter) Close() { t.ln.Close() }

func (t *tripCounter) accept() {
	for {
		c, err := t.ln.Accept()
		if err != nil {
			return
		}
		go t.serve(c)
	}
}

func (t *tripCounter) serve(c net.Conn) {
	defer c.Close()
	s, err := net.Dial("tcp", t.to)
	if err != nil {
		return
	}
	defer s.Close()
	go func() {
		io.Copy(c, s)
		c.Close()
	}()
	r := bufio.NewReaderSize(c, 64<<10)
	w := bufio.NewWriterSize(s, 64<<10)
	// The startup message has no type byte.
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return
	}
	w.Write(n[:])
	if _, err := io.CopyN(w, r, int64(binary.BigEndian.Uint32(n[:]))-4); err != nil {
		return
	}
	w.Flush()
	var hdr [5]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return
		}
		if hdr[0] == 'Q' || hdr[0] == 'S' {
			t.trips.Add(1)
		}
		w.Write(hdr[:])
		if _, err := io.CopyN(w, r, int64(binary.BigEndian.Uint32(hdr[1:]))-4); err != nil {
			return
		}
		if r.Buffered() == 0 {
			if err := w.Flush(); err != nil {
				return
			}
		}
	}
}
