package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/api"
	"github.com/posthorn/posthorn/internal/api/adminclient"
	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/testkit"
)

// TestSuppression: a hard bounce suppresses the address, so the next
// message to it is suppressed at accept while its other recipients go on;
// an entry added while a message waits stops it before delivery; manual
// domain and pattern entries apply.
func TestSuppression(t *testing.T) {
	w := newWorld(t, Options{RetryMin: 2 * time.Second, RetryMax: 2 * time.Second}, "127.0.0.2")
	w.domain("sup.test", "127.0.0.2")
	w.domain("blocked.test", "127.0.0.2")
	mx := w.mx["127.0.0.2"]
	mx.SetScript(testkit.Script{RcptReplies: map[string]testkit.Reply{
		"gone@sup.test":  {Code: 550, Text: "5.1.1 no such user"},
		"later@sup.test": {Code: 450, Text: "4.2.1 try later"},
	}})
	in := w.in
	id := in.Send("s@app.test", []string{"gone@sup.test"}, msgBody("first"))
	if dl := in.WaitFinal(id, 20*time.Second).Deliveries[0]; dl.State != store.Bounced {
		t.Fatalf("first: %+v", dl)
	}
	var list struct {
		Items []store.Suppression `json:"items"`
	}
	in.CLI(&list, "suppression", "list")
	if len(list.Items) != 1 || list.Items[0].Value != "gone@sup.test" || list.Items[0].Reason != "hard_bounce" || !strings.Contains(list.Items[0].Detail, "5.1.1") {
		t.Fatalf("after the bounce: %+v", list.Items)
	}
	// Accept time: suppressed, the other recipient goes on.
	var res api.SendResponse
	in.call(t, in.Creds.APIKey, "POST", "/v1/messages", map[string]any{"from": "s@app.test", "to": []string{"gone@sup.test", "ok@sup.test"}, "text": "x"}, nil, &res)
	states := map[string]store.State{}
	for _, r := range res.Recipients {
		states[r.Email] = r.State
	}
	if states["gone@sup.test"] != store.Suppressed || states["ok@sup.test"] != store.Queued {
		t.Fatalf("accept-time states: %v", states)
	}
	d := in.WaitFinal(res.ID, 20*time.Second)
	if delivery(t, d, "ok@sup.test").State != store.Delivered {
		t.Fatalf("ok@sup.test: %+v", d.Deliveries)
	}
	// Send time: deferred first, then suppressed by an operator entry.
	late := in.Send("s@app.test", []string{"later@sup.test"}, msgBody("waits"))
	deadline := time.Now().Add(10 * time.Second)
	for in.Show(late).Deliveries[0].State != store.Deferred {
		if time.Now().After(deadline) {
			t.Fatal("not deferred")
		}
		time.Sleep(50 * time.Millisecond)
	}
	in.CLI(nil, "suppression", "add", "*@sup.test", "--detail", "customer asked")
	if dl := in.WaitFinal(late, 20*time.Second).Deliveries[0]; dl.State != store.Suppressed {
		t.Fatalf("waiting message: %+v", dl)
	}
	// Domain entry at accept time.
	in.CLI(nil, "suppression", "add", "blocked.test")
	in.call(t, in.Creds.APIKey, "POST", "/v1/messages", map[string]any{"from": "s@app.test", "to": []string{"x@blocked.test"}, "text": "x"}, nil, &res)
	if res.Recipients[0].State != store.Suppressed {
		t.Fatalf("domain entry: %+v", res.Recipients)
	}
	in.CLI(nil, "suppression", "remove", "blocked.test")
	in.call(t, in.Creds.APIKey, "POST", "/v1/messages", map[string]any{"from": "s@app.test", "to": []string{"x@blocked.test"}, "text": "x"}, nil, &res)
	if res.Recipients[0].State != store.Queued {
		t.Fatalf("after removal: %+v", res.Recipients)
	}
}

// TestOnHold: three soft bounces put the address on hold; while on hold
// new mail to it is suppressed; after the hold it is mailed again.
func TestOnHold(t *testing.T) {
	cfg := "[suppression]\non_hold_after = 3\non_hold_window = \"1h\"\non_hold_for = \"4s\"\n"
	w := newWorld(t, Options{Config: cfg, Lifetime: 2 * time.Second, RetryMin: 500 * time.Millisecond, RetryMax: time.Second}, "127.0.0.2")
	w.domain("full.test", "127.0.0.2")
	mx := w.mx["127.0.0.2"]
	mx.SetScript(testkit.Script{RcptReplies: map[string]testkit.Reply{"box@full.test": {Code: 452, Text: "4.2.2 mailbox full"}}})
	in := w.in
	var ids []string
	for i := 0; i < 3; i++ {
		ids = append(ids, in.Send("s@app.test", []string{"box@full.test"}, msgBody("full")))
	}
	for _, id := range ids {
		if dl := in.WaitFinal(id, 20*time.Second).Deliveries[0]; dl.State != store.SoftBounced {
			t.Fatalf("%s: %+v", id, dl)
		}
	}
	var list struct {
		Items []store.Suppression `json:"items"`
	}
	in.CLI(&list, "suppression", "list")
	if len(list.Items) != 1 || list.Items[0].Reason != "on_hold" || list.Items[0].ExpiresAt.IsZero() {
		t.Fatalf("after three soft bounces: %+v", list.Items)
	}
	var res api.SendResponse
	in.call(t, in.Creds.APIKey, "POST", "/v1/messages", map[string]any{"from": "s@app.test", "to": []string{"box@full.test"}, "text": "x"}, nil, &res)
	if res.Recipients[0].State != store.Suppressed {
		t.Fatalf("while on hold: %+v", res.Recipients)
	}
	mx.SetScript(testkit.Script{})
	// The hold ends at a wall-clock time (checked when mail is accepted;
	// the entry stays listed), so the wait is for that time, not an event.
	time.Sleep(time.Until(list.Items[0].ExpiresAt) + 200*time.Millisecond)
	in.call(t, in.Creds.APIKey, "POST", "/v1/messages", map[string]any{"from": "s@app.test", "to": []string{"box@full.test"}, "text": "x"}, nil, &res)
	if res.Recipients[0].State != store.Queued {
		t.Fatalf("after the hold: %+v", res.Recipients)
	}
	if dl := in.WaitFinal(res.ID, 20*time.Second).Deliveries[0]; dl.State != store.Delivered {
		t.Fatalf("after the hold: %+v", dl)
	}
}

// TestSuppressionImportExport imports a CSV through the CLI, checks the
// entries apply, and exports them again.
func TestSuppressionImportExport(t *testing.T) {
	w := newWorld(t, Options{}, "127.0.0.2")
	in := w.in
	var b strings.Builder
	b.WriteString("entry,reason,detail\n")
	const n = 50000
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "user%d@imp.test,unsubscribe,list import\n", i)
	}
	b.WriteString("*@wild.test,manual,\nnot an entry!,manual,\n")
	path := filepath.Join(t.TempDir(), "sup.csv")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	var res struct {
		Added  int      `json:"added"`
		Errors []string `json:"errors"`
	}
	start := time.Now()
	in.CLI(&res, "suppression", "import", path)
	t.Logf("imported %d entries in %s", res.Added, time.Since(start))
	if res.Added != n+1 || len(res.Errors) != 1 {
		t.Fatalf("import: %d added, errors %v", res.Added, res.Errors)
	}
	var sr api.SendResponse
	in.call(t, in.Creds.APIKey, "POST", "/v1/messages", map[string]any{"from": "s@app.test", "to": []string{"user4711@imp.test", "x@wild.test", "fine@imp.test"}, "text": "x"}, nil, &sr)
	for _, r := range sr.Recipients {
		want := store.Suppressed
		if r.Email == "fine@imp.test" {
			want = store.Queued
		}
		if r.State != want {
			t.Fatalf("%s: %s, want %s", r.Email, r.State, want)
		}
	}
	out, err := exec.Command(binary, "suppression", "export", "--data-dir", in.Dir).Output()
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(string(out), "\n"); lines != n+2 || !strings.Contains(string(out), "user4711@imp.test,unsubscribe,list import,") {
		t.Fatalf("export: %d lines", lines)
	}
}

// TestSuppressionImportOrder: the CLI sorts each chunk of the file before
// sending it, yet of two lines for one entry the later wins, within a
// chunk and across chunks and batches, with batches sent in parallel.
func TestSuppressionImportOrder(t *testing.T) {
	w := newWorld(t, Options{}, "127.0.0.2")
	in := w.in
	csv := "zed@ord.test,manual,first\nA@ord.test,manual,first\nzed@ord.test,complaint,second\n" +
		"b@ord.test,manual,\nA@ord.test,hard_bounce,second\n"
	path := filepath.Join(t.TempDir(), "sup.csv")
	if err := os.WriteFile(path, []byte(csv), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, flags := range [][]string{{}, {"--chunk", "2", "--batch", "1"}, {"--batch", "1", "--parallel", "4"}} {
		var res struct {
			Added int `json:"added"`
		}
		in.CLI(&res, append([]string{"suppression", "import", path}, flags...)...)
		if res.Added != 5 {
			t.Fatalf("%v: added %d", flags, res.Added)
		}
		var list struct {
			Items []store.Suppression `json:"items"`
		}
		in.CLI(&list, "suppression", "list")
		got := map[string]string{}
		for _, x := range list.Items {
			got[x.Value] = x.Reason + " " + x.Detail
		}
		if got["zed@ord.test"] != "complaint second" || got["A@ord.test"] != "hard_bounce second" || len(got) != 3 {
			t.Errorf("%v: %v", flags, got)
		}
	}
}

// TestSuppressionImportLines: the CLI's CSV batches as files come: a BOM,
// CRLF line ends, quoted fields (commas, doubled quotes, a line end), a
// line of 2 MiB, entries left empty; refused lines are named by their
// line in the file although the CLI sends them sorted, and listed in the
// file's order, also with one line a batch. A malformed record stops the import with its line; an
// empty file adds nothing. The JSON body of the same endpoint still
// works, for API users.
func TestSuppressionImportLines(t *testing.T) {
	w := newWorld(t, Options{}, "127.0.0.2")
	in := w.in
	huge := strings.Repeat("x", 2<<20)
	file := func(name, content string) string {
		path := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	csvFile := file("lines.csv", "\ufeffentry,reason,detail\r\n"+ // 1
		"zz@lines.test,complaint,\"a, \"\"quoted\"\" note\"\r\n"+ // 2
		"bad..dots@lines.test,manual,\r\n"+ // 3
		"\"Quoted@Lines.Test\",unsubscribe,\"two\r\nlines\"\r\n"+ // 4-5
		",manual,no entry\r\n"+ // 6
		"\r\n"+ // 7
		"aa@lines.test,no_such_reason\r\n"+ // 8
		"big@lines.test,manual,"+huge+"\r\n"+ // 9
		"*@glob-lines.test") // 10
	for _, flags := range [][]string{{}, {"--batch", "1", "--parallel", "3"}} {
		var res struct {
			Added  int      `json:"added"`
			Errors []string `json:"errors"`
		}
		in.CLI(&res, append([]string{"suppression", "import", csvFile}, flags...)...)
		want := []string{"line 3: bad..dots@lines.test: bad address: empty atom in local part",
			`line 8: aa@lines.test: unknown reason "no_such_reason"; valid reasons: manual, hard_bounce, unsubscribe, complaint, on_hold`}
		if res.Added != 4 || !slices.Equal(res.Errors, want) {
			t.Fatalf("%v: added %d, errors %q", flags, res.Added, res.Errors)
		}
	}
	var list struct {
		Items []store.Suppression `json:"items"`
	}
	in.CLI(&list, "suppression", "list")
	got := map[string]string{}
	for _, x := range list.Items {
		got[x.Value] = x.Kind + " " + x.Reason + " " + x.Detail
	}
	if got["zz@lines.test"] != `address complaint a, "quoted" note` || got["Quoted@lines.test"] != "address unsubscribe two\nlines" ||
		got["big@lines.test"] != "address manual "+huge || got["*@glob-lines.test"] != "pattern manual " || len(got) != 4 {
		t.Fatalf("stored: %.300q", got)
	}

	if errOut := in.mustFail("suppression", "import", file("bad.csv", "ok@lines.test\n\nbad\"quote@lines.test,manual\n")); !strings.Contains(errOut, `line 3: bare " in non-quoted field`) {
		t.Fatalf("malformed line: %s", errOut)
	}
	var res struct {
		Added int `json:"added"`
	}
	in.CLI(&res, "suppression", "import", file("empty.csv", ""))
	if res.Added != 0 {
		t.Fatalf("empty file: added %d", res.Added)
	}

	var jres api.ImportResponse
	c := adminclient.NewClient(filepath.Join(in.Dir, "admin.sock"))
	if err := c.Do(context.Background(), "POST", "/admin/v1/suppressions/import", nil,
		api.ImportRequest{Entries: []api.SuppressionRequest{{Entry: "json@lines.test"}, {Entry: "not an entry!"}}}, &jres); err != nil {
		t.Fatal(err)
	}
	if jres.Added != 1 || len(jres.Errors) != 1 || !strings.HasPrefix(jres.Errors[0], "2: not an entry!: bad domain") {
		t.Fatalf("JSON import: %+v", jres)
	}
}

// TestSuppressionAPI: a tenant manages its own list over HTTP and cannot
// see another tenant's.
func TestSuppressionAPI(t *testing.T) {
	w := newWorld(t, Options{}, "127.0.0.2")
	in, key := w.in, w.in.Creds.APIKey
	var s store.Suppression
	if code := in.call(t, key, "POST", "/v1/suppressions", map[string]any{"entry": "*@api-sup.test", "reason": "complaint"}, nil, &s); code != 201 || s.Kind != "pattern" {
		t.Fatalf("add: %d %+v", code, s)
	}
	var e api.APIError
	if code := in.call(t, key, "POST", "/v1/suppressions", map[string]any{"entry": "/[/"}, nil, &e); code != 400 || e.Error.Code != "invalid_entry" {
		t.Fatalf("bad entry: %d %+v", code, e)
	}
	in.CLI(nil, "tenant", "add", "other")
	var k api.KeyResponse
	in.CLI(&k, "apikey", "create", "--tenant", "other", "--scope", "send,read")
	var list struct {
		Items []store.Suppression `json:"items"`
	}
	in.call(t, k.APIKey, "GET", "/v1/suppressions", nil, nil, &list)
	if len(list.Items) != 0 {
		t.Fatalf("other tenant sees %d entries", len(list.Items))
	}
	if code := in.call(t, k.APIKey, "DELETE", "/v1/suppressions?entry=*@api-sup.test", nil, nil, &e); code != 404 {
		t.Fatalf("other tenant removed an entry: %d", code)
	}
	in.call(t, key, "GET", "/v1/suppressions", nil, nil, &list)
	if len(list.Items) != 1 {
		t.Fatalf("own list: %+v", list.Items)
	}
	if code := in.call(t, key, "DELETE", "/v1/suppressions?entry=*@api-sup.test", nil, nil, nil); code != 200 {
		t.Fatalf("remove: %d", code)
	}
}

// TestSuppressionCase: suppression lookups ignore case in the whole
// address, at accept time and before each send, whichever spelling the
// entry or the recipient uses.
func TestSuppressionCase(t *testing.T) {
	w := newWorld(t, Options{RetryMin: 2 * time.Second, RetryMax: 2 * time.Second}, "127.0.0.2")
	w.domain("y.test", "127.0.0.2")
	mx := w.mx["127.0.0.2"]
	in := w.in
	in.CLI(nil, "suppression", "add", "victim@y.test")
	in.CLI(nil, "suppression", "add", "Other@Y.TEST")
	in.CLI(nil, "suppression", "add", "/^admin[0-9]+@y\\.test$/")
	var res api.SendResponse
	for _, to := range []string{"Victim@Y.TEST", "VICTIM@y.test", "other@y.test", "Admin7@Y.test"} {
		in.call(t, in.Creds.APIKey, "POST", "/v1/messages", map[string]any{"from": "s@app.test", "to": []string{to}, "text": "x"}, nil, &res)
		if res.Recipients[0].State != store.Suppressed {
			t.Fatalf("to %s at accept: %+v", to, res.Recipients)
		}
	}
	if st := in.Show(in.Send("s@app.test", []string{"Victim@Y.TEST"}, msgBody("smtp"))).Deliveries[0].State; st != store.Suppressed {
		t.Fatalf("SMTP submission to Victim@Y.TEST: %s", st)
	}
	// Before the send: the entry arrives while the message waits.
	mx.SetScript(testkit.Script{RcptReplies: map[string]testkit.Reply{"Later@y.test": {Code: 450, Text: "4.2.1 try later"}}})
	late := in.Send("s@app.test", []string{"Later@Y.TEST"}, msgBody("waits"))
	deadline := time.Now().Add(10 * time.Second)
	for in.Show(late).Deliveries[0].State != store.Deferred {
		if time.Now().After(deadline) {
			t.Fatal("not deferred")
		}
		time.Sleep(50 * time.Millisecond)
	}
	in.CLI(nil, "suppression", "add", "later@y.test")
	if dl := in.WaitFinal(late, 20*time.Second).Deliveries[0]; dl.State != store.Suppressed {
		t.Fatalf("waiting message to Later@Y.TEST: %+v", dl)
	}
	// Removal in another spelling removes the entry.
	in.CLI(nil, "suppression", "remove", "VICTIM@y.test")
	in.call(t, in.Creds.APIKey, "POST", "/v1/messages", map[string]any{"from": "s@app.test", "to": []string{"victim@y.test"}, "text": "x"}, nil, &res)
	if res.Recipients[0].State != store.Queued {
		t.Fatalf("after removal: %+v", res.Recipients)
	}
}
