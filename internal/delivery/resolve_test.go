package delivery

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/posthorn/posthorn/internal/testkit"
)

func TestResolver(t *testing.T) {
	d := testkit.StartDNS(t)
	d.SetMX("two.test", testkit.MX{Pref: 20, Host: "b.two.test"}, testkit.MX{Pref: 10, Host: "a.two.test"})
	d.SetA("a.two.test", "127.0.0.2", "::1")
	d.SetA("nomx.test", "127.0.0.3")
	d.SetMX("null.test", testkit.MX{Pref: 0, Host: "."})
	d.SetRcode("broken.test", dns.TypeMX, dns.RcodeServerFailure)
	r, err := NewResolver(d.Addr())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	mxs, err := r.LookupMX(ctx, "two.test")
	if err != nil || len(mxs) != 2 || mxs[0].Name != "a.two.test" || mxs[1].Name != "b.two.test" {
		t.Fatalf("MX by preference: %+v %v", mxs, err)
	}
	ips, err := r.LookupIP(ctx, "a.two.test")
	if err != nil || len(ips) != 2 || ips[0].String() != "127.0.0.2" || ips[1].String() != "::1" {
		t.Fatalf("A then AAAA: %v %v", ips, err)
	}
	mxs, err = r.LookupMX(ctx, "nomx.test")
	if err != nil || len(mxs) != 1 || !mxs[0].Implicit || mxs[0].Name != "nomx.test" {
		t.Fatalf("implicit MX: %+v %v", mxs, err)
	}
	var de *DNSError
	if _, err := r.LookupMX(ctx, "null.test"); !errors.As(err, &de) || !de.Permanent {
		t.Fatalf("null MX: %v", err)
	}
	if _, err := r.LookupMX(ctx, "nowhere.test"); !errors.As(err, &de) || !de.Permanent {
		t.Fatalf("NXDOMAIN: %v", err)
	}
	if _, err := r.LookupMX(ctx, "broken.test"); !errors.As(err, &de) || de.Permanent {
		t.Fatalf("SERVFAIL must be temporary: %v", err)
	}
	// Answers are cached: a second lookup asks nothing.
	before := d.Queries("two.test", dns.TypeMX)
	r.LookupMX(ctx, "two.test")
	if after := d.Queries("two.test", dns.TypeMX); after != before {
		t.Fatalf("cached MX asked again: %d -> %d", before, after)
	}
	if ips, err := r.LookupIP(ctx, "[192.0.2.7]"); err != nil || ips[0].String() != "192.0.2.7" {
		t.Fatalf("address literal: %v %v", ips, err)
	}
}

// A query whose datagram is lost is sent again after a short timeout,
// instead of failing the lookup (and deferring the delivery) after one
// long one.
func TestResolverRetransmits(t *testing.T) {
	d := testkit.StartDNS(t)
	d.SetA("lossy.test", "127.0.0.2")
	r, err := NewResolver(d.Addr())
	if err != nil {
		t.Fatal(err)
	}
	r.tries = []time.Duration{200 * time.Millisecond, 200 * time.Millisecond, 5 * time.Second}
	d.DropNext("lossy.test", 2)
	start := time.Now()
	ips, err := r.LookupIP(context.Background(), "lossy.test")
	if err != nil || len(ips) != 1 || ips[0].String() != "127.0.0.2" {
		t.Fatalf("after two lost queries: %v %v", ips, err)
	}
	if got := d.Queries("lossy.test", dns.TypeA); got != 3 {
		t.Fatalf("%d A queries, want 3 (two lost, one answered)", got)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("lookup took %s: the third try should have been answered at once", took)
	}
	if st := r.Stats(); st.Retransmits != 2 || st.Failures != 0 || st.Queries != 2 {
		t.Fatalf("stats %+v, want 2 queries (A, AAAA), 2 retransmissions, no failure", st)
	}

	// Every try lost: a temporary DNS error, after all of them.
	r.tries = []time.Duration{100 * time.Millisecond, 100 * time.Millisecond}
	d.SetA("gone.test", "127.0.0.3")
	d.DropNext("gone.test", 10)
	var de *DNSError
	if _, err := r.LookupIP(context.Background(), "gone.test"); !errors.As(err, &de) || de.Permanent {
		t.Fatalf("all tries lost: %v, want a temporary DNSError", err)
	}
	if got := d.Queries("gone.test", dns.TypeA); got != 2 {
		t.Fatalf("%d A queries, want 2", got)
	}
	if st := r.Stats(); st.Failures == 0 || st.Retransmits < 3 {
		t.Fatalf("stats %+v: the lost lookup is neither a failure nor retransmitted", st)
	}
}

// When a large queue comes due, thousands of domains need their first
// lookup at once. Sent together, their datagrams overflow the DNS
// server's socket buffer and most lookups wait a retransmission timeout
// (a second or more); held to maxInflight at once, none is lost.
func TestResolverBurstLosesNothing(t *testing.T) {
	d := testkit.StartDNS(t)
	const n = 3000
	for i := range n {
		d.SetMX(fmt.Sprintf("d%d.burst.test", i), testkit.MX{Pref: 10, Host: "mx.burst.test"})
	}
	r, err := NewResolver(d.Addr())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if _, err := r.LookupMX(context.Background(), fmt.Sprintf("d%d.burst.test", i)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if st := r.Stats(); st.Queries != n || st.Retransmits != 0 || st.Failures != 0 {
		t.Fatalf("%d lookups at once: %+v, want %d queries and no retransmission", n, st, n)
	}
}

// Concurrent lookups of one name share one query.
func TestResolverSharesQueries(t *testing.T) {
	d := testkit.StartDNS(t)
	d.SetMX("busy.test", testkit.MX{Pref: 10, Host: "mx.busy.test"})
	d.SetDelay("busy.test", 300*time.Millisecond)
	r, err := NewResolver(d.Addr())
	if err != nil {
		t.Fatal(err)
	}
	const callers = 20
	errs := make(chan error, callers)
	for range callers {
		go func() {
			mxs, err := r.LookupMX(context.Background(), "busy.test")
			if err == nil && (len(mxs) != 1 || mxs[0].Name != "mx.busy.test") {
				err = errors.New("wrong answer")
			}
			errs <- err
		}()
	}
	for range callers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if got := d.Queries("busy.test", dns.TypeMX); got != 1 {
		t.Fatalf("%d MX queries for %d concurrent lookups, want 1", got, callers)
	}
}

// An answer slower than a try's timeout still counts when it arrives
// during a later try: every try of the query shares one socket.
func TestResolverKeepsLateAnswers(t *testing.T) {
	d := testkit.StartDNS(t)
	d.SetA("slow.test", "127.0.0.2")
	d.SetDelay("slow.test", 300*time.Millisecond) // every answer comes after its try gave up
	r, err := NewResolver(d.Addr())
	if err != nil {
		t.Fatal(err)
	}
	r.tries = []time.Duration{200 * time.Millisecond, 200 * time.Millisecond, 200 * time.Millisecond}
	ips, err := r.LookupIP(context.Background(), "slow.test")
	if err != nil || len(ips) != 1 || ips[0].String() != "127.0.0.2" {
		t.Fatalf("answers slower than each try: %v %v", ips, err)
	}
}

// Lookups whose server does not answer (a dead domain's) give their place
// in line up after their first try: a burst of them does not keep the
// lookups behind it waiting for all their retransmissions.
func TestResolverDeadLookupsDoNotHoldTheLine(t *testing.T) {
	d := testkit.StartDNS(t)
	r, err := NewResolver(d.Addr())
	if err != nil {
		t.Fatal(err)
	}
	r.tries = []time.Duration{300 * time.Millisecond, time.Second}
	dead := 3 * maxInflight
	var wg sync.WaitGroup
	for i := range dead {
		name := fmt.Sprintf("d%d.dead.test", i)
		d.DropNext(name, 10)
		wg.Go(func() { r.LookupMX(context.Background(), name) })
	}
	time.Sleep(50 * time.Millisecond) // the dead ones are in line first
	d.SetMX("alive.test", testkit.MX{Pref: 10, Host: "mx.alive.test"})
	start := time.Now()
	if _, err := r.LookupMX(context.Background(), "alive.test"); err != nil {
		t.Fatal(err)
	}
	// Three rounds of first tries (0.9 s); holding the line through the
	// retransmissions too would take three rounds of 1.3 s.
	took := time.Since(start)
	t.Logf("a lookup behind %d unanswered ones: %s", dead, took)
	if took > 2500*time.Millisecond {
		t.Errorf("a lookup behind %d unanswered ones took %s", dead, took)
	}
	wg.Wait()
}
