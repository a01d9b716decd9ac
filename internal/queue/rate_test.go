package queue

import (
	"testing"
	"time"
)

// TestRateEstimate: the last minute's sends, or the last ten seconds'
// times six when that is more; sends older than a minute are dropped.
func TestRateEstimate(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	var d dest
	for i := 0; i < 50; i++ { // a minute and more ago: forgotten
		d.sent = append(d.sent, now.Add(-90*time.Second+time.Duration(i)*time.Millisecond))
	}
	for i := 0; i < 40; i++ { // 30 s ago
		d.sent = append(d.sent, now.Add(-30*time.Second+time.Duration(i)*time.Millisecond))
	}
	if got := d.rateEstimate(now); got != 40 {
		t.Fatalf("40 sends in the last minute, none in the last 10 s: estimate %d, want 40", got)
	}
	if len(d.sent) != 40 {
		t.Fatalf("%d sends kept, want the 40 of the last minute", len(d.sent))
	}
	for i := 0; i < 10; i++ { // the last 10 s, the first exactly 10 s ago
		d.sent = append(d.sent, now.Add(-10*time.Second+time.Duration(i)*time.Second))
	}
	if got := d.rateEstimate(now); got != 60 {
		t.Fatalf("50 sends in the last minute, 10 in the last 10 s: estimate %d, want 60", got)
	}
}
