package web

import (
	"fmt"
	"html/template"
	"net/url"
	"strconv"
	"time"

	"github.com/posthorn/posthorn/internal/smtpproto"
	"github.com/posthorn/posthorn/internal/store"
)

func urlQueryEscape(s string) string { return url.QueryEscape(s) }

// funcs are the templates' helpers. None returns template.HTML: every
// value a template prints is escaped by html/template.
var funcs = template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"reply": func(r smtpproto.Reply) string {
		if r.Code == 0 {
			return ""
		}
		return r.String()
	},
	"dur":  func(d time.Duration) string { return d.Round(time.Millisecond).String() },
	"q":    url.QueryEscape,
	"path": url.PathEscape,
	"cnt": func(n int, capped bool) string {
		if capped {
			return strconv.Itoa(n) + "+"
		}
		return strconv.Itoa(n)
	},
	"get": func(m map[store.State]int, s store.State) int { return m[s] },
	// barH is a bar's height in a 100-high chart.
	"barH": func(v, maxV int) int {
		if maxV == 0 {
			return 0
		}
		return v * 100 / maxV
	},
	"mul":  func(a, b int) int { return a * b },
	"mod4": func(i int) int { return i % 4 },
	"add":  func(a, b int) int { return a + b },
	"sub":  func(a, b int) int { return a - b },
	"fmtf": func(f float64) string { return fmt.Sprintf("%.0f", f) },
	"pct":  func(f float64) string { return fmt.Sprintf("%.2f%%", f*100) },
	"stateClass": func(s store.State) string {
		switch s {
		case store.Delivered:
			return "ok"
		case store.Deferred, store.Held, store.Scheduled, store.Queued, store.Sending:
			return "warn"
		}
		return "bad"
	},
}
