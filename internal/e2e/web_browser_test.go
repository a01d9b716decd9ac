package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/testkit"
)

// browser is a headless Chromium tab on a running posthorn's dashboard.
type browser struct {
	t         *testing.T
	ctx       context.Context
	base      string
	artifacts string
}

// newBrowser starts headless Chromium (skipped without it unless
// POSTHORN_REQUIRE_TOOLS=1). Screenshots go to $POSTHORN_ARTIFACTS or
// testdata-out/web at the repository's top (ignored by git).
func newBrowser(t *testing.T, in *Instance) *browser {
	t.Helper()
	path := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		requireTool(t, "chromium (apt-get install chromium)")
	}
	dir := os.Getenv("POSTHORN_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("..", "..", "testdata-out")
	}
	dir = filepath.Join(dir, "web")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.WindowSize(1280, 900), chromedp.UserDataDir(t.TempDir()))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	ctx, cancelT := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() { cancelT(); cancelC(); cancelA() })
	return &browser{t: t, ctx: ctx, base: "http://" + in.HTTP, artifacts: dir}
}

func (b *browser) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// open navigates to a dashboard path and waits for sel.
func (b *browser) open(path, sel string) {
	b.t.Helper()
	b.do("open "+path, chromedp.Navigate(b.base+path), chromedp.WaitVisible(chromedp.CSS(sel)))
}

// click clicks sel and waits for the page it loads.
func (b *browser) click(sel string) {
	b.t.Helper()
	if _, err := chromedp.Run(b.ctx, chromedp.WaitEvent(page.LoadEventFired, nil, chromedp.Click(chromedp.CSS(sel)))); err != nil {
		b.t.Fatalf("click %s: %v", sel, err)
	}
}

// wait polls a JavaScript condition until it is true.
func (b *browser) wait(what, js string, timeout time.Duration) {
	b.t.Helper()
	if _, err := chromedp.Run(b.ctx, chromedp.Poll[chromedp.Void](js, chromedp.WithPollingTimeout(timeout), chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
		text, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.querySelector("main") ? document.querySelector("main").innerText : document.body.innerText`))
		b.t.Fatalf("waiting for %s: %v\npage text:\n%s", what, err, tail(text, 3000))
	}
}

func (b *browser) eval(js string, opts ...chromedp.EvaluateOption) string {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](js, opts...))
	if err != nil {
		b.t.Fatalf("eval %s: %v", js, err)
	}
	return v
}

func (b *browser) shot(name string) {
	b.t.Helper()
	buf, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(b.artifacts, name+".png"), buf, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

func (b *browser) login(email, password string) {
	b.t.Helper()
	b.open("/ui/login", "#login")
	b.do("fill login", chromedp.SetValue(chromedp.CSS(`input[name=email]`), email),
		chromedp.SetValue(chromedp.CSS(`input[name=password]`), password))
	b.click(`#login button`)
	b.wait("the overview after login", `!!document.querySelector("#queue")`, 10*time.Second)
}

func (b *browser) postForbidden(path string) {
	b.t.Helper()
	js := fmt.Sprintf(`fetch(%q, {method: "POST", redirect: "manual", credentials: "same-origin",
		body: new URLSearchParams({csrf: document.querySelector("input[name=csrf]").value, action: "purge", id: "1", entry: "x@dest.test"})}).then(r => String(r.status))`, path)
	if got := b.eval(js, chromedp.EvalAwaitPromise); got != "403" {
		b.t.Errorf("viewer POST %s from the page: %s, want 403", path, got)
	}
}

// TestWebDashboard drives the dashboard in headless Chromium: log in, see
// a message sent through the API appear on the overview and in the
// activity list without reloading, open its journey, see the exact reply
// of a destination answering 451, retry the dead letter it becomes, add
// and remove a suppression, and log in as a viewer who sees no action
// buttons and whose POSTs are refused. It saves a screenshot of every
// page.
func TestWebDashboard(t *testing.T) {
	w := webWorld(t, Options{Lifetime: 4 * time.Second, RetryMin: 500 * time.Millisecond, RetryMax: time.Second})
	in := w.in
	w.mx["127.0.0.2"].SetScript(testkit.Script{StartTLS: true, RcptReplies: map[string]testkit.Reply{
		"busy@dest.test": {Code: 451, Text: "4.7.1 Greylisted, try again in 300 seconds"},
	}})
	b := newBrowser(t, in)

	b.open("/ui/", "#login")
	b.shot("login")
	b.login("admin@alpha.test", "alpha-password")

	// Overview: a delivery shows up in the live counts, no reload.
	delivered := `[...document.querySelectorAll("#counts tbody tr")].find(r => r.querySelector("th").textContent === "delivered").querySelectorAll("td")[0].innerText.trim()`
	if got := b.eval(delivered); got != "0" {
		t.Fatalf("delivered last hour before sending: %s", got)
	}
	b.eval(`window.notReloaded = "yes"`)
	in.sendAPI(t, "Hello from the dashboard test", "first@dest.test")
	b.wait("the delivery on the overview", delivered+` === "1" && window.notReloaded === "yes"`, 20*time.Second)
	b.shot("overview")
	// The count links to the events behind it.
	b.click(`#counts tbody tr:first-child td a`)
	b.wait("the delivered event behind the count", `document.querySelector("#events") && document.querySelector("#events").innerText.includes("first@dest.test")`, 5*time.Second)
	b.shot("events")

	// Activity: a new message appears in the list, no reload.
	b.open("/ui/messages", "#activity")
	b.eval(`window.notReloaded = "yes"`)
	live := in.sendAPI(t, "Live one", "live@dest.test")
	b.wait("the message in the activity list", `document.querySelector("#activity").innerText.includes("live@dest.test") && window.notReloaded === "yes"`, 20*time.Second)
	in.waitState(t, live, store.Delivered)
	b.wait("its delivered state", `document.querySelector("#activity tbody tr").innerText.includes("delivered")`, 20*time.Second)
	b.shot("activity")

	// Its journey: every event, the attempt's MX and reply.
	b.click(`#activity tbody tr a.msg`)
	b.wait("the journey", `document.querySelector("#journey") && document.querySelector("h1").innerText.includes(`+strconv.Quote(live)+`)`, 10*time.Second)
	b.wait("the attempt in the journey", `document.querySelector("#journey").innerText.includes("MX mx1.dest.test") && document.querySelector("#journey").innerText.includes("250")`, 5*time.Second)
	b.shot("message")

	// A destination answering 451: the exact reply on the message page.
	busy := in.sendAPI(t, "Deferred one", "busy@dest.test")
	deadline := time.Now().Add(20 * time.Second)
	for delivery(t, in.Show(busy), "busy@dest.test").LastReply.Code != 451 {
		if time.Now().After(deadline) {
			t.Fatal("no 451 recorded")
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.open("/ui/messages/"+busy, "#journey")
	b.wait("the exact 451 reply", `document.querySelector("#journey").innerText.includes("451 4.7.1 Greylisted, try again in 300 seconds")`, 5*time.Second)
	b.shot("message-deferred")

	// It becomes a dead letter when its lifetime ends; retry it.
	in.waitState(t, busy, store.DeadLetter)
	b.open("/ui/dlq", "#dlq")
	b.wait("the dead letter", `document.querySelector("#dlq").innerText.includes("busy@dest.test")`, 5*time.Second)
	b.shot("dlq")
	b.do("select the dead letter", chromedp.Click(chromedp.CSS(`#dlq input[name=id]`)))
	b.click(`button[value=retry]`)
	b.wait("the retry's result", `document.querySelector(".flash") && document.querySelector(".flash").innerText.includes("retry: 1 dead letter")`, 5*time.Second)
	if types := eventTypes(in.Show(busy), "busy@dest.test"); !slices.Contains(types, store.EventRequeued) {
		t.Fatalf("after retry from the dashboard the events are %v, want a requeued one", types)
	}

	// Destinations: the scheduler's view of dest.test.
	b.open("/ui/destinations", "#dests")
	b.shot("destinations")

	// Suppressions: add one, see it, remove it.
	b.open("/ui/suppressions", "#add-suppression")
	b.do("fill the suppression", chromedp.SetValue(chromedp.CSS(`#add-suppression input[name=entry]`), "blocked@dest.test"),
		chromedp.SetValue(chromedp.CSS(`#add-suppression input[name=detail]`), "asked by phone"))
	b.click(`#add-suppression button`)
	b.wait("the new suppression", `document.querySelector("#supps").innerText.includes("blocked@dest.test")`, 5*time.Second)
	b.shot("suppressions")
	b.click(`#supps button[aria-label="remove blocked@dest.test"]`)
	b.wait("the suppression removed", `document.querySelector(".flash").innerText.includes("removed") && !document.querySelector("#supps").innerText.includes("blocked@dest.test")`, 5*time.Second)

	// Import a file of 1,200 addresses: sent in chunks with a progress bar.
	var csvText strings.Builder
	for i := range 1200 {
		fmt.Fprintf(&csvText, "imported%d@dest.test\n", i)
	}
	csvPath := filepath.Join(t.TempDir(), "list.csv")
	if err := os.WriteFile(csvPath, []byte(csvText.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	b.do("choose the file", chromedp.SetUploadFiles(chromedp.CSS(`#import-suppressions input[type=file]`), []string{csvPath}))
	b.click(`#import-suppressions button`)
	b.wait("the import's result", `document.querySelector(".flash") && document.querySelector(".flash").innerText.includes("imported 1200 entries")`, 20*time.Second)
	b.wait("the imported entries", `document.querySelector("main").innerText.includes("1200 entries")`, 5*time.Second)

	// Sending domains: the records to publish, and a check on demand.
	if code, body := in.raw(t, in.Creds.APIKey, "POST", "/v1/domains", map[string]any{"domain": "brand.test"}); code != 201 {
		t.Fatalf("add a domain: %d %s", code, body)
	}
	b.open("/ui/domains", `[id="domain-brand.test"]`)
	b.wait("the DKIM record", `document.querySelector("main").innerText.includes("._domainkey.brand.test")`, 5*time.Second)
	b.click(`[id="domain-brand.test"] button[value=check]`)
	b.wait("the check's result", `document.querySelector(".flash") && document.querySelector(".flash").innerText.includes("checked brand.test")`, 10*time.Second)
	b.shot("domains")

	// API keys: the secret is shown once.
	b.open("/ui/keys", "#create-key")
	b.do("name the key", chromedp.SetValue(chromedp.CSS(`#create-key input[name=name]`), "billing-app"))
	b.click(`#create-key button`)
	b.wait("the new key's secret", `document.querySelector("#secret") && document.querySelector("#secret").innerText.startsWith("ph_live_")`, 5*time.Second)
	b.shot("keys")

	// Phone width and dark mode.
	b.open("/ui/", "#queue")
	b.do("dark mode", func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		_, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}})
		return chromedp.Void{}, err
	})
	b.shot("overview-dark")
	b.do("phone width", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
	b.open("/ui/messages/"+live, "#journey")
	b.shot("message-phone")
	b.do("desktop width", chromedp.ResetViewport())

	// A viewer: no action buttons, and its POSTs are refused.
	b.open("/ui/", "#queue")
	b.click(`.logout button`)
	b.login("viewer@alpha.test", "viewer-password")
	if code, _ := in.webLogin(t, "viewer@alpha.test", "viewer-password").get("/ui/domains"); code != 403 {
		t.Errorf("viewer opens domains: %d, want 403", code)
	}
	for _, p := range []string{"/ui/messages/" + live, "/ui/dlq", "/ui/suppressions"} {
		b.open(p, "main")
		if n := b.eval(`String(document.querySelectorAll("main form[method=post], main input[name=id], main button[name=action], main button[name=do]").length)`); n != "0" {
			t.Errorf("viewer sees %s action buttons or forms on %s", n, p)
		}
	}
	b.shot("viewer-message")
	b.postForbidden("/ui/messages/" + live + "/hold")
	b.postForbidden("/ui/dlq")
	b.postForbidden("/ui/suppressions")
}
