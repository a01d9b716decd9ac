package queue

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/classify"
	"github.com/posthorn/posthorn/internal/store"
)

func TestBodiesBudget(t *testing.T) {
	b := NewBodies(100 * 8)
	for i := 0; i < 20; i++ {
		b.Put(&store.Message{ID: fmt.Sprint(i), Body: make([]byte, 100)})
	}
	if b.used > 800 {
		t.Fatalf("over budget: %d", b.used)
	}
	if b.Get("0") != nil {
		t.Fatal("oldest entry not evicted")
	}
	if b.Get("19") == nil {
		t.Fatal("newest entry missing")
	}
	b.Put(&store.Message{ID: "huge", Body: make([]byte, 200)}) // over budget/8: not cached
	if b.Get("huge") != nil {
		t.Fatal("oversized body cached")
	}
}

func TestBackoffAndDecide(t *testing.T) {
	s := &Scheduler{cfg: Config{RetryMin: time.Minute, RetryMax: 10 * time.Minute}}
	for n, want := range map[int]time.Duration{1: time.Minute, 2: 2 * time.Minute, 3: 4 * time.Minute, 4: 8 * time.Minute, 9: 10 * time.Minute} {
		got := s.backoff(n)
		if got < want*8/10 || got > want*12/10 {
			t.Errorf("backoff(%d) = %s, want %s ±20%%", n, got, want)
		}
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := Rcpt{ExpiresAt: now.Add(time.Hour)}
	cases := []struct {
		cls   classify.Class
		perm  bool
		at    time.Time
		state store.State
	}{
		{classify.Delivered, false, now, store.Delivered},
		{classify.HardBounce, false, now, store.Bounced},
		{classify.DNSError, true, now, store.Bounced},
		{classify.Deferred, false, now, store.Deferred},
		{classify.Deferred, false, now.Add(time.Hour), store.DeadLetter},
		{classify.ConnectionError, false, now.Add(2 * time.Hour), store.DeadLetter},
		{classify.MailboxFull, false, now.Add(time.Hour), store.SoftBounced},
	}
	for _, c := range cases {
		st, next, _ := s.decide(r, c.cls, c.perm, c.at, time.Time{})
		if st != c.state {
			t.Errorf("decide(%s at +%s) = %s, want %s", c.cls, c.at.Sub(now), st, c.state)
		}
		if st == store.Deferred && (next.Before(c.at) || next.After(r.ExpiresAt)) {
			t.Errorf("next attempt %s outside (now, expiry]", next)
		}
	}
	// Near the end of the lifetime the retry is clamped to the expiry.
	_, next, _ := s.decide(r, classify.Deferred, false, now.Add(59*time.Minute+30*time.Second), time.Time{})
	if !next.Equal(r.ExpiresAt) {
		t.Errorf("last retry at %s, want the expiry %s", next, r.ExpiresAt)
	}
}

func TestLaneQueueRoundRobin(t *testing.T) {
	var q laneQueue
	for i := 0; i < 5; i++ {
		q.push(&Job{TenantID: "a", MessageID: fmt.Sprint("a", i)})
	}
	q.push(&Job{TenantID: "b", MessageID: "b0"})
	q.push(&Job{TenantID: "c", MessageID: "c0"})
	var got []string
	for j := q.pop(); j != nil; j = q.pop() {
		got = append(got, j.MessageID)
	}
	want := "a0,b0,c0,a1,a2,a3,a4"
	if g := fmt.Sprint(got); g != "["+strings.ReplaceAll(want, ",", " ")+"]" {
		t.Fatalf("order %v, want %s", got, want)
	}
	// Removed jobs are skipped.
	j := &Job{TenantID: "a", MessageID: "x"}
	q.push(j)
	q.push(&Job{TenantID: "a", MessageID: "y"})
	j.removed = true
	if p := q.pop(); p == nil || p.MessageID != "y" {
		t.Fatalf("got %+v, want y", p)
	}
}
