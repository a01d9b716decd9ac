package web

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/store/sqlite"
	"github.com/posthorn/posthorn/internal/tenant"
)

func openStore(t *testing.T) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "posthorn.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestFirstEventSince: the binary search finds the last event before the
// bound, for every bound between and around the events.
func TestFirstEventSince(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var ids []int64
	for i := range 37 {
		if err := st.RecordEvent(ctx, store.Event{At: t0.Add(time.Duration(i) * time.Minute), Type: store.EventDelivered, TenantID: "t1", MessageID: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	evs, err := st.Events(ctx, store.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		ids = append(ids, e.ID)
	}
	d := &Dashboard{cfg: Config{Store: st}}
	for i := -1; i <= 38; i++ {
		since := t0.Add(time.Duration(i)*time.Minute - time.Second)
		got, err := d.firstEventSince(ctx, since)
		if err != nil {
			t.Fatal(err)
		}
		want := int64(0) // every event is at or after since
		for j, e := range evs {
			if e.At.Before(since) {
				want = ids[j]
			}
		}
		if got != want {
			t.Fatalf("since minute %d: got id %d, want %d", i, got, want)
		}
	}
}

// TestSessionExpiry: a session ends ttl after login; the cookie then
// leads to the login form.
func TestSessionExpiry(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	tm := tenant.New(st)
	if _, _, err := tm.AddAccount(ctx, "o@x.test", "", tenant.RoleOwner, "a-long-password"); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	d, err := New(Config{Store: st, Tenants: tm, Now: func() time.Time { return now }, SessionTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	h := d.Handler()
	r := httptest.NewRequest("POST", "/ui/login", strings.NewReader(url.Values{"email": {"o@x.test"}, "password": {"a-long-password"}}.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	cs := w.Result().Cookies()
	if w.Code != http.StatusSeeOther || len(cs) != 1 || !cs[0].HttpOnly || cs[0].SameSite != http.SameSiteStrictMode || cs[0].Secure {
		t.Fatalf("login: %d %+v", w.Code, cs)
	}
	get := func() int {
		r := httptest.NewRequest("GET", "/ui/suppressions", nil)
		r.AddCookie(cs[0])
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	if code := get(); code != 200 {
		t.Fatalf("within the hour: %d", code)
	}
	now = now.Add(time.Hour + time.Second)
	if code := get(); code != http.StatusSeeOther {
		t.Fatalf("after the hour: %d, want a redirect to login", code)
	}
}
