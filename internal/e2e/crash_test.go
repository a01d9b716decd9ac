package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/testkit"
)

var tokenRe = regexp.MustCompile(`X-Crash-Token: (c\d+-\d+)`)

// TestCrashDurability injects mail from several concurrent clients while
// posthorn is killed with SIGKILL and restarted several times. Every
// message that got a 250 must reach the MX; duplicates are reported and
// bounded by what can be in flight at a kill.
func TestCrashDurability(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test skipped in -short mode")
	}
	w := newWorld(t, Options{RetryMin: 200 * time.Millisecond, RetryMax: time.Second}, "127.0.0.2")
	w.domain("crash.test", "127.0.0.2")
	mx := w.mx["127.0.0.2"]
	mx.SetScript(testkit.Script{}) // plain and fast
	in := w.in

	const clients, kills = 6, 5
	var (
		mu      sync.Mutex
		acked   = map[string]bool{}
		stop    atomic.Bool
		wg      sync.WaitGroup
		refused atomic.Int64
	)
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				token := fmt.Sprintf("c%d-%d", c, i)
				body := "Subject: crash " + token + "\r\nX-Crash-Token: " + token + "\r\n\r\nbody\r\n"
				if _, err := in.TrySend("sender@app.test", []string{"r@crash.test"}, body); err != nil {
					refused.Add(1)
					time.Sleep(20 * time.Millisecond)
					continue
				}
				mu.Lock()
				acked[token] = true
				mu.Unlock()
			}
		}(c)
	}
	// Each kill comes after a random number of fresh acknowledgements (not
	// after a fixed time), so a slow, loaded machine still exercises the
	// same amount of crash-and-recover; the 100 ms down time is the load
	// schedule, not a wait.
	ackedNow := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	waitAcks := func(n int) {
		target := ackedNow() + n
		for deadline := time.Now().Add(30 * time.Second); ackedNow() < target && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
	}
	for k := 0; k < kills; k++ {
		waitAcks(40 + rand.IntN(80))
		in.Kill()
		time.Sleep(100 * time.Millisecond)
		in.Restart()
	}
	waitAcks(60)
	stop.Store(true)
	wg.Wait()

	mu.Lock()
	want := len(acked)
	mu.Unlock()
	if want < 100 {
		t.Fatalf("only %d messages acknowledged; the test did not exercise much", want)
	}
	// Wait for every acknowledged message to arrive.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var got map[string]int
	err := mx.Wait(ctx, func() bool {
		got = map[string]int{}
		for _, m := range mx.Messages() {
			if sm := tokenRe.FindSubmatch(m.Data); sm != nil {
				got[string(sm[1])]++
			}
		}
		for tok := range acked {
			if got[tok] == 0 {
				return false
			}
		}
		return true
	})
	missing := 0
	for tok := range acked {
		if got[tok] == 0 {
			missing++
		}
	}
	dups := 0
	for _, n := range got {
		if n > 1 {
			dups += n - 1
		}
	}
	t.Logf("crash test: %d kills, %d messages acknowledged, %d received, %d duplicates, %d refused submissions while down",
		kills, want, len(got), dups, refused.Load())
	if err != nil || missing > 0 {
		t.Fatalf("%d acknowledged messages were never delivered", missing)
	}
	// A duplicate needs a kill between the MX's 250 and posthorn's commit:
	// at most the deliveries in flight at each kill (one per connection).
	if limit := kills * 20; dups > limit {
		t.Fatalf("%d duplicates, more than the %d that could be in flight", dups, limit)
	}
}
