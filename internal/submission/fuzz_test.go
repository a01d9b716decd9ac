package submission

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/accept"
	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/store/sqlite"
	"github.com/posthorn/posthorn/internal/tenant"
)

type nopSched struct{}

func (nopSched) Enqueue([]store.Delivery) {}

// startTest runs a submission server on loopback with a real store, trusting
// 127.0.0.0/8 so commands reach the transaction logic without AUTH.
func startTest(tb testing.TB) (string, store.Store) {
	st, err := sqlite.Open(filepath.Join(tb.TempDir(), "db"))
	if err != nil {
		tb.Fatal(err)
	}
	tm := tenant.New(st)
	creds, err := tm.EnsureDefault(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	p := &accept.Pipeline{Store: st, Sched: nopSched{}, Hostname: "fuzz.test", Lifetime: time.Hour, Now: time.Now}
	srv := New(Config{Listen: "127.0.0.1:0", Hostname: "fuzz.test", MaxMessageSize: 1 << 16, MaxRecipients: 10,
		MaxLineLength: 1000, MaxConnections: 50, ReadTimeout: 2 * time.Second, DefaultTenantID: creds.TenantID,
		Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, MaxAuthFailures: 1000}, p, tm, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := srv.Start(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Stop(ctx)
		st.Close()
	})
	return srv.Addr().String(), st
}

var replyLine = regexp.MustCompile(`^[2-5][0-9][0-9][ -]`)

// FuzzCommands sends arbitrary command lines and checks that every reply
// is a well-formed SMTP reply line and that the server stays up.
func FuzzCommands(f *testing.F) {
	addr, _ := startTest(f)
	for _, s := range []string{
		"EHLO a\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\nDATA\r\nhi\r\n.\r\n",
		"HELO\r\nMAIL FROM:<>\r\n", "MAIL FROM:<@a,@b:c@d> SIZE=99999999999\r\n",
		"EHLO x\r\nAUTH PLAIN AGFiYwBkZWY=\r\n", "RCPT TO:<\"a b\"@[1.2.3.4]> NOTIFY=NEVER\r\n",
		"EHLO x\r\nMAIL FROM:<a@b> BODY=8BITMIME SMTPUTF8\r\nRCPT TO:<ü@ü.de>\r\n", "BDAT 5 LAST\r\nhello",
		"\x00\x01\x02\r\n", "EHLO " + strings.Repeat("a", 2000) + "\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, input string) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(3 * time.Second))
		go func() {
			c.Write([]byte(input))
			c.Write([]byte("\r\nQUIT\r\n"))
		}()
		r := bufio.NewReader(c)
		n := 0
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				break
			}
			n++
			if !replyLine.MatchString(line) {
				t.Fatalf("malformed reply line %q for input %q", line, input)
			}
		}
		if n == 0 {
			t.Fatalf("no reply at all for input %q", input)
		}
	})
}
