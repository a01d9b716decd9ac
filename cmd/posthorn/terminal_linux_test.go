package main

import (
	"fmt"
	"io"
	"os"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// openPTY returns the two ends of a new pseudo-terminal.
func openPTY(t *testing.T) (ptmx, pts *os.File) {
	t.Helper()
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { ptmx.Close() })
	if err := unix.IoctlSetPointerInt(int(ptmx.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(ptmx.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	pts, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pts.Close() })
	return ptmx, pts
}

// TestPasswordFromTerminal: on a terminal the password is asked twice
// with echo off (and restored); from a pipe, the first line is read.
func TestPasswordFromTerminal(t *testing.T) {
	ptmx, pts := openPTY(t)
	if !isTerminal(int(pts.Fd())) {
		t.Fatal("a pty is not a terminal")
	}
	before, _ := unix.IoctlGetTermios(int(pts.Fd()), unix.TCGETS)
	ptmx.Write([]byte("s3cret-pass\ns3cret-pass\n"))
	pw, err := readPassword(pts, io.Discard, "Password")
	if err != nil || pw != "s3cret-pass" {
		t.Fatalf("terminal: %q %v", pw, err)
	}
	after, _ := unix.IoctlGetTermios(int(pts.Fd()), unix.TCGETS)
	if after.Lflag != before.Lflag || after.Lflag&unix.ECHO == 0 {
		t.Fatalf("echo not restored: %x -> %x", before.Lflag, after.Lflag)
	}
	ptmx.Write([]byte("one-password\nanother-one\n"))
	if _, err := readPassword(pts, io.Discard, "Password"); err == nil {
		t.Fatal("different passwords accepted")
	}

	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if isTerminal(int(r.Fd())) {
		t.Fatal("a pipe is a terminal")
	}
	w.Write([]byte("piped-password\nignored\n"))
	w.Close()
	if pw, err := readPassword(r, io.Discard, "Password"); err != nil || pw != "piped-password" {
		t.Fatalf("pipe: %q %v", pw, err)
	}
}
