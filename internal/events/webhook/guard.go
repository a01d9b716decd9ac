package webhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"syscall"
	"time"
)

// special are address ranges that are not the public Internet beyond what
// netip's predicates catch: shared address space, IETF protocol
// assignments, documentation, benchmarking, reserved, NAT64 and 6to4
// (which embed IPv4 addresses), and documentation for IPv6.
var special = func() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range []string{"0.0.0.0/8", "100.64.0.0/10", "192.0.0.0/24", "192.0.2.0/24", "198.18.0.0/15", "198.51.100.0/24",
		"203.0.113.0/24", "240.0.0.0/4", "64:ff9b::/96", "64:ff9b:1::/48", "2001::/23", "2001:db8::/32", "2002::/16", "100::/64"} {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}()

// Forbidden says why a may not be a webhook target ("" when it may).
func Forbidden(a netip.Addr) string {
	a = a.Unmap()
	switch {
	case !a.IsValid():
		return "not an address"
	case a.IsLoopback():
		return "loopback"
	case a.IsUnspecified():
		return "unspecified"
	case a.IsPrivate():
		return "private"
	case a.IsLinkLocalUnicast(), a.IsLinkLocalMulticast():
		return "link-local"
	case a.IsMulticast(), a.IsInterfaceLocalMulticast():
		return "multicast"
	case !a.IsGlobalUnicast():
		return "not global unicast"
	}
	for _, p := range special {
		if p.Contains(a) {
			return "special-purpose (" + p.String() + ")"
		}
	}
	return ""
}

// ErrForbidden is returned for a target address that is not allowed.
var ErrForbidden = errors.New("webhook target not allowed")

// Guard dials webhook targets: it resolves names with Resolve (posthorn's
// resolver, so --dns-server applies) and refuses forbidden addresses
// before dialling them.
type Guard struct {
	AllowPrivate bool
	Resolve      func(ctx context.Context, host string) ([]netip.Addr, error)
	Timeout      time.Duration // connect timeout
	// Dialled, when set, is told every address a connection is attempted
	// to (after the checks), for tests.
	Dialled func(netip.AddrPort)
}

func (g *Guard) check(a netip.Addr) error {
	if g.AllowPrivate {
		return nil
	}
	if why := Forbidden(a); why != "" {
		return fmt.Errorf("%w: %s is %s (webhooks.allow_private_targets is off)", ErrForbidden, a.Unmap(), why)
	}
	return nil
}

// DialContext is an http.Transport dialer.
func (g *Guard) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("bad port in %q", addr)
	}
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else {
		if addrs, err = g.Resolve(ctx, host); err != nil {
			return nil, fmt.Errorf("resolve %s: %w", host, err)
		}
		if len(addrs) == 0 {
			return nil, fmt.Errorf("resolve %s: no address", host)
		}
	}
	// Every address must pass: a name that also resolves to an inside
	// address is refused as a whole (no trying until one is let through).
	for _, a := range addrs {
		if err := g.check(a); err != nil {
			return nil, fmt.Errorf("%s: %w", host, err)
		}
	}
	d := &net.Dialer{Timeout: g.Timeout, Control: func(_, address string, _ syscall.RawConn) error {
		// The address the socket is about to connect to: checked again,
		// so nothing between resolution and connect can slip through.
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("%w: cannot parse %q", ErrForbidden, address)
		}
		if err := g.check(ap.Addr()); err != nil {
			return err
		}
		if g.Dialled != nil {
			g.Dialled(ap)
		}
		return nil
	}}
	var firstErr error
	for _, a := range addrs {
		c, err := d.DialContext(ctx, network, netip.AddrPortFrom(a.Unmap(), uint16(port)).String())
		if err == nil {
			return c, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return nil, firstErr
}
