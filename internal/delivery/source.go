package delivery

import (
	"context"
	"net"
	"net/netip"
)

// Source is where a connection comes from: the local address to bind
// (a source pool's member, chosen by internal/pool) and the EHLO name to
// use. The zero Source lets the operating system choose the address and
// uses the configured hostname.
//
// It travels in the context given to Dial (WithSource) rather than as a
// parameter, so the dialling path keeps one signature for every caller.
type Source struct {
	IP   netip.Addr
	EHLO string
}

type sourceKey struct{}

// WithSource returns ctx carrying src for Dial.
func WithSource(ctx context.Context, src Source) context.Context {
	return context.WithValue(ctx, sourceKey{}, src)
}

func sourceOf(ctx context.Context) Source {
	src, _ := ctx.Value(sourceKey{}).(Source)
	return src
}

// localAddr is the address to bind for a connection to ip: nil when no
// source is set; ok false when the families differ (an IPv4 source cannot
// reach an IPv6 host).
func (s Source) localAddr(ip netip.Addr) (*net.TCPAddr, bool) {
	if !s.IP.IsValid() {
		return nil, true
	}
	if s.IP.Unmap().Is4() != ip.Unmap().Is4() {
		return nil, false
	}
	return net.TCPAddrFromAddrPort(netip.AddrPortFrom(s.IP, 0)), true
}

func (s Source) name(hostname string) string {
	if s.EHLO != "" {
		return s.EHLO
	}
	return hostname
}
