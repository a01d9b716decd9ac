package shaping

import (
	"testing"
	"time"
)

// TestSetLimits: a reload moves a throttle at its limits to the new ones;
// an adapted (throttled) one keeps its adapted values, capped by the new
// limits, and its pause.
func TestSetLimits(t *testing.T) {
	th := New(Limits{MaxConns: 2, RatePerMinute: 60})
	th.SetLimits(Limits{MaxConns: 6, RatePerMinute: 120})
	if st := th.State(); st.Conns != 6 || st.MaxConns != 6 || st.RatePerMinute != 120 || st.Throttled {
		t.Fatalf("at limits, raised: %+v", st)
	}
	if l := th.Limits(); l.MaxConns != 6 || l.Cooldown != time.Minute {
		t.Fatalf("limits %+v", l)
	}
	th.RateLimited(t0, 0, "421 4.7.28 slow down") // conns 3, rate 60
	paused := th.PausedUntil()
	th.SetLimits(Limits{MaxConns: 10, RatePerMinute: 600})
	if st := th.State(); st.Conns != 3 || st.RatePerMinute != 60 || !st.Throttled || !st.PausedUntil.Equal(paused) {
		t.Fatalf("throttled, limits raised: %+v", st)
	}
	th.SetLimits(Limits{MaxConns: 2, RatePerMinute: 30})
	if st := th.State(); st.Conns != 2 || st.RatePerMinute != 30 {
		t.Fatalf("throttled, limits lowered below the adapted values: %+v", st)
	}
}
