package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/posthorn/posthorn/internal/api"
	"github.com/posthorn/posthorn/internal/api/adminclient"
	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/suppress/importcsv"
)

func suppressionCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "suppression", Short: "Per-tenant suppression lists: who must not be mailed"}
	var tenantName, reason, detail, listCursor string
	var listLimit int
	add := &cobra.Command{
		Use:   "add ADDRESS|DOMAIN|GLOB|/REGEXP/",
		Short: "Suppress an address, a whole domain, a glob (*@example.com) or a regular expression",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var s store.Suppression
			if err := call(g, "POST", "/admin/v1/suppressions", api.SuppressionRequest{Tenant: tenantName, Entry: args[0], Reason: reason, Detail: detail}, &s); err != nil {
				return err
			}
			if g.json {
				return printJSON(s)
			}
			fmt.Printf("suppressed %s %s (%s)\n", s.Kind, s.Value, s.Reason)
			return nil
		},
	}
	add.Flags().StringVar(&tenantName, "tenant", "", "tenant name or id (default: the default tenant)")
	add.Flags().StringVar(&reason, "reason", "manual", "manual, hard_bounce, unsubscribe, complaint, on_hold")
	add.Flags().StringVar(&detail, "detail", "", "a note kept with the entry")
	remove := &cobra.Command{
		Use:   "remove ENTRY",
		Short: "Remove an entry (written as it was added)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var res map[string]any
			if err := call(g, "DELETE", "/admin/v1/suppressions", api.SuppressionRequest{Tenant: tenantName, Entry: args[0]}, &res); err != nil {
				return err // not found is an error: exit 1 with what was looked for
			}
			if g.json {
				return printJSON(res)
			}
			fmt.Println("removed", args[0])
			return nil
		},
	}
	remove.Flags().StringVar(&tenantName, "tenant", "", "tenant name or id")
	list := &cobra.Command{
		Use:   "list",
		Short: "List entries",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var res struct {
				Items      []store.Suppression `json:"items"`
				Count      int                 `json:"count"`
				Total      int                 `json:"total"`
				NextCursor string              `json:"next_cursor"`
			}
			q := query(map[string]string{"tenant": tenantName, "cursor": listCursor})
			q.Set("limit", fmt.Sprint(listLimit))
			return g.show("/admin/v1/suppressions", q, &res, func() error {
				defer func() {
					if res.NextCursor != "" {
						fmt.Printf("-- %s of %s entries shown, newest first; more: --cursor %s (or a larger --limit)\n",
							thousands(res.Count), thousands(res.Total), res.NextCursor)
					} else {
						fmt.Printf("-- %s, newest first\n", plural(res.Count, "entry", "entries"))
					}
				}()
				w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
				fmt.Fprintln(w, "TENANT\tKIND\tENTRY\tREASON\tSINCE\tEXPIRES\tDETAIL")
				for _, s := range res.Items {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.TenantID, s.Kind, s.Value, s.Reason, s.CreatedAt.Format(time.RFC3339),
						fmtTime(s.ExpiresAt), clipText(s.Detail, 60))
				}
				return w.Flush()
			})
		},
	}
	list.Flags().StringVar(&tenantName, "tenant", "", "only this tenant (name or id)")
	list.Flags().IntVar(&listLimit, "limit", 1000, "at most this many entries (0: no limit)")
	list.Flags().StringVar(&listCursor, "cursor", "", "continue a listing: the cursor its last line gave")
	cmd.AddCommand(add, remove, list, suppressionImportCmd(g), suppressionExportCmd(g))
	return cmd
}

// importCmd reads a CSV file (entry[,reason[,detail]], an optional header
// line starting with "entry") and sends it in batches, showing progress.
// Entries are read in chunks of up to --chunk, each sorted by entry (case
// ignored, stable: of two lines for one entry the later still wins) and
// sent in that order: each batch then lands in one stretch of the table's
// key instead of all over it, which is what makes a large import fast
// (docs/performance.md). Batches go as CSV (importcsv), each record as the
// file has it behind its line number, so the server's refusals name the
// file's lines; the CLI only finds the entry of each record to sort by.
func suppressionImportCmd(g *globals) *cobra.Command {
	var tenantName string
	var batch, chunk, parallel int
	cmd := &cobra.Command{
		Use:   "import FILE.csv",
		Short: "Import entries from CSV: entry[,reason[,detail]] per line (reason defaults to manual)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if batch < 1 || chunk < 1 || parallel < 1 {
				return fmt.Errorf("--batch, --chunk and --parallel must be at least 1")
			}
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			total := int64(0)
			if fi, err := f.Stat(); err == nil {
				total = fi.Size()
			}
			in := &countingReader{r: f}
			sc := bufio.NewScanner(in)
			sc.Buffer(make([]byte, 0, 1<<20), importcsv.MaxRecord)
			sc.Split(importcsv.SplitRecord)
			path := "/admin/v1/suppressions/import?" + query(map[string]string{"tenant": tenantName}).Encode()
			start := time.Now()
			var added int
			var errs []string
			var mu sync.Mutex // guards added, errs and the progress line
			send := func(body []byte) error {
				var res api.ImportResponse
				if err := call(g, "POST", path, adminclient.RawBody{ContentType: importcsv.ContentType, Data: body}, &res); err != nil {
					return err
				}
				mu.Lock()
				added += res.Added
				errs = append(errs, res.Errors...)
				mu.Unlock()
				return nil
			}
			// A chunk's records are kept in one buffer (text) and pending
			// holds offsets into it: no pointers, so that the garbage
			// collector has nothing to scan and the sort no write barriers
			// (both were most of the CLI's CPU with a string per line).
			// line keeps the sort stable at O(n log n): of two lines for
			// one entry the later still wins.
			type keyed struct {
				prefix      uint64 // the key's first 8 bytes, big-endian: most comparisons end here
				key, keyEnd int    // the entry, trimmed and in lower case
				rec, recEnd int    // as in the file, without its line end
				line        int
			}
			// Sized for the chunk up front: grown by doubling, the copies
			// and page faults were a quarter of the CLI's CPU.
			text := make([]byte, 0, min(total+total/8+4096, int64(chunk)*128))
			// Lines of 32 bytes or more: pending never grows.
			pending := make([]keyed, 0, min(int64(chunk), total/32+1024))
			var chunkStart int64 // file offset where pending starts
			flush := func() error {
				key := func(k keyed) []byte { return text[k.key:k.keyEnd] }
				slices.SortFunc(pending, func(a, b keyed) int {
					return cmp.Or(cmp.Compare(a.prefix, b.prefix), bytes.Compare(key(a), key(b)), cmp.Compare(a.line, b.line))
				})
				chunkEnd := in.n
				// Batches of one chunk are sent up to --parallel at a time,
				// so the CLI encodes and the server parses the next while
				// the store writes one. Their order does not matter: a batch
				// never ends inside a run of equal keys, so no entry is in
				// two of them; the next chunk waits for this one.
				var wg sync.WaitGroup
				slots := make(chan struct{}, parallel)
				var firstErr error
				for lo := 0; lo < len(pending); {
					body := make([]byte, 0, 64*min(batch, len(pending)-lo)+32)
					body = append(body, "line,entry,reason,detail\n"...)
					hi := lo
					// A batch also ends at maxBatchBytes, so that a file of
					// long lines does not make bodies the server refuses.
					for hi < len(pending) && (hi-lo < batch && len(body) < maxBatchBytes || hi > lo && bytes.Equal(key(pending[hi]), key(pending[hi-1]))) {
						body = strconv.AppendInt(body, int64(pending[hi].line), 10)
						body = append(body, ',')
						body = append(body, text[pending[hi].rec:pending[hi].recEnd]...)
						body = append(body, '\n')
						hi++
					}
					slots <- struct{}{}
					mu.Lock()
					failed := firstErr != nil
					mu.Unlock()
					if failed {
						break
					}
					wg.Add(1)
					go func(done int64) {
						defer wg.Done()
						defer func() { <-slots }()
						if err := send(body); err != nil {
							mu.Lock()
							firstErr = cmp.Or(firstErr, err)
							mu.Unlock()
							return
						}
						if total > 0 && !g.json {
							mu.Lock()
							fmt.Fprintf(os.Stderr, "\r[%-30s] %3d%%  %d entries", strings.Repeat("#", int(30*done/total)), 100*done/total, added)
							mu.Unlock()
						}
					}(chunkStart + (chunkEnd-chunkStart)*int64(hi)/int64(len(pending)))
					lo = hi
				}
				wg.Wait()
				pending, text, chunkStart = pending[:0], text[:0], chunkEnd
				return firstErr
			}
			var fields []string
			for line, first := 1, true; sc.Scan(); {
				at, tok := line, sc.Bytes()
				line += bytes.Count(tok, []byte{'\n'}) + 1
				if at == 1 {
					tok = bytes.TrimPrefix(tok, []byte("\ufeff"))
				}
				if len(tok) == 0 {
					continue
				}
				k := keyed{rec: len(text), line: at}
				text = append(text, tok...)
				k.recEnd = len(text)
				var entry []byte
				if bytes.IndexByte(tok, '"') < 0 {
					// No quotes, so no syntax errors and the fields are
					// the text between commas.
					entry, _, _ = bytes.Cut(text[k.rec:], []byte{','})
				} else {
					if fields, err = importcsv.Fields(string(tok), fields[:0]); err != nil {
						return fmt.Errorf("line %d: %w", at, err)
					}
					entry = []byte(fields[0])
				}
				if len(entry) == 0 || first && bytes.EqualFold(entry, []byte("entry")) {
					first, text = false, text[:k.rec]
					continue
				}
				first = false
				entry = bytes.TrimSpace(entry)
				if i := bytes.Index(text[k.rec:k.recEnd], entry); i >= 0 && !hasUpper(entry) {
					k.key, k.keyEnd = k.rec+i, k.rec+i+len(entry) // the entry as it is in the record
				} else {
					k.key = len(text)
					text = append(text, bytes.ToLower(entry)...)
					k.keyEnd = len(text)
				}
				var p [8]byte
				copy(p[:], text[k.key:k.keyEnd])
				k.prefix = binary.BigEndian.Uint64(p[:])
				pending = append(pending, k)
				if len(pending) == chunk {
					if err := flush(); err != nil {
						return err
					}
				}
			}
			if err := sc.Err(); err != nil {
				if errors.Is(err, bufio.ErrTooLong) {
					return fmt.Errorf("%s: a record of more than %d MiB (an unterminated quote?)", args[0], importcsv.MaxRecord>>20)
				}
				return fmt.Errorf("%s: %w", args[0], err)
			}
			if err := flush(); err != nil {
				return err
			}
			// Batches answer in any order: refusals in the file's.
			slices.SortStableFunc(errs, func(a, b string) int { return cmp.Compare(refusedLine(a), refusedLine(b)) })
			if g.json {
				return printJSON(map[string]any{"added": added, "errors": errs})
			}
			fmt.Fprintf(os.Stderr, "\nimported %d entries in %s\n", added, time.Since(start).Round(time.Millisecond))
			for _, e := range errs {
				fmt.Fprintln(os.Stderr, "refused:", e)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&tenantName, "tenant", "", "tenant name or id (default: the default tenant)")
	cmd.Flags().IntVar(&batch, "batch", 20000, "entries per request (one transaction each)")
	cmd.Flags().IntVar(&parallel, "parallel", 2, "requests in flight at once")
	cmd.Flags().IntVar(&chunk, "chunk", 1000000, "entries read and sorted before sending (their length and 40 bytes of memory each)")
	return cmd
}

// refusedLine is the line number of a refusal ("line 12: ..."), 0 if none.
func refusedLine(e string) int {
	var n int
	fmt.Sscanf(e, "line %d:", &n)
	return n
}

// hasUpper reports whether b has a byte or rune that lower-casing changes.
func hasUpper(b []byte) bool {
	for _, c := range b {
		if c >= 'A' && c <= 'Z' || c >= 0x80 {
			return true
		}
	}
	return false
}

// maxBatchBytes ends a batch early when its lines are long: the server
// takes bodies of up to 64 MiB.
const maxBatchBytes = 16 << 20

// countingReader counts the bytes read, for the progress line.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func suppressionExportCmd(g *globals) *cobra.Command {
	var tenantName string
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Write entries as CSV (entry,reason,detail,created_at,expires_at) to standard output",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			var res struct {
				Items []store.Suppression `json:"items"`
			}
			q := query(map[string]string{"tenant": tenantName})
			q.Set("limit", "0") // every entry
			if err := c.Do(context.Background(), "GET", "/admin/v1/suppressions", q, nil, &res); err != nil {
				return err
			}
			w := csv.NewWriter(os.Stdout)
			w.Write([]string{"entry", "reason", "detail", "created_at", "expires_at"})
			for _, s := range res.Items {
				entry := s.Value
				if s.Kind == "regex" {
					entry = "/" + s.Value + "/"
				}
				exp := ""
				if !s.ExpiresAt.IsZero() {
					exp = s.ExpiresAt.Format(time.RFC3339)
				}
				w.Write([]string{entry, s.Reason, s.Detail, s.CreatedAt.Format(time.RFC3339), exp})
			}
			w.Flush()
			return w.Error()
		},
	}
	cmd.Flags().StringVar(&tenantName, "tenant", "", "only this tenant")
	return cmd
}
