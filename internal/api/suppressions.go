package api

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/posthorn/posthorn/internal/store"
)

// WriteSuppressions answers a list of suppressions ({"items": [...],
// "count": N}) as the store reads them: lists reach millions of entries,
// which as one value would cost the server gigabytes. The first entry is
// read before the status is sent, so a store that fails at once gets an
// error answer; a failure later cuts the connection (no well-formed body
// that lacks entries).
func WriteSuppressions(ctx context.Context, w http.ResponseWriter, st store.Store, tenantID string, fail func(error)) {
	var bw *bufio.Writer
	n := 0
	err := st.EachSuppression(ctx, tenantID, func(x store.Suppression) error {
		b, err := json.Marshal(x)
		if err != nil {
			return err
		}
		if bw == nil {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
			bw = bufio.NewWriterSize(w, 64<<10)
			bw.WriteString("{\n  \"items\": [\n    ")
		} else {
			bw.WriteString(",\n    ")
		}
		n++
		_, err = bw.Write(b)
		return err
	})
	switch {
	case err != nil && bw == nil:
		fail(err)
	case err != nil:
		panic(http.ErrAbortHandler)
	case bw == nil:
		WriteJSON(w, http.StatusOK, map[string]any{"items": []store.Suppression{}, "count": 0})
	default:
		fmt.Fprintf(bw, "\n  ],\n  \"count\": %d\n}\n", n)
		if bw.Flush() != nil {
			panic(http.ErrAbortHandler)
		}
	}
}

// SuppressionRequest adds or removes an entry: an address, a domain, a
// glob ("*@example.com") or "/regexp/".
type SuppressionRequest struct {
	Tenant string `json:"tenant,omitempty"`
	Entry  string `json:"entry"`
	Reason string `json:"reason,omitempty"` // default manual
	Detail string `json:"detail,omitempty"`
}

// ImportRequest adds many entries at once (one write). The same endpoint
// also takes a CSV body (Content-Type text/csv, the tenant in ?tenant=;
// internal/suppress/importcsv), which is what the CLI sends.
type ImportRequest struct {
	Tenant  string               `json:"tenant,omitempty"`
	Entries []SuppressionRequest `json:"entries"`
}

// ImportResponse says how many entries were added and which were refused.
type ImportResponse struct {
	Added  int      `json:"added"`
	Errors []string `json:"errors,omitempty"` // "N: entry: reason" (JSON: N-th entry) or "line N: entry: reason" (CSV), at most 100
}
