package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/posthorn/posthorn/internal/api/adminclient"
	"github.com/posthorn/posthorn/internal/queue/ops"
)

func queueWhyCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "why ID",
		Short: "Say why each recipient of a message is not being sent this second",
		Long: `For each pending recipient, the first reason that applies: held (by whom, since when),
scheduled (send_at), being sent now, backoff after a reply (next attempt time), destination paused
after a rate-limit reply (until when), rate or connection limit reached (limit and current value),
behind higher-priority deliveries, or ready.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var res ops.WhyResponse
			return g.show("/admin/v1/queue/"+url.PathEscape(args[0])+"/why", nil, &res, func() error {
				w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
				fmt.Fprintln(w, "RECIPIENT\tSTATE\tDESTINATION\tREASON\tDETAIL")
				for _, it := range res.Recipients {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", it.Recipient, it.State, it.Destination, it.Reason, it.Detail)
				}
				return w.Flush()
			})
		},
	}
}

func queueSummaryCmd(g *globals) *cobra.Command {
	var state string
	var limit int
	cmd := &cobra.Command{
		Use:   "summary",
		Short: "Pending deliveries by destination and age (qshape)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var s ops.QueueSummary
			return g.show("/admin/v1/queue/summary", query(map[string]string{"state": state}), &s, func() error {
				return printSummary(s, limit)
			})
		},
	}
	cmd.Flags().StringVar(&state, "state", "", "pending states, comma separated (default: every pending state)")
	cmd.Flags().IntVar(&limit, "limit", 50, "at most this many destinations, most deliveries first (0: all)")
	return cmd
}

func printSummary(s ops.QueueSummary, limit int) error {
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(w, "DESTINATION\tT\t")
	for _, c := range s.Columns {
		fmt.Fprint(w, c, "\t")
	}
	fmt.Fprintln(w)
	row := func(r ops.SummaryRow) {
		fmt.Fprintf(w, "%s\t%d\t", r.Destination, r.Total)
		for _, n := range r.Counts {
			fmt.Fprintf(w, "%d\t", n)
		}
		fmt.Fprintln(w)
	}
	row(s.Total)
	for i, r := range s.Rows {
		if limit > 0 && i >= limit {
			fmt.Fprintf(w, "(%d more destinations)\t\n", len(s.Rows)-limit)
			break
		}
		row(r)
	}
	return w.Flush()
}

// whyOf fetches the why-reasons of message id by delivery ID (nil when
// the server cannot say).
func whyOf(c *adminclient.Client, id string) map[int64]ops.WhyItem {
	var res ops.WhyResponse
	if err := c.Do(context.Background(), "GET", "/admin/v1/queue/"+url.PathEscape(id)+"/why", nil, nil, &res); err != nil {
		return nil
	}
	out := map[int64]ops.WhyItem{}
	for _, it := range res.Recipients {
		out[it.DeliveryID] = it
	}
	return out
}
