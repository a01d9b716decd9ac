package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/posthorn/posthorn/internal/api"
	"github.com/posthorn/posthorn/internal/api/adminclient"
	"github.com/posthorn/posthorn/internal/queue/ops"
	"github.com/posthorn/posthorn/internal/store"
)

func queueCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "queue", Short: "Inspect and manage the queue (postqueue/postsuper)"}
	cmd.AddCommand(queueListCmd(g), queueShowCmd(g),
		queueOpCmd(g, "flush", "Retry deferred deliveries now (postqueue -f is flush --all)", "/admin/v1/queue/flush"),
		queueOpCmd(g, "delete", "Delete deliveries (postsuper -d ID / -d ALL)", "/admin/v1/queue/delete"),
		queueOpCmd(g, "hold", "Hold deliveries until released (postsuper -h)", "/admin/v1/queue/hold"),
		queueOpCmd(g, "release", "Release held deliveries (postsuper -H)", "/admin/v1/queue/release"),
		queueRequeueCmd(g), queueWhyCmd(g), queueSummaryCmd(g))
	return cmd
}

func queueListCmd(g *globals) *cobra.Command {
	var state, domain, rcpt, tenantName, cursor string
	var older time.Duration
	var limit int
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List pending deliveries, newest first (postqueue -p)",
		Long: `List pending deliveries, newest first. At most --limit rows are shown; when more
match, the last line says so and gives the --cursor that shows the next (older) page.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := query(map[string]string{"state": state, "domain": domain, "recipient": rcpt, "tenant": tenantName, "cursor": cursor})
			if older > 0 {
				q.Set("older_than", older.String())
			}
			q.Set("limit", fmt.Sprint(limit))
			var list api.QueueList
			return g.show("/admin/v1/queue", q, &list, func() error { return printQueue(list) })
		},
	}
	f := cmd.Flags()
	f.StringVar(&state, "state", "", "states, comma separated, or \"all\" (default: every pending state)")
	f.StringVar(&domain, "domain", "", "recipient domain")
	f.StringVar(&rcpt, "recipient", "", "recipient address (or part of one)")
	f.StringVar(&tenantName, "tenant", "", "tenant name or id")
	f.DurationVar(&older, "older-than", 0, "only deliveries accepted longer ago than this")
	f.IntVar(&limit, "limit", 1000, "at most this many rows (0: no limit)")
	f.StringVar(&cursor, "cursor", "", "continue a listing: the cursor its last line gave")
	return cmd
}

func printQueue(list api.QueueList) error {
	if list.Count == 0 && list.NextCursor == "" {
		fmt.Println("Mail queue is empty")
		return nil
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "MESSAGE\tDELIVERY\tSTATE\tLANE\tAGE\tATTEMPTS\tSENDER\tRECIPIENT\tLAST REPLY")
	now := time.Now()
	for _, d := range list.Items {
		sender := d.Sender
		if sender == "" {
			sender = "<>"
		}
		last := d.LastFailure()
		if last == "" {
			last = "-"
		}
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", d.MessageID, d.ID, d.State, d.Lane, now.Sub(d.CreatedAt).Round(time.Second),
			d.Attempts, sender, d.Recipient, clipText(last, 70))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Println(listFooter(list, "delivery", "deliveries"))
	return nil
}

// listFooter says how many rows were shown and, when the listing was cut,
// how to see the rest.
func listFooter(list api.QueueList, one, many string) string {
	if list.NextCursor == "" {
		return "-- " + plural(list.Count, one, many) + ", newest first"
	}
	return fmt.Sprintf("-- %s shown, newest first; more match: --cursor %s (or a larger --limit)",
		plural(list.Count, one, many), list.NextCursor)
}

// plural writes n with the right noun: "1 delivery", "3 deliveries",
// "1,000 deliveries".
func plural(n int, one, many string) string {
	noun := many
	if n == 1 {
		noun = one
	}
	return thousands(n) + " " + noun
}

func thousands(n int) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + thousands(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func clipText(s string, n int) string {
	if len(s) > n {
		return s[:n-3] + "..."
	}
	return s
}

func queueShowCmd(g *globals) *cobra.Command {
	var body bool
	cmd := &cobra.Command{
		Use:   "show ID",
		Short: "Show a message: envelope, headers, every attempt with its exact reply, events (postcat -q); --body prints the stored message (postcat -bq)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			if body {
				if _, err := c.Download(context.Background(), "GET", "/admin/v1/queue/"+url.PathEscape(args[0])+"/body", os.Stdout); err != nil {
					if strings.Contains(err.Error(), "not found") {
						return fmt.Errorf("no message with id %q (message ids are in the first column of posthorn queue list and posthorn dlq list)", args[0])
					}
					return err
				}
				return nil
			}
			var raw json.RawMessage
			if err := c.Do(context.Background(), "GET", "/admin/v1/queue/"+url.PathEscape(args[0]), nil, nil, &raw); err != nil {
				if adminclient.IsNotFound(err) {
					return fmt.Errorf("no message with id %q (message ids are in the first column of posthorn queue list and posthorn dlq list)", args[0])
				}
				return err
			}
			if g.json {
				_, err := os.Stdout.Write(raw)
				return err
			}
			var d api.MessageDetail
			if err := json.Unmarshal(raw, &d); err != nil {
				return err
			}
			m := d.Message
			sender := m.Sender
			if sender == "" {
				sender = "<>"
			}
			fmt.Printf("Message %s  (tenant %s, lane %s, %d bytes, via %s, accepted %s)\nSender: %s\n\n%s\n",
				m.ID, m.TenantID, m.Lane, m.Size, m.Source, m.CreatedAt.Format(time.RFC3339), sender, strings.TrimRight(d.Headers, "\r\n"))
			if !m.BodyPrunedAt.IsZero() {
				fmt.Printf("(body pruned %s by body_retention; headers and body are gone)\n", m.BodyPrunedAt.Format(time.RFC3339))
			}
			fmt.Println("\nDeliveries:")
			why := whyOf(c, m.ID)
			for _, dl := range d.Deliveries {
				next := " next=" + fmtTime(dl.NextAttemptAt)
				if dl.State.Final() {
					next = "" // nothing more will be tried
				}
				fmt.Printf("  %-5d %-40s %-12s attempts=%d%s last=%s\n", dl.ID, dl.Recipient, dl.State, dl.Attempts,
					next, dash(finalReason(dl, d.Events)))
				if it, ok := why[dl.ID]; ok && !dl.State.Final() {
					fmt.Printf("  %-40s why: %s\n", "", it.Detail)
				}
			}
			fmt.Println("\nAttempts:")
			for _, a := range d.Attempts {
				reply := a.Reply.String()
				if a.Reply.Code == 0 {
					reply = a.Error
				}
				fmt.Printf("  #%d delivery %d at %s via %s [%s] tls=%v %s/%s: %s\n", a.N, a.DeliveryID,
					a.StartedAt.Format(time.RFC3339), a.MX, a.IP, a.TLS, a.Phase, a.Class, reply)
				if t := a.TLSDetail; t.Policy != "" || t.Version != "" {
					fmt.Printf("      tls %s %s policy=%q check=%q\n", t.Version, t.Cipher, t.Policy, t.Result)
				}
			}
			fmt.Println("\nEvents:")
			for _, e := range d.Events {
				fmt.Printf("  %s %-12s %s %s %s\n", e.At.Format(time.RFC3339), e.Type, e.Recipient, replyOrDetail(e.Reply.Code, e.Reply.String(), e.Detail), "")
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&body, "body", false, "print the stored message as it will be sent (headers posthorn added, DKIM signature, body), like postcat -bq")
	return cmd
}

// finalReason is what ended a final delivery: the reply or detail of the
// event that moved it to its state (an asynchronous bounce arrives after
// a 250 and a suppression has no reply); else its last reply or error.
func finalReason(dl store.Delivery, evs []store.Event) string {
	if dl.State.Final() {
		for i := len(evs) - 1; i >= 0; i-- {
			e := evs[i]
			if e.DeliveryID != dl.ID || e.Type != string(dl.State) {
				continue
			}
			if r := replyOrDetail(e.Reply.Code, e.Reply.String(), e.Detail); r != "" {
				return r
			}
			break
		}
	}
	return dl.LastFailure()
}

// replyOrDetail is an event's reply and its detail: a throttle change's
// detail names the destination and the change, which the reply alone
// does not say.
func replyOrDetail(code int, reply, detail string) string {
	switch {
	case code == 0 || strings.Contains(detail, reply):
		return detail
	case detail == "":
		return reply
	}
	return reply + " -- " + detail
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Format(time.RFC3339)
}

func queueOpCmd(g *globals, name, short, path string) *cobra.Command {
	var sel ops.Selection
	cmd := &cobra.Command{
		Use:   name + " [MESSAGE-ID...]",
		Short: short,
		Long: short + `.

Say which deliveries: message ids (every recipient of each message),
--delivery N (one recipient: the DELIVERY column of the listings), --domain D,
or --all. An unknown id is an error; nothing is changed then.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			sel.IDs = args
			if len(args) == 0 && len(sel.DeliveryIDs) == 0 && sel.Domain == "" && !sel.All {
				return fmt.Errorf("say which deliveries: message ids, --delivery N, --domain D, or --all")
			}
			return runOp(g, path, sel)
		},
	}
	addSelectionFlags(cmd, &sel)
	return cmd
}

func addSelectionFlags(cmd *cobra.Command, sel *ops.Selection) {
	cmd.Flags().Int64SliceVar(&sel.DeliveryIDs, "delivery", nil, "delivery ids (one recipient each; repeat or comma separate)")
	cmd.Flags().StringVar(&sel.Domain, "domain", "", "all deliveries to this recipient domain")
	cmd.Flags().BoolVar(&sel.All, "all", false, "every delivery this applies to")
	cmd.Flags().StringVar(&sel.TenantID, "tenant", "", "only this tenant's deliveries (name or id)")
}

func queueRequeueCmd(g *globals) *cobra.Command {
	var req api.RequeueRequest
	cmd := &cobra.Command{
		Use:   "requeue [MESSAGE-ID...]",
		Short: "Retry messages now with a fresh lifetime; --dead takes every dead letter (postsuper -r)",
		RunE: func(cmd *cobra.Command, args []string) error {
			req.IDs = args
			if len(args) == 0 && len(req.DeliveryIDs) == 0 && req.Domain == "" && !req.All {
				if !req.Dead {
					return fmt.Errorf("say which deliveries: message ids, --delivery N, --dead, --domain D, or --all")
				}
				req.All = true // --dead is the selection: every dead letter
			}
			return runOp(g, "/admin/v1/queue/requeue", req)
		},
	}
	cmd.Flags().BoolVar(&req.Dead, "dead", false, "requeue dead letters")
	addSelectionFlags(cmd, &req.Selection)
	return cmd
}

func runOp(g *globals, path string, body any) error {
	c, err := g.client()
	if err != nil {
		return err
	}
	var raw json.RawMessage
	if err := c.Do(context.Background(), "POST", path, nil, body, &raw); err != nil {
		return err
	}
	if g.json {
		_, err := os.Stdout.Write(raw)
		return err
	}
	var res ops.OpResult
	if err := json.Unmarshal(raw, &res); err != nil {
		return err
	}
	fmt.Println(plural(res.Changed, "delivery", "deliveries") + " changed")
	return nil
}
