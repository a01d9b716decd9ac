package webhook

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"testing"
	"time"
)

func TestForbidden(t *testing.T) {
	for _, s := range []string{"127.0.0.1", "127.9.9.9", "10.0.0.1", "172.16.3.4", "192.168.1.1", "169.254.169.254", "0.0.0.0", "::",
		"::1", "fe80::1", "fc00::1", "fd12::1", "224.0.0.1", "ff02::1", "255.255.255.255", "100.64.0.1", "198.18.0.1", "192.0.2.1",
		"::ffff:127.0.0.1", "::ffff:10.0.0.1", "64:ff9b::a00:1", "2002:a00:1::1", "240.0.0.1"} {
		if Forbidden(netip.MustParseAddr(s)) == "" {
			t.Errorf("%s allowed", s)
		}
	}
	for _, s := range []string{"93.184.216.34", "8.8.8.8", "2606:4700::1111", "1.1.1.1"} {
		if why := Forbidden(netip.MustParseAddr(s)); why != "" {
			t.Errorf("%s refused: %s", s, why)
		}
	}
}

// TestGuardRefusesBeforeDialling: forbidden literal addresses and names
// resolving to them are refused without a connection attempt; with
// AllowPrivate, loopback is reached.
func TestGuardRefusesBeforeDialling(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	var mu sync.Mutex
	var dialled []netip.AddrPort
	g := &Guard{Timeout: 2 * time.Second,
		Resolve: func(_ context.Context, host string) ([]netip.Addr, error) {
			switch host {
			case "inside.test":
				return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
			case "mixed.test":
				return []netip.Addr{netip.MustParseAddr("93.184.216.34"), netip.MustParseAddr("10.0.0.1")}, nil
			}
			return nil, errors.New("no such host")
		},
		Dialled: func(ap netip.AddrPort) { mu.Lock(); dialled = append(dialled, ap); mu.Unlock() }}
	for _, target := range []string{"127.0.0.1:" + port, "10.0.0.1:80", "169.254.169.254:80", "inside.test:" + port, "mixed.test:80", "[::1]:" + port} {
		c, err := g.DialContext(context.Background(), "tcp", target)
		if err == nil {
			c.Close()
			t.Errorf("%s: dialled", target)
			continue
		}
		if !errors.Is(err, ErrForbidden) {
			t.Errorf("%s: %v, want ErrForbidden", target, err)
		}
	}
	if len(dialled) != 0 {
		t.Fatalf("connections attempted: %v", dialled)
	}
	g.AllowPrivate = true
	c, err := g.DialContext(context.Background(), "tcp", "inside.test:"+port)
	if err != nil {
		t.Fatalf("allowed: %v", err)
	}
	c.Close()
	if len(dialled) != 1 || dialled[0].String() != "127.0.0.1:"+port {
		t.Fatalf("dialled %v", dialled)
	}
}
