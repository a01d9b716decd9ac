package classify

import (
	"bufio"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/posthorn/posthorn/internal/smtpproto"
)

// tableRow is one line of testdata/replies.tsv.
type tableRow struct {
	id, phase, reply      string
	expected              Class
	origLabel, origSource string
	note, source          string
	line                  int
}

func loadTable(t testing.TB) []tableRow {
	t.Helper()
	f, err := os.Open("testdata/replies.tsv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rows []tableRow
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		if n == 1 {
			continue // header
		}
		p := strings.Split(sc.Text(), "\t")
		if len(p) != 8 {
			t.Fatalf("replies.tsv:%d: %d columns, want 8", n, len(p))
		}
		rows = append(rows, tableRow{id: p[0], phase: p[1], reply: p[2], expected: Class(p[3]),
			origLabel: p[4], origSource: p[5], note: p[6], source: p[7], line: n})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return rows
}

// parseTableReply parses a reply column: multi-line replies are written
// with a literal \n between lines.
func parseTableReply(s string) (smtpproto.Reply, error) {
	return smtpproto.ParseReply(strings.ReplaceAll(s, `\n`, "\n"))
}

// agreesWithLabel maps the dataset's four-way labels onto our classes:
// soft_bounce is any class that neither ends the delivery nor throttles.
func agreesWithLabel(label string, c Class) bool {
	switch label {
	case "soft_bounce":
		return !c.Permanent() && c != RateLimited && c != Delivered
	case "not_bounce":
		return c == Delivered
	}
	return label == string(c)
}

// TestReplyTable runs every reply of testdata/replies.tsv through the
// default rules. Run with -v to see the accuracy against the original
// labels and the per-class counts.
func TestReplyTable(t *testing.T) {
	rows := loadTable(t)
	if len(rows) < 300 {
		t.Fatalf("only %d rows", len(rows))
	}
	type tally struct{ n, agree int }
	bySet := map[string]*tally{}
	perExpected := map[Class]int{}
	confusion := map[string]map[Class]int{}
	seen := map[string]bool{}
	for _, row := range rows {
		if seen[row.id] {
			t.Errorf("line %d: duplicate id %s", row.line, row.id)
		}
		seen[row.id] = true
		if !row.expected.Valid() {
			t.Errorf("%s: bad expected class %q", row.id, row.expected)
			continue
		}
		r, err := parseTableReply(row.reply)
		if err != nil {
			t.Errorf("%s: %v", row.id, err)
			continue
		}
		res := Default().Classify(row.phase, r)
		if res.Class != row.expected {
			t.Errorf("%s (phase %q) %q\n\tgot %s by rule %s (pattern %q), want %s", row.id, row.phase, row.reply, res.Class, res.Rule, res.Pattern, row.expected)
		}
		perExpected[row.expected]++
		if row.origLabel == "-" {
			continue
		}
		set := "dataset smtp-replies.tsv"
		if row.origSource == "kumomta" {
			set = "KumoMTA rule texts"
		}
		if bySet[set] == nil {
			bySet[set] = &tally{}
		}
		bySet[set].n++
		if agreesWithLabel(row.origLabel, res.Class) {
			bySet[set].agree++
		}
		explained := strings.HasPrefix(row.note, "correction") || strings.HasPrefix(row.note, "disagree")
		if !agreesWithLabel(row.origLabel, row.expected) && !explained {
			t.Errorf("%s: expected %s disagrees with the original label %s but the note gives no reason", row.id, row.expected, row.origLabel)
		}
		if set != "dataset smtp-replies.tsv" {
			continue
		}
		if confusion[row.origLabel] == nil {
			confusion[row.origLabel] = map[Class]int{}
		}
		confusion[row.origLabel][res.Class]++
	}
	sets := make([]string, 0, len(bySet))
	for s := range bySet {
		sets = append(sets, s)
	}
	sort.Strings(sets)
	for _, s := range sets {
		ta := bySet[s]
		t.Logf("accuracy against the original labels of the %s: %d/%d = %.1f%% (%d rows corrected, each with a note)",
			s, ta.agree, ta.n, 100*float64(ta.agree)/float64(ta.n), ta.n-ta.agree)
	}
	var b strings.Builder
	for _, c := range Classes() {
		fmt.Fprintf(&b, " %s=%d", c, perExpected[c])
	}
	t.Logf("%d rows; per class:%s", len(rows), b.String())
	labels := make([]string, 0, len(confusion))
	for l := range confusion {
		labels = append(labels, l)
	}
	sort.Strings(labels)
	for _, l := range labels {
		b.Reset()
		for _, c := range Classes() {
			if n := confusion[l][c]; n > 0 {
				fmt.Fprintf(&b, " %s=%d", c, n)
			}
		}
		t.Logf("dataset label %-13s -> ours:%s", l, b.String())
	}
}

// TestTableInvariants checks, on real replies, the promises the classes
// make to the queue.
func TestTableInvariants(t *testing.T) {
	for _, row := range loadTable(t) {
		r, err := parseTableReply(row.reply)
		if err != nil {
			continue // reported by TestReplyTable
		}
		c := Reply(row.phase, r)
		switch {
		case r.Transient() && c.Permanent():
			t.Errorf("%s: a 4xx became %s", row.id, c)
		case r.Code/100 == 2 && c != Delivered, c == Delivered && r.Code/100 != 2:
			t.Errorf("%s: code %d became %s", row.id, r.Code, c)
		}
	}
}

func TestPrefiltersOnTable(t *testing.T) {
	for _, row := range loadTable(t) {
		checkPrefilters(t, strings.ReplaceAll(row.reply, `\n`, "\n"))
		checkPrefilters(t, strings.ToUpper(row.reply))
	}
	for _, s := range []string{"\u212Aeine", "ſpam detected", "MAİLBOX FULL", "mailbox\u00a0full"} {
		checkPrefilters(t, s)
	}
}
