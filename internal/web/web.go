// Package web is posthorn's dashboard, served at /ui/ on the HTTP listener
// by the same binary: pages rendered on the server with html/template
// (which escapes everything; user data is never marked template.HTML), a
// little embedded JavaScript for live refresh, select-all and copy
// buttons, and CSS that works on a phone and in dark mode. No CDN, no
// build step: the assets are embedded with embed.FS.
//
// Access is by account (email + password, internal/tenant's check), with
// a server-side session in memory (a restart logs everyone out), an
// HttpOnly SameSite=Strict cookie (Secure over TLS), a per-session CSRF
// token checked on every POST, and rate-limited logins. Everything is
// scoped to the account's tenant; an installation owner (tenant "") sees
// every tenant. What an account may do follows its role's API scopes:
// read for every page, send for message, dead-letter and suppression
// actions, admin for the destinations page and its pause and resume buttons. Without the scope no button is
// shown and the POST is refused with 403.
//
// The tests (internal/e2e/web_test.go) drive the built binary with
// headless Chromium and plain HTTP: login, live overview and activity,
// journeys with exact replies, dead-letter retry, suppressions, a viewer
// without actions, CSRF refusal, escaping, and tenant isolation.
package web

import (
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/posthorn/posthorn/internal/domain"
	"github.com/posthorn/posthorn/internal/loginlimit"
	"github.com/posthorn/posthorn/internal/queue"
	"github.com/posthorn/posthorn/internal/queue/ops"
	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/suppress"
	"github.com/posthorn/posthorn/internal/tenant"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Config is what the dashboard reads and acts on.
type Config struct {
	Store        store.Store
	Tenants      *tenant.Manager
	Ops          *ops.QueueOps
	Suppress     *suppress.List
	Destinations func() []queue.DestinationInfo // nil: no scheduler view
	Domains      *domain.Service                // nil: no domains page
	Now          func() time.Time
	Log          *slog.Logger
	SessionTTL   time.Duration // 0: 12 hours
}

// Dashboard serves /ui/.
type Dashboard struct {
	cfg      Config
	pages    map[string]*template.Template
	sessions *sessions
	logins   *loginlimit.Limiter

	countsMu sync.Mutex
	counts   map[string]countsEntry // by tenant ("" the installation)
}

// New parses the templates and returns the dashboard.
func New(cfg Config) (*Dashboard, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 12 * time.Hour
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	d := &Dashboard{cfg: cfg, pages: map[string]*template.Template{}, counts: map[string]countsEntry{},
		sessions: newSessions(cfg.SessionTTL, cfg.Now),
		logins:   loginlimit.New(10, 10*time.Minute, cfg.Now)}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		if strings.HasSuffix(n, "/layout.html") {
			continue
		}
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", n)
		if err != nil {
			return nil, err
		}
		d.pages[strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")] = t
	}
	return d, nil
}

// Handler returns the routes, to be mounted at /ui/.
func (d *Dashboard) Handler() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	mux.Handle("GET /ui/static/", http.StripPrefix("/ui/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /ui/login", d.loginPage)
	mux.HandleFunc("POST /ui/login", d.login)
	mux.HandleFunc("POST /ui/logout", d.post(tenant.ScopeRead, d.logout))
	mux.HandleFunc("GET /ui/{$}", d.get(d.overview))
	mux.HandleFunc("GET /ui/overview.json", d.get(d.overviewJSON))
	mux.HandleFunc("GET /ui/messages", d.get(d.messages))
	mux.HandleFunc("GET /ui/messages/{id}", d.get(d.message))
	mux.HandleFunc("POST /ui/messages/{id}/{action}", d.post(tenant.ScopeSend, d.messageAction))
	mux.HandleFunc("GET /ui/events", d.get(d.events))
	mux.HandleFunc("GET /ui/destinations", d.get(d.destinations))
	mux.HandleFunc("POST /ui/destinations/{key}/{action}", d.post(tenant.ScopeAdmin, d.destinationAction))
	mux.HandleFunc("GET /ui/reports", d.get(d.reports))
	mux.HandleFunc("GET /ui/reports.csv", d.get(d.reportsCSV))
	mux.HandleFunc("GET /ui/dlq", d.get(d.dlq))
	mux.HandleFunc("POST /ui/dlq", d.post(tenant.ScopeSend, d.dlqAction))
	mux.HandleFunc("GET /ui/suppressions", d.get(d.suppressions))
	mux.HandleFunc("POST /ui/suppressions", d.post(tenant.ScopeSend, d.addSuppression))
	mux.HandleFunc("POST /ui/suppressions/remove", d.post(tenant.ScopeSend, d.removeSuppression))
	mux.HandleFunc("GET /ui/suppressions.csv", d.get(d.suppressionsCSV))
	mux.HandleFunc("POST /ui/suppressions/import", d.post(tenant.ScopeSend, d.importSuppressions))
	mux.HandleFunc("GET /ui/domains", d.get(d.domains))
	mux.HandleFunc("GET /ui/keys", d.get(d.keys))
	mux.HandleFunc("POST /ui/keys", d.post(tenant.ScopeAdmin, d.createKey))
	mux.HandleFunc("POST /ui/keys/{id}/revoke", d.post(tenant.ScopeAdmin, d.revokeKey))
	mux.HandleFunc("GET /ui/webhooks", d.get(d.webhooks))
	mux.HandleFunc("POST /ui/webhooks/{id}/{action}", d.post(tenant.ScopeAdmin, d.webhookAction))
	mux.HandleFunc("GET /ui/users", d.get(d.users))
	mux.HandleFunc("POST /ui/users", d.post(tenant.ScopeAdmin, d.createUser))
	mux.HandleFunc("POST /ui/users/{username}/remove", d.post(tenant.ScopeAdmin, d.removeUser))
	mux.HandleFunc("POST /ui/domains/{domain}/check", d.post(tenant.ScopeAdmin, d.checkDomain))
	mux.HandleFunc("/ui/", func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) })
	return secureHeaders(mux)
}

// secureHeaders keeps the pages out of frames and other origins' scripts.
func secureHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "same-origin")
		w.Header().Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	})
}

type handler func(w http.ResponseWriter, r *http.Request, s *session)

func (d *Dashboard) session(r *http.Request) *session {
	c, err := r.Cookie(cookieName)
	if err != nil {
		return nil
	}
	return d.sessions.get(c.Value)
}

// get requires a session; without one a page goes to the login form.
func (d *Dashboard) get(h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s := d.session(r)
		if s == nil {
			if strings.HasSuffix(r.URL.Path, ".json") || strings.HasSuffix(r.URL.Path, ".csv") {
				http.Error(w, "log in first", http.StatusUnauthorized)
				return
			}
			http.Redirect(w, r, "/ui/login?next="+urlQueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		h(w, r, s)
	}
}

// post requires a session, the session's CSRF token and scope.
func (d *Dashboard) post(scope string, h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !sameOrigin(r) {
			http.Error(w, "cross-origin request refused", http.StatusForbidden)
			return
		}
		s := d.session(r)
		if s == nil {
			http.Error(w, "log in first", http.StatusUnauthorized)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 4<<20)
		var err error
		if strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/form-data") {
			err = r.ParseMultipartForm(4 << 20) // the suppression import's file
		} else {
			err = r.ParseForm()
		}
		if err != nil {
			http.Error(w, "bad form", http.StatusBadRequest)
			return
		}
		if !s.csrfOK(r) {
			http.Error(w, "missing or wrong CSRF token", http.StatusForbidden)
			return
		}
		if !s.can(scope) {
			http.Error(w, "your role may not do this", http.StatusForbidden)
			return
		}
		h(w, r, s)
	}
}

// sameOrigin refuses a POST whose Origin header (browsers send it) names
// another site: besides the CSRF token, and for the login form too.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

func (s *session) can(scope string) bool {
	return tenant.ScopesWithin([]string{scope}, tenant.RoleScopes(s.Role))
}

// page is what every template gets.
type page struct {
	Title    string
	Nav      string
	S        *session
	CanSend  bool
	CanAdmin bool
	Flash    string
	Error    string
	Back     string // this page's URL without its flash, for forms to return to
	Data     any
}

func (d *Dashboard) render(w http.ResponseWriter, r *http.Request, s *session, name, title string, data any) {
	p := page{Title: title, Nav: name, S: s, Data: data, Flash: r.URL.Query().Get("flash"), Error: r.URL.Query().Get("error"),
		Back: withoutFlash(r.URL.RequestURI())}
	if s != nil {
		p.CanSend, p.CanAdmin = s.can(tenant.ScopeSend), s.can(tenant.ScopeAdmin)
	}
	t := d.pages[name]
	if t == nil {
		http.Error(w, "no such page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := t.ExecuteTemplate(w, "layout.html", p); err != nil {
		d.cfg.Log.Error("render", "page", name, "err", err)
	}
}

func (d *Dashboard) internal(w http.ResponseWriter, err error) {
	d.cfg.Log.Error("dashboard", "err", err)
	http.Error(w, "internal error", http.StatusInternalServerError)
}

func (d *Dashboard) notFoundOr(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, store.ErrNotFound) {
		http.NotFound(w, r)
		return
	}
	d.internal(w, err)
}

func clientIP(r *http.Request) string {
	h, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return h
}

// withoutFlash drops the flash and error parameters from a local URL.
func withoutFlash(u string) string {
	x, err := url.Parse(u)
	if err != nil {
		return "/ui/"
	}
	q := x.Query()
	q.Del("flash")
	q.Del("error")
	x.RawQuery = q.Encode()
	return x.RequestURI()
}

// back redirects after an action to where the form said, on this site.
func back(w http.ResponseWriter, r *http.Request, fallback, flash, errText string) {
	to := r.PostFormValue("back")
	if !strings.HasPrefix(to, "/ui/") || strings.HasPrefix(to, "//") || strings.Contains(to, "\\") {
		to = fallback
	}
	to = withoutFlash(to)
	sep := "?"
	if strings.Contains(to, "?") {
		sep = "&"
	}
	if errText != "" {
		to += sep + "error=" + urlQueryEscape(errText)
	} else if flash != "" {
		to += sep + "flash=" + urlQueryEscape(flash)
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
}
