package web

import (
	"encoding/csv"
	"net/http"
	"strings"
	"time"

	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/suppress"
)

// SuppView is the suppressions page.
type SuppView struct {
	Query   string
	Rows    []SuppRow
	Total   int
	Tenants []store.Tenant // for an installation owner's add form
	Reasons []string
}

// SuppRow is one entry with the text that removes it.
type SuppRow struct {
	store.Suppression
	Entry string
}

var reasons = []string{suppress.Manual, suppress.HardBounce, suppress.Complaint, suppress.Unsubscribe, suppress.OnHold}

// entryOf is the input that names an entry again (Parse's syntax).
func entryOf(s store.Suppression) string {
	switch s.Kind {
	case "regex":
		return "/" + s.Value + "/"
	case "domain":
		return "@" + s.Value
	}
	return s.Value
}

func (d *Dashboard) loadSuppressions(r *http.Request, s *session) ([]store.Suppression, error) {
	ss, err := d.cfg.Store.ListSuppressions(r.Context(), s.TenantID)
	if err != nil {
		return nil, err
	}
	q := strings.ToLower(strings.TrimSpace(r.URL.Query().Get("q")))
	if q == "" {
		return ss, nil
	}
	var out []store.Suppression
	for _, x := range ss {
		if strings.Contains(strings.ToLower(x.Value), q) || strings.Contains(strings.ToLower(x.Detail), q) || x.Reason == q {
			out = append(out, x)
		}
	}
	return out, nil
}

const suppPageRows = 500

func (d *Dashboard) suppressions(w http.ResponseWriter, r *http.Request, s *session) {
	ss, err := d.loadSuppressions(r, s)
	if err != nil {
		d.internal(w, err)
		return
	}
	v := &SuppView{Query: r.URL.Query().Get("q"), Total: len(ss), Reasons: reasons}
	for i, x := range ss {
		if i == suppPageRows {
			break
		}
		v.Rows = append(v.Rows, SuppRow{Suppression: x, Entry: entryOf(x)})
	}
	if s.TenantID == "" {
		if v.Tenants, err = d.cfg.Store.ListTenants(r.Context()); err != nil {
			d.internal(w, err)
			return
		}
	}
	d.render(w, r, s, "suppressions", "Suppressions", v)
}

// tenantFor is the tenant an action applies to: the session's, or for an
// installation owner the one the form names (by id or name; "" when it
// names none that exists).
func (d *Dashboard) tenantFor(r *http.Request, s *session) string {
	if s.TenantID != "" {
		return s.TenantID
	}
	name := r.PostFormValue("tenant")
	if name == "" {
		return ""
	}
	t, err := d.cfg.Tenants.Resolve(r.Context(), name)
	if err != nil {
		return ""
	}
	return t.ID
}

// addSuppression adds an address, domain or pattern with a reason.
func (d *Dashboard) addSuppression(w http.ResponseWriter, r *http.Request, s *session) {
	tid := d.tenantFor(r, s)
	if tid == "" {
		back(w, r, "/ui/suppressions", "", "choose a tenant that exists")
		return
	}
	reason := r.PostFormValue("reason")
	if reason == "" {
		reason = suppress.Manual
	}
	entry := strings.TrimSpace(r.PostFormValue("entry"))
	kind := r.PostFormValue("kind")
	if kind == "domain" && !strings.HasPrefix(entry, "@") && !strings.Contains(entry, "@") {
		entry = "@" + entry
	}
	x, err := suppress.Parse(tid, entry, reason)
	if err == nil && kind != "" && x.Kind != kind {
		err = errKind(kind)
	}
	if err != nil {
		back(w, r, "/ui/suppressions", "", err.Error())
		return
	}
	x.Detail = strings.TrimSpace(r.PostFormValue("detail"))
	x.CreatedAt = d.cfg.Now().UTC()
	if err := d.cfg.Suppress.Add(r.Context(), x); err != nil {
		d.internal(w, err)
		return
	}
	back(w, r, "/ui/suppressions", "added "+x.Kind+" "+x.Value, "")
}

type errKind string

func (e errKind) Error() string {
	switch string(e) {
	case "pattern":
		return "a pattern needs a * (for example *@example.com)"
	case "address":
		return "an address looks like someone@example.com"
	}
	return "a domain looks like example.com"
}

func (d *Dashboard) removeSuppression(w http.ResponseWriter, r *http.Request, s *session) {
	tid := d.tenantFor(r, s)
	entry := r.PostFormValue("entry")
	found, err := d.cfg.Suppress.Remove(r.Context(), tid, entry)
	if err != nil {
		back(w, r, "/ui/suppressions", "", err.Error())
		return
	}
	if !found {
		back(w, r, "/ui/suppressions", "", "no such entry")
		return
	}
	back(w, r, "/ui/suppressions", "removed "+entry, "")
}

// suppressionsCSV exports the (filtered) list.
func (d *Dashboard) suppressionsCSV(w http.ResponseWriter, r *http.Request, s *session) {
	ss, err := d.loadSuppressions(r, s)
	if err != nil {
		d.internal(w, err)
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="suppressions.csv"`)
	cw := csv.NewWriter(w)
	cw.Write([]string{"tenant", "kind", "value", "reason", "created_at", "expires_at", "detail"})
	for _, x := range ss {
		exp := ""
		if !x.ExpiresAt.IsZero() {
			exp = x.ExpiresAt.UTC().Format(time.RFC3339)
		}
		cw.Write([]string{x.TenantID, x.Kind, csvSafe(x.Value), x.Reason, x.CreatedAt.UTC().Format(time.RFC3339), exp, csvSafe(x.Detail)})
	}
	cw.Flush()
}

// csvSafe keeps a spreadsheet from running a cell as a formula.
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
