package e2e

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/testkit"
)

// waitPage polls a dashboard page until its body contains want.
func (wc *webClient) waitPage(path, want string) string {
	wc.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, body := wc.get(path)
		if code == 200 && strings.Contains(body, want) {
			return body
		}
		if time.Now().After(deadline) {
			wc.t.Fatalf("GET %s: %d, no %q in:\n%s", path, code, want, tail(body, 3000))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestWebDestinationPause: an admin pauses a destination on the
// dashboard; new mail to it waits with the pause as its reason (no
// attempt); a viewer's resume is refused with 403; the admin resumes and
// the mail is delivered. The CLI pauses and resumes too.
func TestWebDestinationPause(t *testing.T) {
	w := webWorld(t, Options{})
	in := w.in
	admin := in.webLogin(t, "admin@alpha.test", "alpha-password")
	viewer := in.webLogin(t, "viewer@alpha.test", "viewer-password")

	if code, body := admin.post("/ui/destinations/dest.test/pause", url.Values{"for": {""}, "back": {"/ui/destinations"}}); code != http.StatusSeeOther ||
		!strings.Contains(body, "flash=") {
		t.Fatalf("pause: %d %s", code, body)
	}
	id := in.sendAPI(t, "paused", "r@dest.test")
	why := "paused by operator admin@alpha.test until resumed"
	admin.waitPage("/ui/messages/"+id, why)
	d := in.Show(id)
	if len(d.Deliveries) != 1 || d.Deliveries[0].State != store.Queued || d.Deliveries[0].Attempts != 0 {
		t.Fatalf("paused mail was attempted: %+v", d.Deliveries)
	}
	if n := len(w.mx["127.0.0.2"].Messages()); n != 0 {
		t.Fatalf("MX got %d messages while paused", n)
	}
	body := admin.waitPage("/ui/destinations", why)
	if !strings.Contains(body, `action="/ui/destinations/dest.test/resume"`) {
		t.Errorf("destinations page has no Resume button for dest.test")
	}
	// A viewer neither opens the page nor acts.
	if code, _ := viewer.get("/ui/destinations"); code != http.StatusForbidden {
		t.Errorf("viewer opens destinations: %d, want 403", code)
	}
	for _, a := range []string{"resume", "pause"} {
		if code, _ := viewer.post("/ui/destinations/dest.test/"+a, nil); code != http.StatusForbidden {
			t.Errorf("viewer POST %s: %d, want 403", a, code)
		}
	}
	// Without the CSRF token the admin's resume is refused too.
	if code, _ := admin.postRaw("/ui/destinations/dest.test/resume", url.Values{}); code != http.StatusForbidden {
		t.Errorf("resume without CSRF token: %d, want 403", code)
	}
	if d := in.Show(id); d.Deliveries[0].State != store.Queued {
		t.Fatalf("after refused resumes: %+v", d.Deliveries)
	}
	if code, body := admin.post("/ui/destinations/dest.test/resume", url.Values{"back": {"/ui/destinations"}}); code != http.StatusSeeOther ||
		!strings.Contains(body, "resumed") {
		t.Fatalf("resume: %d %s", code, body)
	}
	in.waitState(t, id, store.Delivered)

	// The CLI: pause for an hour, shown in the listing, then resume.
	var res struct {
		Message string `json:"message"`
	}
	in.CLI(&res, "destinations", "pause", "dest.test", "--for", "1h")
	if !strings.Contains(res.Message, "paused by operator cli") {
		t.Errorf("CLI pause: %q", res.Message)
	}
	id2 := in.sendAPI(t, "paused again", "r2@dest.test")
	in.webLogin(t, "admin@alpha.test", "alpha-password").waitPage("/ui/messages/"+id2, "paused by operator cli")
	in.CLI(&res, "destinations", "resume", "dest.test")
	if !strings.Contains(res.Message, "resumed") {
		t.Errorf("CLI resume: %q", res.Message)
	}
	in.waitState(t, id2, store.Delivered)
}

// TestWebReports: the reports page shows today's delivered and bounced
// counts of a small scenario with their rates, and the CSV download has
// the same numbers.
func TestWebReports(t *testing.T) {
	w := webWorld(t, Options{})
	in := w.in
	w.mx["127.0.0.2"].SetScript(testkit.Script{StartTLS: true, RcptReplies: map[string]testkit.Reply{
		"bad@dest.test": {Code: 550, Text: "5.1.1 no such user"}}})
	ok := in.sendAPI(t, "good", "good@dest.test")
	bad := in.sendAPI(t, "bad", "bad@dest.test")
	in.waitState(t, ok, store.Delivered)
	in.waitState(t, bad, store.Bounced)
	admin := in.webLogin(t, "admin@alpha.test", "alpha-password")
	today := time.Now().UTC().Format(time.DateOnly)
	// Day, accepted 2, delivered 1, deferred 0, bounced 1.
	row := "<th>" + today + "</th><td>2</td><td>1</td><td>0</td><td>1</td>"
	body := admin.waitPage("/ui/reports", row)
	if !strings.Contains(body, "50.00%") || !strings.Contains(body, `href="/ui/reports"`) {
		t.Errorf("reports page lacks the 50%% rates or the nav link:\n%s", tail(body, 3000))
	}
	m := regexpCSV.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no CSV link on the reports page")
	}
	code, csv := admin.get(strings.ReplaceAll(m[1], "&amp;", "&"))
	if code != 200 || !strings.Contains(csv, "\n"+today+",2,1,0,1,") || !strings.Contains(csv, "\ntotal,2,1,0,1,") {
		t.Errorf("CSV: %d\n%s", code, csv)
	}
	// By domain, and another tenant's admin sees none of it.
	admin.waitPage("/ui/reports?group_by=domain", "<th>dest.test</th><td>2</td><td>1</td>")
	beta := in.webLogin(t, "admin@beta.test", "beta-password")
	if _, body := beta.get("/ui/reports"); strings.Contains(body, "<td>2</td><td>1</td>") || !strings.Contains(body, "Nothing in this range") {
		t.Errorf("tenant beta sees the default tenant's counts:\n%s", tail(body, 2000))
	}
}

var regexpCSV = regexp.MustCompile(`href="(/ui/reports\.csv\?[^"]+)"`)
