package web

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/suppress"
)

// ImportResult is the answer to one import request (one chunk when the
// page's script sends the file in parts to show progress).
type ImportResult struct {
	Added  int      `json:"added"`
	Errors []string `json:"errors"`
}

// importSuppressions adds the entries of a CSV: the dashboard's own export
// (columns kind and value, reason and detail when present) or one entry
// per line in the first column. The form posts the file; the page's
// script instead posts it in chunks (field "entries") and shows progress.
func (d *Dashboard) importSuppressions(w http.ResponseWriter, r *http.Request, s *session) {
	tid := d.tenantFor(r, s)
	var src io.Reader
	if f, _, err := r.FormFile("file"); err == nil {
		defer f.Close()
		src = f
	} else {
		src = strings.NewReader(r.PostFormValue("entries"))
	}
	res := &ImportResult{Errors: []string{}}
	if tid == "" {
		res.Errors = append(res.Errors, "choose a tenant that exists")
	} else {
		ss := parseImport(src, tid, r.PostFormValue("reason"), res)
		now := d.cfg.Now().UTC()
		for i := range ss {
			ss[i].CreatedAt = now
		}
		if len(ss) > 0 {
			if err := d.cfg.Suppress.Add(r.Context(), ss...); err != nil {
				d.internal(w, err)
				return
			}
		}
		res.Added = len(ss)
	}
	if r.Header.Get("Accept") == "application/json" {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(res)
		return
	}
	msg := fmt.Sprintf("imported %d entries", res.Added)
	if len(res.Errors) > 0 {
		back(w, r, "/ui/suppressions", "", fmt.Sprintf("%s; %d refused, first: %s", msg, len(res.Errors), res.Errors[0]))
		return
	}
	back(w, r, "/ui/suppressions", msg, "")
}

const maxImportErrors = 100

func parseImport(src io.Reader, tenantID, defReason string, res *ImportResult) []store.Suppression {
	if defReason == "" {
		defReason = suppress.Manual
	}
	cr := csv.NewReader(src)
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	col := map[string]int{}
	var out []store.Suppression
	for line := 1; ; line++ {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		fail := func(msg string) {
			if len(res.Errors) < maxImportErrors {
				res.Errors = append(res.Errors, fmt.Sprintf("line %d: %s", line, msg))
			}
		}
		if err != nil {
			fail(err.Error())
			continue
		}
		if line == 1 && slices.Contains(rec, "value") {
			for i, h := range rec {
				col[strings.ToLower(strings.TrimSpace(h))] = i
			}
			continue
		}
		field := func(name string) string {
			if i, ok := col[name]; ok && i < len(rec) {
				return strings.TrimPrefix(strings.TrimSpace(rec[i]), "'") // the export's formula guard
			}
			return ""
		}
		entry, reason := "", defReason
		if _, ok := col["value"]; ok {
			entry = entryOf(store.Suppression{Kind: field("kind"), Value: field("value")})
			if r := field("reason"); r != "" {
				reason = r
			}
		} else if len(rec) > 0 {
			entry = strings.TrimSpace(rec[0])
		}
		if entry == "" {
			continue
		}
		x, err := suppress.Parse(tenantID, entry, reason)
		if err != nil {
			fail(err.Error())
			continue
		}
		x.Detail = field("detail")
		out = append(out, x)
	}
	return out
}
