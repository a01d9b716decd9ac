package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/testkit"
)

// TestClassifierRulesFromConfig: an operator's rule file decides what a
// reply means (here a 550 5.7.1 that one provider uses for a passing
// quota is only a deferral), and the built-in rules still apply to the
// rest.
func TestClassifierRulesFromConfig(t *testing.T) {
	rules := filepath.Join(t.TempDir(), "rules.toml")
	if err := os.WriteFile(rules, []byte(`
[[rule]]
name = "corp-quota-window"
class = "deferred"
codes = ["550"]
text = ['quota window exhausted']
`), 0o600); err != nil {
		t.Fatal(err)
	}
	w := newWorld(t, Options{Config: fmt.Sprintf("[classify]\nrules = %q\n", rules)}, "127.0.0.2")
	w.domain("corp.test", "127.0.0.2")
	w.mx["127.0.0.2"].SetScript(testkit.Script{RcptReplies: map[string]testkit.Reply{
		"gone@corp.test": {Code: 550, Text: "5.1.1 no such user"},
		"busy@corp.test": {Code: 550, Text: "5.7.1 quota window exhausted"},
	}})
	id := w.in.Send("s@app.test", []string{"gone@corp.test", "busy@corp.test"}, msgBody("rules"))
	deadline := time.Now().Add(20 * time.Second)
	for {
		d := w.in.Show(id)
		gone, busy := delivery(t, d, "gone@corp.test"), delivery(t, d, "busy@corp.test")
		if gone.State == store.Bounced && busy.State == store.Deferred {
			if gone.LastClass != "hard_bounce" || busy.LastClass != "deferred" {
				t.Fatalf("gone: %+v, busy: %+v", gone, busy)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("gone %s (%s), busy %s", gone.State, gone.LastClass, busy.State)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
