package pool

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/config"
)

func mustNew(t *testing.T, cfg Config) *Set {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestSelection: the first matching pool wins, "default" catches the
// rest, and with neither the OS chooses (zero Choice).
func TestSelection(t *testing.T) {
	s := mustNew(t, Config{Pools: []config.Pool{
		{Name: "bulk", Addresses: []string{"192.0.2.1"}, Lanes: []string{"low"}},
		{Name: "acme", Addresses: []string{"192.0.2.2"}, Tenants: []string{"t-acme"}, Domains: []string{"acme.test"}},
		{Name: "default", Addresses: []string{"192.0.2.3"}, EHLO: "out.example"},
	}})
	now := time.Now()
	for _, c := range []struct {
		m    Mail
		want string
	}{
		{Mail{Lane: "low", Tenant: "t-acme", SenderDomain: "acme.test"}, "bulk"},
		{Mail{Lane: "normal", Tenant: "t-acme", SenderDomain: "acme.test"}, "acme"},
		{Mail{Lane: "normal", Tenant: "t-acme", SenderDomain: "other.test"}, "default"},
		{Mail{Lane: "high", Tenant: "t-x"}, "default"},
	} {
		got, _, ok := s.Pick(c.m, "d", 1, now)
		if !ok || got.Pool != c.want {
			t.Errorf("%+v: pool %q, want %q", c.m, got.Pool, c.want)
		}
	}
	none := mustNew(t, Config{Pools: []config.Pool{{Name: "bulk", Addresses: []string{"192.0.2.1"}, Lanes: []string{"low"}}}})
	if c, _, ok := none.Pick(Mail{Lane: "high"}, "d", 1, now); !ok || c.Addr.IsValid() {
		t.Errorf("no matching pool and no default: %+v", c)
	}
}

// TestWeights: smooth weighted round-robin gives each address its share.
func TestWeights(t *testing.T) {
	s := mustNew(t, Config{Pools: []config.Pool{{Name: "default", Addresses: []string{"192.0.2.1", "192.0.2.2"}, Weights: []int{3, 1}}}})
	n := map[string]int{}
	for range 400 {
		c, _, _ := s.Pick(Mail{}, "d", 1, time.Now())
		n[c.Addr.String()]++
	}
	if n["192.0.2.1"] != 300 || n["192.0.2.2"] != 100 {
		t.Fatalf("shares %v, want 300/100", n)
	}
}

// TestWarmupCompressedClock runs a warm-up on a clock where a day is a
// minute: mail keeps arriving for two destinations; no warming address
// ever sends more than its day's cap to one destination, the overflow
// goes to the warm address or waits for the next day, and once the
// schedule is over the address takes its full share.
func TestWarmupCompressedClock(t *testing.T) {
	start := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	sched := []int{5, 10, 20}
	mk := func(warm bool) *Set {
		p := config.Pool{Name: "default", Addresses: []string{"192.0.2.1", "192.0.2.2"}, Warming: []string{"192.0.2.2"},
			WarmupStart: "2026-12-01", Warmup: sched}
		if !warm {
			p.Addresses = p.Addresses[1:]
		}
		return mustNew(t, Config{Pools: []config.Pool{p}, DayLength: time.Minute})
	}
	// With a warm partner: the overflow goes to the warm address.
	s := mk(true)
	sent := map[[2]int]int{} // (day, dest) -> count for the warming address
	for i := range 6 * 60 {
		now := start.Add(time.Duration(i) * time.Second)
		day := i/60 + 1
		for dest := range 2 {
			c, _, ok := s.Pick(Mail{}, []string{"gmail", "yahoo"}[dest], 1, now)
			if !ok {
				t.Fatalf("day %d: no address although one is warm", day)
			}
			if c.Addr.String() == "192.0.2.2" {
				sent[[2]int{day, dest}]++
			}
		}
	}
	for day := 1; day <= 6; day++ {
		for dest := range 2 {
			n := sent[[2]int{day, dest}]
			if day <= len(sched) && n != sched[day-1] {
				t.Errorf("day %d dest %d: warming address sent %d, want its cap %d", day, dest, n, sched[day-1])
			}
			if day > len(sched) && n != 30 {
				t.Errorf("day %d dest %d: warm address sent %d, want its full half (30)", day, dest, n)
			}
		}
	}
	st := s.Status(start.Add(6 * time.Minute))
	if st[1].Warming {
		t.Errorf("schedule over, still warming: %+v", st[1])
	}

	// Alone: mail beyond the cap waits for the next day, never over it.
	s = mk(false)
	now := start.Add(90 * time.Second) // day 2, cap 10
	for range 10 {
		if _, _, ok := s.Pick(Mail{}, "gmail", 1, now); !ok {
			t.Fatal("refused under the cap")
		}
	}
	_, wait, ok := s.Pick(Mail{}, "gmail", 1, now)
	if ok || !wait.Equal(start.Add(2*time.Minute)) {
		t.Fatalf("over the cap: ok=%v wait=%v, want a wait until day 3", ok, wait)
	}
	if _, _, ok := s.Pick(Mail{}, "yahoo", 1, now); !ok {
		t.Fatal("the cap is per destination: yahoo refused")
	}
	if _, _, ok := s.Pick(Mail{}, "gmail", 1, wait); !ok {
		t.Fatal("refused on the next day")
	}
	if st := s.Status(now); st[0].Day != 2 || st[0].Cap != 10 || st[0].PerDest["gmail"] != 10 || st[0].Today != 11 {
		t.Errorf("status %+v", st[0])
	}
}

// TestWarmupCountsSurviveRestart: today's counts are written to the file
// and read back, so a restart does not reopen the day's cap.
func TestWarmupCountsSurviveRestart(t *testing.T) {
	file := filepath.Join(t.TempDir(), "warmup.json")
	now := time.Now()
	cfg := Config{Pools: []config.Pool{{Name: "default", Addresses: []string{"192.0.2.9"}, Warming: []string{"192.0.2.9"},
		WarmupStart: now.UTC().Format(time.DateOnly), Warmup: []int{3}}}, CountsFile: file, Now: func() time.Time { return now }}
	s := mustNew(t, cfg)
	for range 3 {
		if _, _, ok := s.Pick(Mail{}, "d", 1, now); !ok {
			t.Fatal("refused under the cap")
		}
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	s = mustNew(t, cfg)
	if _, _, ok := s.Pick(Mail{}, "d", 1, now); ok {
		t.Fatal("after a restart the day's cap was open again")
	}
}

// TestEmptyScheduleMeansDefault: "schedule = []" (as in the example
// config) is the built-in ramp, not "no warm-up".
func TestEmptyScheduleMeansDefault(t *testing.T) {
	now := time.Now()
	s := mustNew(t, Config{Schedule: []int{}, Pools: []config.Pool{{Name: "default", Addresses: []string{"192.0.2.9"},
		Warming: []string{"192.0.2.9"}, WarmupStart: now.UTC().Format(time.RFC3339Nano)}}})
	if st := s.Status(now); len(st) != 1 || !st[0].Warming || st[0].Day != 1 || st[0].Cap != DefaultSchedule[0] {
		t.Fatalf("status %+v", st)
	}
}
