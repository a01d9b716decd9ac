package smtpclient

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

// TestContextAbortsSession: ending Options.Context aborts a command in
// progress at once (here the wait for the reply after DATA, whose timeout
// is a minute), and the Client is then Broken.
func TestContextAbortsSession(t *testing.T) {
	addr, wait := startFake(t, func(f *fakeConn) {
		f.send("220 fake")
		f.ehlo("PIPELINING")
		f.expect("MAIL")
		f.expect("RCPT")
		f.expect("DATA")
		f.send("250 ok", "250 ok", "354 go")
		f.data()
		io.Copy(io.Discard, f.r) // never answers; reads until the client hangs up
	})
	ctx, cancel := context.WithCancel(context.Background())
	opts := testOpts()
	opts.CommandTimeout, opts.DataTimeout, opts.Context = time.Minute, time.Minute, ctx
	c, err := dialClient(t, addr, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	time.AfterFunc(200*time.Millisecond, cancel)
	start := time.Now()
	_, err = c.Send("s@z.test", []string{"a@x.test"}, []byte("x\r\n"), SendOptions{})
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Send returned after %v, want soon after the cancel", d)
	}
	var e *Error
	if !errors.As(err, &e) || e.Phase != PhaseDataEnd || !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "aborted") {
		t.Fatalf("error %v, want an aborted data-end phase", err)
	}
	if !c.Broken() {
		t.Fatal("client not broken after the abort")
	}
	if err := c.Reset(); !errors.Is(err, ErrBroken) {
		t.Fatalf("Reset after abort: %v", err)
	}
	c.Close()
	wait()
}
