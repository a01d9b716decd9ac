package web

import (
	"errors"
	"net/http"
	"strings"

	"github.com/posthorn/posthorn/internal/tenant"
)

type loginData struct {
	Email string
	Next  string
}

func safeNext(next string) string {
	if !strings.HasPrefix(next, "/ui/") || strings.HasPrefix(next, "//") || strings.Contains(next, "\\") {
		return "/ui/"
	}
	return next
}

func (d *Dashboard) loginPage(w http.ResponseWriter, r *http.Request) {
	if d.session(r) != nil {
		http.Redirect(w, r, "/ui/", http.StatusSeeOther)
		return
	}
	d.render(w, r, nil, "login", "Log in", loginData{Next: safeNext(r.URL.Query().Get("next"))})
}

// login checks the account's password (rate-limited per address and per
// email) and starts a session.
func (d *Dashboard) login(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		http.Error(w, "cross-origin request refused", http.StatusForbidden)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	email := strings.ToLower(strings.TrimSpace(r.PostFormValue("email")))
	next := safeNext(r.PostFormValue("next"))
	fail := func(code int, msg string) {
		w.WriteHeader(code)
		r.URL.RawQuery = "error=" + urlQueryEscape(msg)
		d.render(w, r, nil, "login", "Log in", loginData{Email: email, Next: next})
	}
	undo, ok := d.logins.Reserve("ip:"+clientIP(r), "user:"+email)
	if !ok {
		fail(http.StatusTooManyRequests, "Too many failed logins; try again in a few minutes.")
		return
	}
	a, err := d.cfg.Tenants.CheckAccount(r.Context(), email, r.PostFormValue("password"))
	if errors.Is(err, tenant.ErrBadCredentials) {
		d.cfg.Tenants.RecordAuthFailure(r.Context(), "web", clientIP(r), email)
		fail(http.StatusUnauthorized, "Wrong email or password.")
		return
	}
	if err != nil {
		d.internal(w, err)
		return
	}
	undo()
	s := d.sessions.create(a.Email, a.TenantID, a.Role)
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: s.ID, Path: "/ui/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil, Expires: s.Expires})
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (d *Dashboard) logout(w http.ResponseWriter, r *http.Request, s *session) {
	d.sessions.delete(s.ID)
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/ui/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil, MaxAge: -1})
	http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
}
