package main

import (
	"fmt"
	"os"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/posthorn/posthorn/internal/queue"
)

func destinationsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "destinations",
		Short: "List destinations with their limits, adapted values, connections, ready mail and pauses",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var res struct {
				Items []queue.DestinationInfo `json:"items"`
			}
			return g.show("/admin/v1/destinations", nil, &res, func() error { return printDestinations(res.Items) })
		},
	}
}

func printDestinations(items []queue.DestinationInfo) error {
	res := struct{ Items []queue.DestinationInfo }{items}
	sort.Slice(res.Items, func(i, j int) bool { return res.Items[i].Key < res.Items[j].Key })
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "DESTINATION\tCONNS\tALLOWED/MAX\tRATE/MIN\tREADY\tSENT(1m)\tPAUSED UNTIL")
	for _, d := range res.Items {
		rate := "unlimited"
		if d.Throttle.RatePerMinute > 0 {
			rate = fmt.Sprintf("%.0f", d.Throttle.RatePerMinute)
		}
		paused := "-"
		if d.Paused {
			paused = d.Throttle.PausedUntil.Format(time.RFC3339)
		}
		fmt.Fprintf(w, "%s\t%d\t%d/%d\t%s\t%d\t%d\t%s\n", d.Key, d.Connections, d.Throttle.Conns, d.Throttle.MaxConns, rate,
			d.Ready, d.SentLastMin, paused)
	}
	return w.Flush()
}
