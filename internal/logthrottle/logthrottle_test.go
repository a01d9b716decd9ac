package logthrottle

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestRepeatedErrorsAreSuppressed(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(1000, 0)
	h := New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}),
		Options{Burst: 5, Window: 10 * time.Second, Now: func() time.Time { return now }})
	log := slog.New(h).With("part", "store")
	for i := 0; i < 1000; i++ {
		log.Error("write failed", "err", "disk full", "i", i)
		log.Info("still here", "i", i) // below the level: never throttled
		now = now.Add(time.Millisecond)
	}
	log.Warn("another problem")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	count := func(s string) int {
		n := 0
		for _, l := range lines {
			if strings.Contains(l, s) {
				n++
			}
		}
		return n
	}
	if n := count(`msg="write failed"`); n != 5 {
		t.Fatalf("%d of 1000 identical errors logged, want 5", n)
	}
	if n := count(`msg="still here"`); n != 1000 {
		t.Fatalf("%d info lines, want all 1000", n)
	}
	if n := count(`msg="another problem"`); n != 1 {
		t.Fatalf("a different message was held back: %d", n)
	}
	// The window ends: the next record brings the report.
	buf.Reset()
	now = now.Add(10 * time.Second)
	log.Error("write failed", "err", "disk full")
	out := buf.String()
	if !strings.Contains(out, `msg="suppressed 995 similar log lines"`) || !strings.Contains(out, `message="write failed"`) ||
		!strings.Contains(out, "part=store") || !strings.Contains(out, "level=ERROR") {
		t.Fatalf("no suppression report after the window:\n%s", out)
	}
	if strings.Count(out, `msg="write failed"`) != 1 {
		t.Fatalf("the first record of the new window did not pass:\n%s", out)
	}
}
