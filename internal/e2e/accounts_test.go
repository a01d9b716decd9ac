package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/api"
	"github.com/posthorn/posthorn/internal/store"
)

// basic makes an API request with HTTP basic auth (an account) and
// returns the status and raw answer.
func (in *Instance) basic(t *testing.T, email, password, method, path string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "http://"+in.HTTP+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(email, password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data
}

// raw makes an API request with a key and returns status and raw answer.
func (in *Instance) raw(t *testing.T, key, method, path string, body any) (int, string) {
	t.Helper()
	var out json.RawMessage
	code := in.call(t, key, method, path, body, nil, &out)
	return code, string(out)
}

// TestTenantIsolation tries every /v1 endpoint and every tenant-scoped
// CLI command with tenant A's credentials on tenant B's messages, events,
// suppressions, domains, keys, users and accounts: each is refused with
// the same 404 as something that does not exist, lists never show B's
// things, and B's things are all still there afterwards. It also checks
// scopes and roles: a key without a scope gets 403, a viewer cannot send,
// an account hands out at most its role.
func TestTenantIsolation(t *testing.T) {
	w := newWorld(t, Options{}, "127.0.0.2")
	w.domain("dest.test", "127.0.0.2")
	in := w.in
	keyA := in.Creds.APIKey

	// Tenant B and its things.
	var tb store.Tenant
	in.CLI(&tb, "tenant", "add", "beta")
	var kb api.KeyResponse
	in.CLI(&kb, "apikey", "create", "--tenant", "beta", "--role", "admin", "--name", "b-admin")
	var ub api.UserResponse
	in.CLI(&ub, "user", "add", "b-user", "--tenant", "beta")
	in.CLI(nil, "account", "add", "b-admin@beta.test", "--tenant", "beta", "--role", "admin", "--password", "beta-password")
	var sb api.SendResponse
	if code := in.call(t, kb.APIKey, "POST", "/v1/messages", apiSend("r@dest.test"), nil, &sb); code != 202 {
		t.Fatalf("B sends: %d", code)
	}
	in.WaitFinal(sb.ID, 20*time.Second)
	if code, body := in.raw(t, kb.APIKey, "POST", "/v1/suppressions", map[string]any{"entry": "blocked@dest.test"}); code != 201 {
		t.Fatalf("B suppresses: %d %s", code, body)
	}
	var dom struct{ Selector string }
	if code := in.call(t, kb.APIKey, "POST", "/v1/domains", map[string]any{"domain": "beta-brand.test"}, nil, &dom); code != 201 || dom.Selector == "" {
		t.Fatalf("B adds a domain: %d %+v", code, dom)
	}
	in.CLI(nil, "account", "add", "a-admin@alpha.test", "--tenant", "default", "--role", "admin", "--password", "alpha-password")
	markers := []string{sb.ID, tb.ID, "blocked@dest.test", "beta-brand.test", kb.ID, "b-user", "b-admin@beta.test"}
	noMarkers := func(what, body string) {
		t.Helper()
		for _, m := range markers {
			if strings.Contains(body, m) {
				t.Errorf("%s shows tenant B's %q:\n%s", what, m, clip(body))
			}
		}
	}

	t.Run("api refuses B's things as missing", func(t *testing.T) {
		// Each request names B's thing, then a thing that does not exist:
		// the answers must be the same (no leak of existence).
		cases := []struct {
			method, path string
			body         func(id string) any
			b, ghost     string
		}{
			{"GET", "/v1/messages/%s", nil, sb.ID, "01JGHOST0000000000000000000"},
			{"DELETE", "/v1/messages/%s", nil, sb.ID, "01JGHOST0000000000000000000"},
			{"POST", "/v1/dlq/retry", func(id string) any { return map[string]any{"ids": []string{id}} }, sb.ID, "01JGHOST0000000000000000000"},
			{"POST", "/v1/dlq/purge", func(id string) any { return map[string]any{"ids": []string{id}} }, sb.ID, "01JGHOST0000000000000000000"},
			{"DELETE", "/v1/suppressions?entry=%s", nil, "blocked@dest.test", "ghost@dest.test"},
			{"GET", "/v1/domains/%s", nil, "beta-brand.test", "ghost-brand.test"},
			{"DELETE", "/v1/domains/%s", nil, "beta-brand.test", "ghost-brand.test"},
			{"POST", "/v1/domains/%s/check", nil, "beta-brand.test", "ghost-brand.test"},
			{"POST", "/v1/domains/%s/rotate", nil, "beta-brand.test", "ghost-brand.test"},
			{"DELETE", "/v1/domains/beta-brand.test/keys/%s", nil, dom.Selector, "ghostsel"},
			{"DELETE", "/v1/apikeys/%s", nil, kb.ID, "ghostkeyid000"},
			{"DELETE", "/v1/users/%s", nil, "b-user", "ghost-user"},
		}
		for _, c := range cases {
			answer := func(id string) (int, string) {
				var body any
				if c.body != nil {
					body = c.body(id)
				}
				code, out := in.raw(t, keyA, c.method, strings.Replace(c.path, "%s", id, 1), body)
				return code, strings.ReplaceAll(out, id, "ID")
			}
			code, out := answer(c.b)
			gcode, gout := answer(c.ghost)
			if code != 404 || code != gcode || out != gout {
				t.Errorf("%s %s with A's key on B's %s: %d %s; on nothing: %d %s", c.method, c.path, c.b, code, out, gcode, gout)
			}
		}
		// An account of A, with its password, likewise.
		if code, out := in.basic(t, "a-admin@alpha.test", "alpha-password", "DELETE", "/v1/apikeys/"+kb.ID, nil); code != 404 {
			t.Errorf("A's account removes B's key: %d %s", code, out)
		}
		if code, out := in.basic(t, "a-admin@alpha.test", "alpha-password", "POST", "/v1/apikeys", map[string]any{"tenant": "beta"}); code != 404 {
			t.Errorf("A's account makes a key for B: %d %s", code, out)
		}
		if code, out := in.raw(t, keyA, "POST", "/v1/apikeys", map[string]any{"tenant": "beta"}); code != 404 {
			t.Errorf("A's key makes a key for B: %d %s", code, out)
		}
	})

	t.Run("api lists show only A", func(t *testing.T) {
		for _, p := range []string{"/v1/messages", "/v1/events", "/v1/events?message=" + sb.ID, "/v1/dlq", "/v1/suppressions", "/v1/domains",
			"/v1/apikeys", "/v1/users", "/v1/messages?recipient=r@dest.test"} {
			code, out := in.raw(t, keyA, "GET", p, nil)
			if code != 200 {
				t.Errorf("GET %s: %d %s", p, code, out)
			}
			noMarkers("GET "+p, out)
		}
		code, out := in.basic(t, "a-admin@alpha.test", "alpha-password", "GET", "/v1/apikeys", nil)
		if code != 200 {
			t.Errorf("A's account lists keys: %d", code)
		}
		noMarkers("account's key list", string(out))
	})

	t.Run("cli commands scoped to A refuse B's things", func(t *testing.T) {
		for _, args := range [][]string{
			{"user", "remove", "b-user", "--tenant", "default"},
			{"apikey", "remove", kb.ID, "--tenant", "default"},
			{"account", "remove", "b-admin@beta.test", "--tenant", "default"},
			{"account", "passwd", "b-admin@beta.test", "--tenant", "default", "--password", "hijacked-password"},
			{"suppression", "remove", "blocked@dest.test", "--tenant", "default"},
		} {
			err := in.TryCLI(nil, args...)
			if err == nil || !strings.Contains(err.Error(), "not found") && !strings.Contains(err.Error(), "no such") {
				t.Errorf("posthorn %s: %v, want not found", strings.Join(args, " "), err)
			}
		}
		tenantA := in.Creds.TenantID
		for _, args := range [][]string{
			{"user", "list", "--tenant", "default"}, {"apikey", "list", "--tenant", "default"}, {"account", "list", "--tenant", "default"},
			{"suppression", "list", "--tenant", "default"}, {"domain", "list", "--tenant", "default"}, {"events", "--tenant", tenantA},
		} {
			var out json.RawMessage
			in.CLI(&out, args...)
			noMarkers("posthorn "+strings.Join(args, " "), string(out))
		}
	})

	t.Run("B's things are intact", func(t *testing.T) {
		for _, p := range []string{"/v1/messages/" + sb.ID, "/v1/domains/beta-brand.test"} {
			if code, out := in.raw(t, kb.APIKey, "GET", p, nil); code != 200 {
				t.Errorf("B GET %s: %d %s", p, code, out)
			}
		}
		for p, want := range map[string]string{"/v1/users": "b-user", "/v1/suppressions": "blocked@dest.test", "/v1/apikeys": kb.ID, "/v1/events": sb.ID} {
			if _, out := in.raw(t, kb.APIKey, "GET", p, nil); !strings.Contains(out, want) {
				t.Errorf("B GET %s lacks %s", p, want)
			}
		}
		if code, _ := in.basic(t, "b-admin@beta.test", "beta-password", "GET", "/v1/apikeys", nil); code != 200 {
			t.Errorf("B's account password changed by A's passwd: %d", code)
		}
	})

	t.Run("scopes and roles", func(t *testing.T) {
		var ro api.KeyResponse
		in.CLI(&ro, "apikey", "create", "--scope", "read")
		for _, c := range []struct {
			method, path string
			body         any
		}{
			{"POST", "/v1/messages", apiSend("x@dest.test")}, {"GET", "/v1/users", nil}, {"POST", "/v1/apikeys", map[string]any{}},
			{"GET", "/v1/domains", nil}, {"POST", "/v1/suppressions", map[string]any{"entry": "x@dest.test"}},
		} {
			if code, out := in.raw(t, ro.APIKey, c.method, c.path, c.body); code != 403 {
				t.Errorf("read-only key %s %s: %d %s", c.method, c.path, code, out)
			}
		}
		// A viewer, its password read from stdin (not a terminal).
		if _, errOut, code := in.Run("viewer-password\n", nil, "account", "add", "viewer@alpha.test", "--tenant", "default", "--role", "viewer"); code != 0 {
			t.Fatalf("account add with the password on stdin: %d %s", code, errOut)
		}
		code, out := in.basic(t, "viewer@alpha.test", "viewer-password", "POST", "/v1/apikeys", map[string]any{"scopes": []string{"send"}})
		if code != 403 || !strings.Contains(string(out), "scope_too_wide") {
			t.Fatalf("viewer made a send key: %d %s", code, out)
		}
		var vk api.V1KeyResponse
		code, out = in.basic(t, "viewer@alpha.test", "viewer-password", "POST", "/v1/apikeys", map[string]any{"name": "dash"})
		if json.Unmarshal(out, &vk); code != 201 || len(vk.Scopes) != 1 || vk.Scopes[0] != "read" || !strings.HasPrefix(vk.Secret, "ph_live_") || vk.CreatedBy != "viewer@alpha.test" {
			t.Fatalf("viewer's key: %d %s", code, out)
		}
		if code, out := in.raw(t, vk.Secret, "POST", "/v1/messages", apiSend("x@dest.test")); code != 403 {
			t.Errorf("viewer sends: %d %s", code, out)
		}
		if code, out := in.raw(t, vk.Secret, "GET", "/v1/events", nil); code != 200 {
			t.Errorf("viewer reads activity: %d %s", code, out)
		} else {
			noMarkers("viewer's events", out)
		}
		if code, _ := in.raw(t, vk.Secret, "GET", "/v1/messages/"+sb.ID, nil); code != 404 {
			t.Errorf("viewer reads B's message: %d", code)
		}
		// The viewer sees only its own keys.
		_, out = in.basic(t, "viewer@alpha.test", "viewer-password", "GET", "/v1/apikeys", nil)
		var list struct{ Items []store.APIKey }
		if json.Unmarshal(out, &list); len(list.Items) != 1 || list.Items[0].ID != vk.ID || list.Items[0].Prefix != "ph_live_"+vk.ID {
			t.Errorf("viewer's key list: %s", out)
		}
		// A wrong password is refused and logged as auth_failed.
		if code, _ := in.basic(t, "viewer@alpha.test", "not-the-password", "GET", "/v1/apikeys", nil); code != 401 {
			t.Errorf("wrong password: %d", code)
		}
		var evs struct{ Items []store.Event }
		in.CLI(&evs, "events", "--type", "auth_failed")
		found := false
		for _, e := range evs.Items {
			found = found || strings.Contains(e.Detail, `user="viewer@alpha.test"`) && strings.Contains(e.Detail, "ip=127.0.0.1") && e.TenantID == in.Creds.TenantID
		}
		if !found {
			t.Errorf("no auth_failed event for the viewer: %+v", evs.Items)
		}
		// The installation's owner makes keys for any tenant.
		in.CLI(nil, "account", "add", "root@ops.test", "--role", "owner", "--password", "owner-password")
		var ok api.V1KeyResponse
		code, out = in.basic(t, "root@ops.test", "owner-password", "POST", "/v1/apikeys", map[string]any{"tenant": "beta", "scopes": []string{"read"}})
		if json.Unmarshal(out, &ok); code != 201 || ok.TenantID != tb.ID {
			t.Fatalf("owner's key for B: %d %s", code, out)
		}
		if code, _ := in.raw(t, ok.Secret, "GET", "/v1/messages/"+sb.ID, nil); code != 200 {
			t.Errorf("owner's key for B reads B's message: %d", code)
		}
		// Removing an account revokes the keys it made.
		in.CLI(nil, "account", "remove", "viewer@alpha.test")
		if code, _ := in.raw(t, vk.Secret, "GET", "/v1/events", nil); code != 401 {
			t.Errorf("key of a removed account still works: %d", code)
		}
	})
}
