package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/api"
	"github.com/posthorn/posthorn/internal/queue/ops"
	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/testkit"
)

// mustRun runs a posthorn command (text output) and fails the test on a
// non-zero exit.
func (in *Instance) mustRun(args ...string) string {
	in.t.Helper()
	out, errOut, code := in.Run("", nil, args...)
	if code != 0 {
		in.t.Fatalf("posthorn %s: exit %d: %s", strings.Join(args, " "), code, errOut)
	}
	return out
}

// mustFail runs a posthorn command that must exit non-zero and returns
// what it printed on stderr.
func (in *Instance) mustFail(args ...string) string {
	in.t.Helper()
	out, errOut, code := in.Run("", nil, args...)
	if code == 0 {
		in.t.Fatalf("posthorn %s exited 0; want an error. Output:\n%s", strings.Join(args, " "), out)
	}
	return errOut
}

// waitList polls queue list with args until it lists n deliveries.
func (in *Instance) waitList(n int, args ...string) api.QueueList {
	in.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var list api.QueueList
		in.CLI(&list, append([]string{"queue", "list"}, args...)...)
		if list.Count == n {
			return list
		}
		if time.Now().After(deadline) {
			in.t.Fatalf("queue list %v: %d deliveries, want %d", args, list.Count, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// cliWorld: ops.test answers 450 to every RCPT, down.test's only MX host
// refuses connections; retries are an hour away.
func cliWorld(t *testing.T, o Options) *world {
	if o.RetryMin == 0 {
		o.RetryMin, o.RetryMax = time.Hour, time.Hour
	}
	w := newWorld(t, o, "127.0.0.2", "127.0.0.3")
	w.domain("ops.test", "127.0.0.2")
	w.domain("down.test", "127.0.0.3")
	w.mx["127.0.0.2"].SetScript(testkit.Script{Rcpt: func(string) testkit.Reply { return testkit.Reply{Code: 450, Text: "4.2.0 mailbox busy"} }})
	w.mx["127.0.0.3"].Stop()
	return w
}

// TestCLIManyNeedsSaying: commands that act on many deliveries refuse to
// act on everything unless told (--all or a filter), and say how many
// they changed in correct English.
func TestCLIManyNeedsSaying(t *testing.T) {
	w := cliWorld(t, Options{})
	in := w.in
	id := in.Send("sender@app.test", []string{"a@ops.test"}, msgBody("a"))
	in.waitList(1, "--state", "deferred")
	for _, cmd := range [][]string{{"dlq", "purge"}, {"dlq", "retry"}, {"queue", "flush"}, {"queue", "hold"}, {"queue", "requeue"}} {
		if e := in.mustFail(cmd...); !strings.Contains(e, "--all") {
			t.Errorf("%v without a selection: %q, want it to ask for --all or a filter", cmd, e)
		}
	}
	if out := in.mustRun("queue", "hold", id); out != "1 delivery changed\n" {
		t.Errorf("hold one: %q, want \"1 delivery changed\"", out)
	}
	if out := in.mustRun("queue", "release", "--all"); out != "1 delivery changed\n" {
		t.Errorf("release --all: %q", out)
	}
}

// TestCLIListsPage: listings are newest first, say when they are cut and
// page with --limit/--cursor.
func TestCLIListsPage(t *testing.T) {
	w := cliWorld(t, Options{})
	in := w.in
	for i := 0; i < 3; i++ {
		in.Send("sender@app.test", []string{fmt.Sprintf("u%d@ops.test", i)}, msgBody("page"))
	}
	all := in.waitList(3, "--state", "deferred")
	if all.Items[0].ID < all.Items[2].ID {
		t.Fatalf("queue list is oldest first: ids %d..%d", all.Items[0].ID, all.Items[2].ID)
	}
	var page api.QueueList
	in.CLI(&page, "queue", "list", "--limit", "2")
	if page.Count != 2 || page.NextCursor == "" {
		t.Fatalf("limit 2 of 3: %+v", page)
	}
	var rest api.QueueList
	in.CLI(&rest, "queue", "list", "--limit", "2", "--cursor", page.NextCursor)
	if rest.Count != 1 || rest.NextCursor != "" || rest.Items[0].ID != all.Items[2].ID {
		t.Fatalf("second page: %+v", rest)
	}
	out := in.mustRun("queue", "list", "--limit", "2")
	if !strings.Contains(out, "2 deliveries shown") || !strings.Contains(out, "--cursor "+page.NextCursor) {
		t.Errorf("cut listing does not say so:\n%s", out)
	}
	if out := in.mustRun("dlq", "list", "--limit", "1"); !strings.Contains(out, "empty") {
		t.Errorf("dlq list: %s", out)
	}
}

// TestCLISelections: --tenant takes names, unknown ids fail loudly, and
// one recipient of a message can be acted on by its delivery id.
func TestCLISelections(t *testing.T) {
	w := cliWorld(t, Options{})
	in := w.in
	id := in.Send("sender@app.test", []string{"a@ops.test", "b@ops.test"}, msgBody("two"))
	list := in.waitList(2, "--state", "deferred")
	var byName api.QueueList
	in.CLI(&byName, "queue", "list", "--tenant", "default")
	if byName.Count != 2 {
		t.Fatalf("queue list --tenant default (a name): %d deliveries, want 2", byName.Count)
	}
	if e := in.mustFail("queue", "list", "--tenant", "nosuchtenant"); !strings.Contains(e, "nosuchtenant") {
		t.Errorf("unknown tenant: %q", e)
	}
	if e := in.mustFail("queue", "hold", "NOSUCHID"); !strings.Contains(e, "NOSUCHID") {
		t.Errorf("unknown message id: %q", e)
	}
	if e := in.mustFail("queue", "hold", "--delivery", "999999"); !strings.Contains(e, "999999") {
		t.Errorf("unknown delivery id: %q", e)
	}
	if e := in.mustFail("queue", "show", "NOSUCHID"); !strings.Contains(e, "queue list") {
		t.Errorf("queue show of an unknown id should say where ids are: %q", e)
	}
	if e := in.mustFail("queue", "list", "--state", "bogus"); !strings.Contains(e, "deferred") {
		t.Errorf("unknown state should list the valid ones: %q", e)
	}
	one := list.Items[0]
	if out := in.mustRun("queue", "hold", "--delivery", fmt.Sprint(one.ID), "--tenant", "default"); out != "1 delivery changed\n" {
		t.Fatalf("hold one delivery: %q", out)
	}
	for _, d := range in.Show(id).Deliveries {
		if want := map[bool]store.State{true: store.Held, false: store.Deferred}[d.ID == one.ID]; d.State != want {
			t.Errorf("delivery %d (%s): %s, want %s", d.ID, d.Recipient, d.State, want)
		}
	}
}

// TestCLILastFailureText: a connection error (no SMTP reply) shows in the
// summaries, not just in queue show's attempts, and a dead letter carries
// it with the rest of its failure context.
func TestCLILastFailureText(t *testing.T) {
	w := cliWorld(t, Options{RetryMin: 300 * time.Millisecond, RetryMax: 300 * time.Millisecond, Lifetime: 2 * time.Second})
	in := w.in
	in.Send("sender@app.test", []string{"x@down.test"}, msgBody("down"))
	deadline := time.Now().Add(20 * time.Second)
	var dlq api.QueueList
	for {
		in.CLI(&dlq, "dlq", "list")
		if dlq.Count == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no dead letter")
		}
		time.Sleep(100 * time.Millisecond)
	}
	d := dlq.Items[0]
	if !strings.Contains(d.LastError, "refused") || d.LastMX == "" || d.Attempts == 0 || d.LastAttemptAt.IsZero() || d.Domain != "down.test" {
		t.Errorf("dead letter lacks its failure context: %+v", d)
	}
	if out := in.mustRun("dlq", "list"); !strings.Contains(out, "refused") {
		t.Errorf("dlq list does not show the connection error:\n%s", out)
	}
	if out := in.mustRun("queue", "list", "--state", "dead_letter"); !strings.Contains(out, "refused") {
		t.Errorf("queue list does not show the connection error:\n%s", out)
	}
	if out := in.mustRun("dlq", "purge", "--all"); out != "1 delivery changed\n" {
		t.Errorf("dlq purge --all: %q", out)
	}
}

// eventsOfType returns the activity log's events of one type.
func (in *Instance) eventsOfType(typ string) []store.Event {
	in.t.Helper()
	var res struct{ Items []store.Event }
	in.CLI(&res, "events", "--type", typ)
	return res.Items
}

// TestCLICredentials: an SMTP user's password can be changed (the old one
// stops working), keys can be revoked, and each leaves an event.
func TestCLICredentials(t *testing.T) {
	in := Start(t, Options{})
	in.CLI(nil, "user", "add", "bob", "--password", "old-secret-1")
	if out := in.mustRun("user", "passwd", "bob", "--password", "new-secret-2"); !strings.Contains(out, "password changed for bob") {
		t.Errorf("user passwd: %q", out)
	}
	auth := func(pass string) string {
		c, err := Dial(in.SMTP)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Cmd(250, "EHLO client.test"); err != nil {
			t.Fatal(err)
		}
		text, _ := c.Cmd(0, "AUTH PLAIN "+plain("bob", pass))
		return text[:3]
	}
	if got := auth("old-secret-1"); got != "535" {
		t.Errorf("old password after passwd: %s, want 535", got)
	}
	if got := auth("new-secret-2"); got != "235" {
		t.Errorf("new password: %s, want 235", got)
	}
	if evs := in.eventsOfType("password_changed"); len(evs) != 1 || !strings.Contains(evs[0].Detail, "bob") {
		t.Errorf("password_changed events: %+v", evs)
	}
	in.mustFail("user", "passwd", "nosuchuser", "--password", "x-secret-3")

	var key api.KeyResponse
	in.CLI(&key, "apikey", "create", "--name", "shop")
	if out := in.mustRun("apikey", "revoke", key.ID); !strings.Contains(out, key.ID) {
		t.Errorf("apikey revoke: %q", out)
	}
	in.mustRun("user", "remove", "bob")
	evs := in.eventsOfType("credential_revoked")
	details := ""
	for _, e := range evs {
		details += e.Detail + "\n"
	}
	if len(evs) != 2 || !strings.Contains(details, key.ID) || !strings.Contains(details, "smtp user bob") {
		t.Errorf("credential_revoked events: %+v", evs)
	}
}

// TestCLIConsistentOutput: lists print tables unless --json, removals say
// what they did, and errors name the valid values.
func TestCLIConsistentOutput(t *testing.T) {
	in := Start(t, Options{})
	in.CLI(nil, "user", "add", "carol", "--dsn")
	if out := in.mustRun("tenant", "list"); strings.Contains(out, "{") || !strings.Contains(out, "default") {
		t.Errorf("tenant list is not a table:\n%s", out)
	}
	if out := in.mustRun("tenant", "add", "acme"); strings.Contains(out, "{") || !strings.Contains(out, "acme") {
		t.Errorf("tenant add:\n%s", out)
	}
	if out := in.mustRun("user", "list"); !strings.Contains(out, "DSN") || !strings.Contains(out, "yes") {
		t.Errorf("user list hides its settings:\n%s", out)
	}
	var s store.Suppression
	in.CLI(&s, "suppression", "add", "gone@example.test")
	if s.CreatedAt.IsZero() {
		t.Errorf("suppression add answered a zero created_at: %+v", s)
	}
	if out := in.mustRun("suppression", "remove", "gone@example.test"); !strings.Contains(out, "removed gone@example.test") {
		t.Errorf("suppression remove: %q", out)
	}
	if e := in.mustFail("suppression", "remove", "gone@example.test"); !strings.Contains(e, "gone@example.test") {
		t.Errorf("removing a missing entry: %q", e)
	}
	if e := in.mustFail("suppression", "add", "x@example.test", "--reason", "bogus"); !strings.Contains(e, "hard_bounce") {
		t.Errorf("unknown reason should list the valid ones: %q", e)
	}
	for i := 0; i < 3; i++ {
		in.CLI(nil, "suppression", "add", fmt.Sprintf("s%d@example.test", i))
	}
	if out := in.mustRun("suppression", "list", "--limit", "2"); !strings.Contains(out, "2 of 3 entries shown") {
		t.Errorf("cut suppression list does not say so:\n%s", out)
	}
}

// TestCLIDestinationsWithPendingMail: a destination whose mail all waits
// for a retry is listed with its pending count and last failure, and the
// API shows a tenant's key only its tenant's pending mail.
func TestCLIDestinationsWithPendingMail(t *testing.T) {
	w := cliWorld(t, Options{})
	in := w.in
	for i := 0; i < 3; i++ {
		in.Send("sender@app.test", []string{fmt.Sprintf("x%d@down.test", i)}, msgBody("down"))
	}
	in.waitList(3, "--state", "deferred")
	find := func(items []ops.DestinationRow) (ops.DestinationRow, bool) {
		for _, d := range items {
			for _, dom := range d.Domains {
				if dom == "down.test" {
					return d, true
				}
			}
		}
		return ops.DestinationRow{}, false
	}
	var res struct{ Items []ops.DestinationRow }
	in.CLI(&res, "destinations")
	d, ok := find(res.Items)
	if !ok || d.Pending != 3 || !strings.Contains(d.LastFailure, "refused") {
		t.Fatalf("destinations: down.test missing or incomplete: %+v", res.Items)
	}
	if out := in.mustRun("destinations"); !strings.Contains(out, "refused") {
		t.Errorf("destinations text lacks the last failure:\n%s", out)
	}

	var own, other api.KeyResponse
	in.CLI(&own, "apikey", "create", "--scope", "admin,read")
	in.CLI(nil, "tenant", "add", "acme")
	in.CLI(&other, "apikey", "create", "--tenant", "acme", "--scope", "admin,read")
	res.Items = nil
	if code := in.call(t, own.APIKey, "GET", "/v1/destinations", nil, nil, &res); code != 200 {
		t.Fatalf("GET /v1/destinations: %d", code)
	}
	if d, ok := find(res.Items); !ok || d.Pending != 3 {
		t.Errorf("the default tenant's key does not see its pending mail: %+v", res.Items)
	}
	res.Items = nil
	in.call(t, other.APIKey, "GET", "/v1/destinations", nil, nil, &res)
	if _, ok := find(res.Items); ok {
		t.Errorf("another tenant's key sees the default tenant's destination: %+v", res.Items)
	}
}

// TestCLISmallFixes: the Received header names the API client, the API
// shows subjects decoded, a suppressed recipient says which entry
// matched, and final deliveries show no next attempt.
func TestCLISmallFixes(t *testing.T) {
	w := cliWorld(t, Options{})
	in := w.in
	var res api.SendResponse
	if code := in.call(t, in.Creds.APIKey, "POST", "/v1/messages", apiSend("y@ops.test"), nil, &res); code != 202 {
		t.Fatalf("send: %d %+v", code, res)
	}
	d := in.Show(res.ID)
	if !strings.Contains(d.Headers, "Received: from api ([127.0.0.1])") {
		t.Errorf("Received header does not name the API client:\n%s", d.Headers)
	}
	// queue show --body prints the stored message (postcat -bq): the
	// headers posthorn added and the body, exactly as queued.
	raw := in.mustRun("queue", "show", res.ID, "--body")
	if !strings.HasPrefix(raw, "Received: from api ([127.0.0.1])") || !strings.Contains(raw, "Message-ID: ") ||
		!strings.Contains(raw, "\r\n\r\n") {
		t.Errorf("queue show --body:\n%s", raw)
	}
	if _, _, code := in.Run("", nil, "queue", "show", "01NOSUCHMESSAGE0000000000", "--body"); code == 0 {
		t.Error("queue show --body of an unknown id exited 0")
	}
	var view api.MessageView
	in.call(t, in.Creds.APIKey, "GET", "/v1/messages/"+res.ID, nil, nil, &view)
	if view.Subject != "Grüße aus Köln" {
		t.Errorf("GET /v1/messages/{id} subject %q, want it decoded", view.Subject)
	}

	in.CLI(nil, "suppression", "add", "gone@ops.test", "--detail", "asked to stop")
	id := in.Send("sender@app.test", []string{"gone@ops.test"}, msgBody("suppressed"))
	d = in.Show(id)
	want := "suppressed by address entry gone@ops.test (manual): asked to stop"
	if len(d.Deliveries) != 1 || d.Deliveries[0].State != store.Suppressed || d.Deliveries[0].LastError != want {
		t.Errorf("suppressed delivery does not say which entry matched: %+v", d.Deliveries)
	}
	if n := len(d.Events); n == 0 || d.Events[n-1].Type != "suppressed" || d.Events[n-1].Detail != want {
		t.Errorf("suppressed event lacks the entry: %+v", d.Events)
	}
	out := in.mustRun("queue", "show", id)
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "gone@ops.test") && strings.Contains(line, "suppressed ") {
			if strings.Contains(line, "next=") || !strings.Contains(line, want) {
				t.Errorf("queue show line of a suppressed delivery: %q", line)
			}
		}
	}
}

// TestClassifyHelpPointsToDocs: classify --help sends operators to
// docs/classify.md for the rules format, and that file describes it.
func TestClassifyHelpPointsToDocs(t *testing.T) {
	out, _, code := RunBinary(t, binary, "", nil, "classify", "--help")
	if code != 0 || !strings.Contains(out, "docs/classify.md") || strings.Contains(out, "go doc") {
		t.Errorf("classify --help:\n%s", out)
	}
	doc, err := os.ReadFile("../../docs/classify.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{"name", "class", "codes", "enhanced", "not_enhanced", "phases", "not_phases", "text", "not_text", "escalate_after", "escalate_to", "disable", "replace"} {
		if !strings.Contains(string(doc), field+" =") {
			t.Errorf("docs/classify.md does not show the %s field", field)
		}
	}
}

// TestQueueShowSaysPaused: mail queued behind a destination paused by a
// 421 shows the pause and its reply in queue show, not just in queue why.
func TestQueueShowSaysPaused(t *testing.T) {
	w := newWorld(t, Options{Config: "[delivery]\ncooldown = \"1h\"\n", RetryMin: time.Hour, RetryMax: time.Hour, Lifetime: 3 * time.Hour}, "127.0.0.2")
	w.domain("pause.test", "127.0.0.2")
	w.mx["127.0.0.2"].SetScript(testkit.Script{Greeting: testkit.Reply{Code: 421, Text: "4.7.28 unusual rate of unsolicited mail", Close: true}})
	in := w.in
	first := in.Send("sender@app.test", []string{"x@pause.test"}, msgBody("paused"))
	waitDeliveryState(t, in, first, store.Deferred)
	behind := in.Send("sender@app.test", []string{"y@pause.test"}, msgBody("behind the pause"))
	deadline := time.Now().Add(10 * time.Second)
	for {
		out := in.mustRun("queue", "show", behind)
		if strings.Contains(out, "why: ") && strings.Contains(out, "paused until") && strings.Contains(out, "421 4.7.28") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue show of mail behind a 421 pause does not say so:\n%s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The throttle event names its destination, not only the reply.
	for _, line := range strings.Split(in.mustRun("events", "--type", "throttle_changed"), "\n") {
		if strings.Contains(line, "421 4.7.28") && !strings.Contains(line, "pause.test") {
			t.Errorf("throttle event without its destination: %q", line)
		}
	}
}

// TestShortHostnameWarns: a hostname that is not a fully qualified
// domain name (a VM called "vm") is used, but with a warning at start.
func TestShortHostnameWarns(t *testing.T) {
	in := Start(t, Options{Extra: []string{"--hostname", "vm"}})
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(in.logFile)
		if strings.Contains(string(b), "posthorn running") {
			if !strings.Contains(string(b), "hostname is not a fully qualified domain name") {
				t.Fatalf("no warning about hostname vm:\n%s", b)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("posthorn did not say it was running:\n%s", b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestTenantRemove: a tenant with pending mail is not removed unless
// --force, which cancels the mail; its credentials stop working and a
// tenant_removed event is left.
func TestTenantRemove(t *testing.T) {
	w := cliWorld(t, Options{})
	in := w.in
	in.CLI(nil, "tenant", "add", "acme")
	in.CLI(nil, "user", "add", "acme-user", "--tenant", "acme", "--password", "acme-secret-1")
	var key api.KeyResponse
	in.CLI(&key, "apikey", "create", "--tenant", "acme")
	c, err := Dial(in.SMTP)
	if err != nil {
		t.Fatal(err)
	}
	c.Cmd(250, "EHLO client.test")
	if _, err := c.Cmd(235, "AUTH PLAIN "+plain("acme-user", "acme-secret-1")); err != nil {
		t.Fatal(err)
	}
	id, err := c.Transaction("sender@app.test", []string{"a@ops.test"}, msgBody("acme mail"))
	c.Close()
	if err != nil {
		t.Fatal(err)
	}
	in.waitList(1, "--tenant", "acme", "--state", "deferred")

	if e := in.mustFail("tenant", "remove", "acme"); !strings.Contains(e, "--force") {
		t.Errorf("removing a tenant with pending mail: %q", e)
	}
	in.mustFail("tenant", "remove", "default")
	if out := in.mustRun("tenant", "remove", "acme", "--force"); !strings.Contains(out, "1 pending delivery cancelled") {
		t.Errorf("tenant remove --force: %q", out)
	}
	if st := in.Show(id).Deliveries[0].State; st != store.Cancelled {
		t.Errorf("the removed tenant's mail is %s, want cancelled", st)
	}
	var list struct{ Items []store.Tenant }
	in.CLI(&list, "tenant", "list")
	for _, tn := range list.Items {
		if tn.Name == "acme" {
			t.Errorf("acme still listed")
		}
	}
	if code := in.call(t, key.APIKey, "GET", "/v1/messages", nil, nil, nil); code != 401 {
		t.Errorf("the removed tenant's API key: %d, want 401", code)
	}
	c, err = Dial(in.SMTP)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Cmd(250, "EHLO client.test")
	if text, _ := c.Cmd(0, "AUTH PLAIN "+plain("acme-user", "acme-secret-1")); !strings.HasPrefix(text, "535") {
		t.Errorf("the removed tenant's SMTP user: %q", text)
	}
	if evs := in.eventsOfType("tenant_removed"); len(evs) != 1 || !strings.Contains(evs[0].Detail, "acme") {
		t.Errorf("tenant_removed events: %+v", evs)
	}
}
