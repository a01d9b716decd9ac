package main

import (
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/posthorn/posthorn/internal/api"
)

func dlqCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "dlq", Short: "The dead-letter queue: deliveries that ran out of retries, with full failure context"}
	var domain, provider, class, code, tenantName, cursor string
	var older time.Duration
	var limit int
	list := &cobra.Command{
		Use:   "list",
		Short: "List dead letters, newest first, with the last failure (reply or error)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := query(map[string]string{"domain": domain, "provider": provider, "class": class, "code": code, "tenant": tenantName, "cursor": cursor})
			if older > 0 {
				q.Set("older_than", older.String())
			}
			q.Set("limit", fmt.Sprint(limit))
			var l api.QueueList
			return g.show("/admin/v1/dlq", q, &l, func() error { return printDLQ(l) })
		},
	}
	f := list.Flags()
	f.StringVar(&domain, "domain", "", "recipient domain")
	f.StringVar(&provider, "provider", "", "provider (a group of domains sharing MX hosts)")
	f.StringVar(&class, "class", "", "last class, e.g. rate_limited, connection_error")
	f.StringVar(&code, "code", "", "last reply code, e.g. 421")
	f.StringVar(&tenantName, "tenant", "", "tenant name or id")
	f.DurationVar(&older, "older-than", 0, "accepted longer ago than this")
	f.IntVar(&limit, "limit", 1000, "at most this many rows (0: no limit)")
	f.StringVar(&cursor, "cursor", "", "continue a listing: the cursor its last line gave")

	show := &cobra.Command{
		Use:   "show ID",
		Short: "Show a dead letter's message with every attempt and its exact reply",
		Args:  cobra.ExactArgs(1),
		RunE:  queueShowCmd(g).RunE,
	}
	retry := queueOpCmd(g, "retry", "Retry dead letters now with a fresh lifetime", "/admin/v1/dlq/retry")
	purge := queueOpCmd(g, "purge", "Remove dead letters (they become cancelled; their history stays)", "/admin/v1/dlq/purge")
	cmd.AddCommand(list, show, retry, purge)
	return cmd
}

func printDLQ(l api.QueueList) error {
	if l.Count == 0 && l.NextCursor == "" {
		fmt.Println("The dead-letter queue is empty")
		return nil
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "MESSAGE\tDELIVERY\tRECIPIENT\tATTEMPTS\tLAST ATTEMPT\tCLASS\tPROVIDER\tMX\tLAST REPLY OR ERROR")
	for _, d := range l.Items {
		reply := d.LastFailure()
		if reply == "" {
			reply = "-"
		}
		fmt.Fprintf(w, "%s\t%d\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", d.MessageID, d.ID, d.Recipient, d.Attempts, fmtTime(d.LastAttemptAt),
			d.LastClass, dash(d.Provider), dash(d.LastMX), clipText(reply, 70))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Println(listFooter(l, "dead letter", "dead letters"))
	return nil
}
