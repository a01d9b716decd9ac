package store

import (
	"os"
	"strings"
	"testing"
)

// docs/states.md shows the transition table; it must be this table.
func TestDocsShowTheTable(t *testing.T) {
	var b strings.Builder
	b.WriteString("| op | from | to | event |\n| --- | --- | --- | --- |\n")
	for _, r := range Rules() {
		from := make([]string, len(r.From))
		for i, f := range r.From {
			from[i] = "`" + string(f) + "`"
		}
		fromText, event := strings.Join(from, ", "), "`"+r.Event+"`"
		if len(r.From) == 0 {
			fromText = "(new)"
		}
		switch {
		case r.Op == OpOutcome:
			event = "the outcome's"
		case r.Event == "":
			event = "none"
		}
		b.WriteString("| `" + string(r.Op) + "` | " + fromText + " | `" + string(r.To) + "` | " + event + " |\n")
	}
	doc, err := os.ReadFile("../../docs/states.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), b.String()) {
		t.Fatalf("docs/states.md does not show the transition table; it should contain:\n%s", b.String())
	}
}
