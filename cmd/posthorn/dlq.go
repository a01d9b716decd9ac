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
	var domain, provider, class, code, tenantName string
	var older time.Duration
	list := &cobra.Command{
		Use:   "list",
		Short: "List dead letters",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := query(map[string]string{"domain": domain, "provider": provider, "class": class, "code": code, "tenant": tenantName})
			if older > 0 {
				q.Set("older_than", older.String())
			}
			var l api.QueueList
			return g.show("/admin/v1/dlq", q, &l, func() error { return printDLQ(l) })
		},
	}
	f := list.Flags()
	f.StringVar(&domain, "domain", "", "recipient domain")
	f.StringVar(&provider, "provider", "", "provider (a group of domains sharing MX hosts)")
	f.StringVar(&class, "class", "", "last class, e.g. rate_limited, connection_error")
	f.StringVar(&code, "code", "", "last reply code, e.g. 421")
	f.StringVar(&tenantName, "tenant", "", "tenant id")
	f.DurationVar(&older, "older-than", 0, "accepted longer ago than this")

	show := &cobra.Command{
		Use:   "show ID",
		Short: "Show a dead letter's message with every attempt and its exact reply",
		Args:  cobra.ExactArgs(1),
		RunE:  queueShowCmd(g).RunE,
	}
	retry := queueOpCmd(g, "retry", "Retry dead letters now with a fresh lifetime", "/admin/v1/dlq/retry", false)
	purge := queueOpCmd(g, "purge", "Remove dead letters (they become cancelled; their history stays)", "/admin/v1/dlq/purge", false)
	cmd.AddCommand(list, show, retry, purge)
	return cmd
}

func printDLQ(l api.QueueList) error {
	if l.Count == 0 {
		fmt.Println("The dead-letter queue is empty")
		return nil
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "MESSAGE\tRECIPIENT\tATTEMPTS\tLAST ATTEMPT\tCLASS\tMX\tLAST REPLY")
	for _, d := range l.Items {
		reply := d.LastReply.String()
		if d.LastReply.Code == 0 {
			reply = "-"
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\t%s\t%s\n", d.MessageID, d.Recipient, d.Attempts, fmtTime(d.LastAttemptAt),
			d.LastClass, d.LastMX, clipText(reply, 70))
	}
	fmt.Fprintf(w, "-- %d dead letters\n", l.Count)
	return w.Flush()
}
