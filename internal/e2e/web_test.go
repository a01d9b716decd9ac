package e2e

import (
	"bytes"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/api"
	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/testkit"
)

// webClient is a logged-in dashboard session over plain HTTP. It does not
// follow redirects, so each answer is the one to the request made.
type webClient struct {
	t    *testing.T
	base string
	c    *http.Client
	csrf string
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// webLogin logs in to /ui/ with an account and reads the session's CSRF
// token from the overview.
func (in *Instance) webLogin(t *testing.T, email, password string) *webClient {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	wc := &webClient{t: t, base: "http://" + in.HTTP, c: &http.Client{Jar: jar, Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	code, _ := wc.postRaw("/ui/login", url.Values{"email": {email}, "password": {password}})
	if code != http.StatusSeeOther {
		t.Fatalf("login %s: %d", email, code)
	}
	code, body := wc.get("/ui/")
	m := csrfRE.FindStringSubmatch(body)
	if code != 200 || m == nil {
		t.Fatalf("overview after login: %d, csrf token found: %v", code, m != nil)
	}
	wc.csrf = m[1]
	return wc
}

func (wc *webClient) get(path string) (int, string) {
	wc.t.Helper()
	resp, err := wc.c.Get(wc.base + path)
	if err != nil {
		wc.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// postRaw posts form as is (no CSRF token added).
func (wc *webClient) postRaw(path string, form url.Values) (int, string) {
	wc.t.Helper()
	resp, err := wc.c.PostForm(wc.base+path, form)
	if err != nil {
		wc.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Location") + string(b)
}

// post posts form with the session's CSRF token.
func (wc *webClient) post(path string, form url.Values) (int, string) {
	wc.t.Helper()
	f := url.Values{"csrf": {wc.csrf}}
	for k, v := range form {
		f[k] = v
	}
	return wc.postRaw(path, f)
}

// webWorld is a posthorn with one fake MX for dest.test, an admin and a
// viewer account on the default tenant, and tenant "beta" with its own
// admin.
func webWorld(t *testing.T, o Options) *world {
	t.Helper()
	w := newWorld(t, o, "127.0.0.2")
	w.domain("dest.test", "127.0.0.2")
	in := w.in
	in.CLI(nil, "account", "add", "admin@alpha.test", "--tenant", "default", "--role", "admin", "--password", "alpha-password")
	in.CLI(nil, "account", "add", "viewer@alpha.test", "--tenant", "default", "--role", "viewer", "--password", "viewer-password")
	in.CLI(nil, "tenant", "add", "beta")
	in.CLI(nil, "account", "add", "admin@beta.test", "--tenant", "beta", "--role", "admin", "--password", "beta-password")
	return w
}

// sendAPI sends one message with the default tenant's key.
func (in *Instance) sendAPI(t *testing.T, subject string, to ...string) string {
	t.Helper()
	body := apiSend(to...)
	body["subject"] = subject
	var res api.SendResponse
	if code := in.call(t, in.Creds.APIKey, "POST", "/v1/messages", body, nil, &res); code != 202 {
		t.Fatalf("send: %d", code)
	}
	return res.ID
}

// waitState waits until every delivery of message id is in state.
func (in *Instance) waitState(t *testing.T, id string, state store.State) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		d := in.Show(id)
		all := len(d.Deliveries) > 0
		for _, x := range d.Deliveries {
			all = all && x.State == state
		}
		if all {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("message %s: want %s, have %+v", id, state, d.Deliveries)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestWebCSRF posts every dashboard form and action without the session's
// CSRF token and with a wrong one: each is refused with 403 and changes
// nothing; the same request with the token is accepted.
func TestWebCSRF(t *testing.T) {
	w := webWorld(t, Options{})
	in := w.in
	id := in.sendAPI(t, "csrf", "r@dest.test")
	in.waitState(t, id, store.Delivered)
	wc := in.webLogin(t, "admin@alpha.test", "alpha-password")
	forms := []struct {
		path string
		form url.Values
	}{
		{"/ui/messages/" + id + "/flush", nil},
		{"/ui/messages/" + id + "/hold", nil},
		{"/ui/messages/" + id + "/release", nil},
		{"/ui/messages/" + id + "/cancel", nil},
		{"/ui/dlq", url.Values{"action": {"retry"}, "id": {"1"}}},
		{"/ui/dlq", url.Values{"action": {"purge"}, "id": {"1"}}},
		{"/ui/suppressions", url.Values{"entry": {"csrf@dest.test"}, "kind": {"address"}, "reason": {"manual"}}},
		{"/ui/suppressions/remove", url.Values{"entry": {"csrf@dest.test"}}},
		{"/ui/domains/dest.test/check", nil},
		{"/ui/keys", url.Values{"name": {"csrf-key"}, "scope": {"read"}}},
		{"/ui/keys/nokey/revoke", nil},
		{"/ui/users", url.Values{"username": {"csrf-user"}}},
		{"/ui/users/nouser/remove", nil},
		{"/ui/suppressions/import", url.Values{"entries": {"csrf2@dest.test"}}},
		{"/ui/logout", nil},
	}
	for _, f := range forms {
		for _, token := range []string{"", "wrong-" + wc.csrf} {
			form := url.Values{}
			for k, v := range f.form {
				form[k] = v
			}
			if token != "" {
				form.Set("csrf", token)
			}
			if code, body := wc.postRaw(f.path, form); code != http.StatusForbidden {
				t.Errorf("POST %s with csrf %q: %d %s, want 403", f.path, token, code, body)
			}
		}
	}
	// Nothing happened: the suppression is not there, the session lives.
	if code, body := wc.get("/ui/suppressions"); code != 200 || strings.Contains(body, "csrf@dest.test") {
		t.Fatalf("suppressions after refused posts: %d, has entry: %v", code, strings.Contains(body, "csrf@dest.test"))
	}
	// A request from another site's page is refused even with the token
	// (its Origin names that site), and so is a login from there.
	req, _ := http.NewRequest("POST", wc.base+"/ui/suppressions", strings.NewReader(url.Values{"csrf": {wc.csrf}, "entry": {"csrf@dest.test"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "http://evil.test")
	if resp, err := wc.c.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-origin POST with the token: %v %v", resp.StatusCode, err)
	}
	req, _ = http.NewRequest("POST", wc.base+"/ui/login", strings.NewReader(url.Values{"email": {"admin@alpha.test"}, "password": {"alpha-password"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "http://evil.test")
	if resp, err := wc.c.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-origin login: %v %v", resp.StatusCode, err)
	}
	// With the token the same form works.
	if code, loc := wc.post("/ui/suppressions", forms[6].form); code != http.StatusSeeOther || !strings.Contains(loc, "flash=") {
		t.Fatalf("add with token: %d %s", code, loc)
	}
	if _, body := wc.get("/ui/suppressions"); !strings.Contains(body, "csrf@dest.test") {
		t.Fatal("suppression added with the token is not listed")
	}
}

// TestWebEscaping shows a subject, a recipient and an SMTP reply holding
// <script> on the activity list and the message page: always escaped.
func TestWebEscaping(t *testing.T) {
	w := webWorld(t, Options{})
	in := w.in
	w.mx["127.0.0.2"].SetScript(testkit.Script{StartTLS: true, RcptReplies: map[string]testkit.Reply{
		"busy@dest.test": {Code: 451, Text: "4.7.1 <script>alert('reply')</script> try later"},
	}})
	evil := `"<script>x</script>"@dest.test`
	id := in.sendAPI(t, "<script>alert('subject')</script>", "busy@dest.test", evil)
	deadline := time.Now().Add(20 * time.Second)
	for delivery(t, in.Show(id), "busy@dest.test").LastReply.Code != 451 {
		if time.Now().After(deadline) {
			t.Fatal("no 451 recorded")
		}
		time.Sleep(100 * time.Millisecond)
	}
	wc := in.webLogin(t, "admin@alpha.test", "alpha-password")
	for _, path := range []string{"/ui/messages/" + id, "/ui/messages?state=all", "/ui/messages?recipient=script", "/ui/events?since=24h"} {
		code, body := wc.get(path)
		if code != 200 {
			t.Fatalf("%s: %d", path, code)
		}
		if strings.Contains(body, "<script>alert") || strings.Contains(body, "<script>x") {
			t.Errorf("%s shows user data unescaped", path)
		}
		if !strings.Contains(body, "&lt;script&gt;") {
			t.Errorf("%s does not show the escaped text", path)
		}
	}
	_, page := wc.get("/ui/messages/" + id)
	for _, want := range []string{"&lt;script&gt;alert(&#39;subject&#39;)&lt;/script&gt;", "451 4.7.1 &lt;script&gt;alert(&#39;reply&#39;)&lt;/script&gt; try later", "&lt;script&gt;x&lt;/script&gt;"} {
		if !strings.Contains(page, want) {
			t.Errorf("message page lacks %q", want)
		}
	}
}

// TestWebTenantIsolation: tenant beta's admin cannot open, act on or list
// the default tenant's message by changing the URL: 404, as for a
// message that does not exist, and the message is unchanged.
func TestWebTenantIsolation(t *testing.T) {
	w := webWorld(t, Options{})
	in := w.in
	id := in.sendAPI(t, "alpha's", "private@dest.test")
	in.waitState(t, id, store.Delivered)
	beta := in.webLogin(t, "admin@beta.test", "beta-password")
	if code, _ := beta.get("/ui/messages/" + id); code != http.StatusNotFound {
		t.Fatalf("beta opens alpha's message: %d, want 404", code)
	}
	if code, _ := beta.get("/ui/messages/no-such-message"); code != http.StatusNotFound {
		t.Fatalf("a missing message: %d, want 404", code)
	}
	for _, action := range []string{"flush", "hold", "cancel"} {
		if code, _ := beta.post("/ui/messages/"+id+"/"+action, nil); code != http.StatusNotFound {
			t.Fatalf("beta %s on alpha's message: %d, want 404", action, code)
		}
	}
	if _, body := beta.get("/ui/messages?state=all"); strings.Contains(body, "private@dest.test") || strings.Contains(body, id) {
		t.Fatal("beta's activity list shows alpha's message")
	}
	alpha := in.webLogin(t, "admin@alpha.test", "alpha-password")
	if code, body := alpha.get("/ui/messages/" + id); code != 200 || !strings.Contains(body, "private@dest.test") {
		t.Fatalf("alpha opens its own message: %d", code)
	}
	in.waitState(t, id, store.Delivered)
}

// TestWebViewerCannotAct: a viewer's pages carry no action buttons and
// its POSTs (with a valid CSRF token) are refused with 403.
func TestWebViewerCannotAct(t *testing.T) {
	w := webWorld(t, Options{})
	in := w.in
	id := in.sendAPI(t, "viewer", "r@dest.test")
	in.waitState(t, id, store.Delivered)
	v := in.webLogin(t, "viewer@alpha.test", "viewer-password")
	for _, path := range []string{"/ui/", "/ui/messages/" + id, "/ui/dlq", "/ui/suppressions"} {
		code, body := v.get(path)
		if code != 200 {
			t.Fatalf("viewer GET %s: %d", path, code)
		}
		// The only form that posts is logout.
		if n := strings.Count(body, `method="post"`); n != 1 {
			t.Errorf("viewer sees %d posting forms on %s, want only logout", n, path)
		}
	}
	for _, p := range []struct {
		path string
		form url.Values
	}{
		{"/ui/messages/" + id + "/hold", nil},
		{"/ui/dlq", url.Values{"action": {"purge"}, "id": {"1"}}},
		{"/ui/suppressions", url.Values{"entry": {"v@dest.test"}, "kind": {"address"}}},
		{"/ui/suppressions/remove", url.Values{"entry": {"v@dest.test"}}},
	} {
		if code, _ := v.post(p.path, p.form); code != http.StatusForbidden {
			t.Errorf("viewer POST %s: %d, want 403", p.path, code)
		}
	}
	for _, p := range []string{"/ui/destinations", "/ui/domains", "/ui/keys", "/ui/users"} {
		if code, _ := v.get(p); code != http.StatusForbidden {
			t.Errorf("viewer opens %s: %d, want 403", p, code)
		}
	}
	if code, _ := v.post("/ui/keys", url.Values{"name": {"viewer-key"}, "scope": {"read"}}); code != http.StatusForbidden {
		t.Errorf("viewer creates a key: %d, want 403", code)
	}
}

// TestWebLogin: wrong passwords are refused, the eleventh try within the
// window is answered 429 without checking, a page without a session goes
// to the login form, and logout ends the session.
func TestWebLogin(t *testing.T) {
	w := webWorld(t, Options{})
	in := w.in
	anon := &webClient{t: t, base: "http://" + in.HTTP, c: &http.Client{Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	if code, loc := anon.postRaw("/ui/messages", nil); code < 400 {
		t.Fatalf("anonymous POST: %d %s", code, loc)
	}
	resp, err := anon.c.Get(anon.base + "/ui/messages?state=all")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/ui/login") {
		t.Fatalf("anonymous page: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	v := in.webLogin(t, "viewer@alpha.test", "viewer-password")
	code, _ := v.post("/ui/logout", nil)
	if code != http.StatusSeeOther {
		t.Fatalf("logout: %d", code)
	}
	if code, _ := v.get("/ui/"); code != http.StatusSeeOther {
		t.Fatalf("after logout: %d, want a redirect to login", code)
	}
	// The session cookie's attributes.
	resp, err = anon.c.PostForm(anon.base+"/ui/login", url.Values{"email": {"viewer@alpha.test"}, "password": {"viewer-password"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	sc := resp.Header.Get("Set-Cookie")
	for _, want := range []string{"HttpOnly", "SameSite=Strict", "Path=/ui/"} {
		if !strings.Contains(sc, want) {
			t.Errorf("session cookie %q lacks %s", sc, want)
		}
	}
	// Ten failures from one address: the next login waits, even a right one.
	for i := range 10 {
		if code, _ := anon.postRaw("/ui/login", url.Values{"email": {"admin@alpha.test"}, "password": {"wrong"}}); code != http.StatusUnauthorized {
			t.Fatalf("wrong password %d: %d", i, code)
		}
	}
	if code, _ := anon.postRaw("/ui/login", url.Values{"email": {"admin@alpha.test"}, "password": {"alpha-password"}}); code != http.StatusTooManyRequests {
		t.Fatalf("login after 10 failures: %d, want 429", code)
	}
}

var secretRE = regexp.MustCompile(`<pre id="secret">(ph_live_[a-z0-9]+_[A-Za-z0-9_-]+)</pre>`)

// TestWebAPIKeys: an admin creates a key on the dashboard, sees its secret
// once (the list shows only its prefix), the key works on the API, and
// after revoking it from the dashboard it is refused. Scopes beyond the
// role are refused.
func TestWebAPIKeys(t *testing.T) {
	w := webWorld(t, Options{})
	in := w.in
	wc := in.webLogin(t, "admin@alpha.test", "alpha-password")
	code, body := wc.post("/ui/keys", url.Values{"name": {"reporting"}, "scope": {"read"}})
	m := secretRE.FindStringSubmatch(body)
	if code != 200 || m == nil {
		t.Fatalf("create key: %d, secret shown: %v", code, m != nil)
	}
	secret := m[1]
	if code, _ := in.raw(t, secret, "GET", "/v1/messages", nil); code != 200 {
		t.Fatalf("the new key on the API: %d", code)
	}
	if code, _ := in.raw(t, secret, "POST", "/v1/messages", apiSend("r@dest.test")); code != 403 {
		t.Fatalf("a read key sends: %d, want 403", code)
	}
	_, list := wc.get("/ui/keys")
	if strings.Contains(list, secret) || !strings.Contains(list, "reporting") {
		t.Fatalf("the list shows the secret or lacks the key")
	}
	id := strings.Split(strings.TrimPrefix(secret, "ph_live_"), "_")[0]
	if code, loc := wc.post("/ui/keys/"+id+"/revoke", nil); code != http.StatusSeeOther || !strings.Contains(loc, "flash=") {
		t.Fatalf("revoke: %d %s", code, loc)
	}
	if code, _ := in.raw(t, secret, "GET", "/v1/messages", nil); code != 401 {
		t.Fatalf("the revoked key on the API: %d, want 401", code)
	}
	// Beta's admin cannot revoke alpha's keys.
	_, body = wc.post("/ui/keys", url.Values{"name": {"second"}, "scope": {"read"}})
	m = secretRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatal("second key not shown")
	}
	id2 := strings.Split(strings.TrimPrefix(m[1], "ph_live_"), "_")[0]
	beta := in.webLogin(t, "admin@beta.test", "beta-password")
	if code, _ := beta.post("/ui/keys/"+id2+"/revoke", nil); code != http.StatusNotFound {
		t.Fatalf("beta revokes alpha's key: %d, want 404", code)
	}
	if code, _ := in.raw(t, m[1], "GET", "/v1/messages", nil); code != 200 {
		t.Fatalf("alpha's key after beta's try: %d", code)
	}
}

// TestWebInstallationOwner: an owner without a tenant sees every tenant's
// messages and acts on them; a tenant's admin sees its own only.
func TestWebInstallationOwner(t *testing.T) {
	w := webWorld(t, Options{})
	in := w.in
	in.CLI(nil, "account", "add", "root@ops.test", "--role", "owner", "--password", "root-password")
	var kb api.KeyResponse
	in.CLI(&kb, "apikey", "create", "--tenant", "beta", "--role", "admin", "--name", "b")
	var sb api.SendResponse
	if code := in.call(t, kb.APIKey, "POST", "/v1/messages", apiSend("beta-rcpt@dest.test"), nil, &sb); code != 202 {
		t.Fatalf("beta sends: %d", code)
	}
	alpha := in.sendAPI(t, "alpha's", "alpha-rcpt@dest.test")
	in.waitState(t, sb.ID, store.Delivered)
	in.waitState(t, alpha, store.Delivered)
	root := in.webLogin(t, "root@ops.test", "root-password")
	_, list := root.get("/ui/messages?state=all")
	if !strings.Contains(list, "beta-rcpt@dest.test") || !strings.Contains(list, "alpha-rcpt@dest.test") {
		t.Fatal("the owner's activity list lacks a tenant's message")
	}
	if code, _ := root.get("/ui/messages/" + sb.ID); code != 200 {
		t.Fatalf("owner opens beta's message: %d", code)
	}
	if code, _ := root.get("/ui/"); code != 200 {
		t.Fatalf("owner's overview: %d", code)
	}
	if code, loc := root.post("/ui/suppressions", url.Values{"tenant": {kb.Tenant}, "entry": {"x@dest.test"}, "kind": {"address"}}); code != http.StatusSeeOther || !strings.Contains(loc, "flash=") {
		t.Fatalf("owner adds a suppression for beta: %d %s", code, loc)
	}
	if code, loc := root.post("/ui/suppressions", url.Values{"tenant": {"no-such-tenant"}, "entry": {"y@dest.test"}, "kind": {"address"}}); code != http.StatusSeeOther || !strings.Contains(loc, "error=") {
		t.Fatalf("owner adds a suppression for a tenant that does not exist: %d %s", code, loc)
	}
	beta := in.webLogin(t, "admin@beta.test", "beta-password")
	_, bl := beta.get("/ui/suppressions")
	_, al := in.webLogin(t, "admin@alpha.test", "alpha-password").get("/ui/suppressions")
	if !strings.Contains(bl, "x@dest.test") || strings.Contains(al, "x@dest.test") {
		t.Fatalf("the owner's suppression is not beta's alone: beta has it %v, alpha has it %v (tenant %q)", strings.Contains(bl, "x@dest.test"), strings.Contains(al, "x@dest.test"), kb.Tenant)
	}
}

// TestWebSuppressionExportImport: the CSV export, imported as a file into
// another tenant, gives the same entries with their reasons; a bad line
// is reported and the rest imported.
func TestWebSuppressionExportImport(t *testing.T) {
	w := webWorld(t, Options{})
	in := w.in
	alpha := in.webLogin(t, "admin@alpha.test", "alpha-password")
	for _, f := range []url.Values{
		{"entry": {"one@dest.test"}, "kind": {"address"}, "reason": {"complaint"}, "detail": {"=cmd|' /C calc'!A0"}},
		{"entry": {"blocked.test"}, "kind": {"domain"}, "reason": {"manual"}},
		{"entry": {"*@spam.test"}, "kind": {"pattern"}, "reason": {"manual"}},
	} {
		if code, loc := alpha.post("/ui/suppressions", f); code != http.StatusSeeOther || !strings.Contains(loc, "flash=") {
			t.Fatalf("add %v: %d %s", f, code, loc)
		}
	}
	code, csvText := alpha.get("/ui/suppressions.csv")
	if code != 200 || !strings.Contains(csvText, "'=cmd") {
		t.Fatalf("export: %d, formula guarded: %v\n%s", code, strings.Contains(csvText, "'=cmd"), csvText)
	}
	csvText += "tn_x,address,not an address,manual,,,\n"
	beta := in.webLogin(t, "admin@beta.test", "beta-password")
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	mw.WriteField("csrf", beta.csrf)
	fw, _ := mw.CreateFormFile("file", "list.csv")
	fw.Write([]byte(csvText))
	mw.Close()
	req, _ := http.NewRequest("POST", beta.base+"/ui/suppressions/import", &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := beta.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(loc, "imported+3+entries") || !strings.Contains(loc, "1+refused") {
		t.Fatalf("import: %d %s", resp.StatusCode, loc)
	}
	_, list := beta.get("/ui/suppressions")
	for _, want := range []string{"one@dest.test", "@blocked.test", "*@spam.test", "complaint"} {
		if !strings.Contains(list, want) {
			t.Errorf("beta's list after import lacks %q", want)
		}
	}
}

var passwordRE = regexp.MustCompile(`<pre id="password">([^<]+)</pre>`)

// TestWebSMTPUsers: an admin creates an SMTP user on the dashboard, its
// generated password is shown once and logs in to submission; removed
// from the dashboard, it no longer does.
func TestWebSMTPUsers(t *testing.T) {
	w := webWorld(t, Options{})
	in := w.in
	wc := in.webLogin(t, "admin@alpha.test", "alpha-password")
	code, body := wc.post("/ui/users", url.Values{"username": {"newsletter"}, "lane": {"low"}})
	m := passwordRE.FindStringSubmatch(body)
	if code != 200 || m == nil {
		t.Fatalf("create user: %d, password shown: %v", code, m != nil)
	}
	auth := func(want int) {
		t.Helper()
		c, err := Dial(in.SMTP)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		expect(t, c, "EHLO app.test", 250, "")
		expect(t, c, "AUTH PLAIN "+plain("newsletter", m[1]), want, "")
	}
	auth(235)
	if _, list := wc.get("/ui/users"); strings.Contains(list, m[1]) || !strings.Contains(list, "newsletter") {
		t.Fatal("the list shows the password or lacks the user")
	}
	if code, _ := in.webLogin(t, "admin@beta.test", "beta-password").post("/ui/users/newsletter/remove", nil); code != http.StatusNotFound {
		t.Fatalf("beta removes alpha's user: %d, want 404", code)
	}
	if code, loc := wc.post("/ui/users/newsletter/remove", nil); code != http.StatusSeeOther || !strings.Contains(loc, "flash=") {
		t.Fatalf("remove: %d %s", code, loc)
	}
	auth(535)
}

// TestWebWebhooks: the webhooks page lists an endpoint; "Send a test
// event" from the dashboard reaches the receiver, and the attempt shows on
// the page. Another tenant's admin cannot test it (404).
func TestWebWebhooks(t *testing.T) {
	w := webWorld(t, Options{Config: webhookConfig(true)})
	in := w.in
	r := startReceiver(t)
	hook := in.addWebhook(t, r.URL("/hook"), "delivered")
	r.mu.Lock()
	r.secret = hook.Secret
	r.mu.Unlock()
	wc := in.webLogin(t, "admin@alpha.test", "alpha-password")
	if code, body := wc.get("/ui/webhooks"); code != 200 || !strings.Contains(body, r.URL("/hook")) {
		t.Fatalf("webhooks page: %d, lists the endpoint: %v", code, strings.Contains(body, r.URL("/hook")))
	}
	if code, _ := in.webLogin(t, "admin@beta.test", "beta-password").post("/ui/webhooks/"+hook.ID+"/test", nil); code != http.StatusNotFound {
		t.Fatalf("beta tests alpha's webhook: %d, want 404", code)
	}
	if code, loc := wc.post("/ui/webhooks/"+hook.ID+"/test", nil); code != http.StatusSeeOther || !strings.Contains(loc, "flash=") {
		t.Fatalf("test webhook: %d %s", code, loc)
	}
	r.wait("the test event", 20*time.Second, func() bool { return len(r.byID) >= 1 })
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, body := wc.get("/ui/webhooks")
		if strings.Contains(body, "webhook_test") && strings.Contains(body, `badge ok">204`) {
			break
		}
		if time.Now().After(deadline) {
			i := strings.Index(body, "<tbody>")
			t.Fatalf("the test webhook's attempt is not on the page:\n%s", body[i:min(len(body), i+1500)])
		}
		time.Sleep(100 * time.Millisecond)
	}
}
