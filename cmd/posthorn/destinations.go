package main

import (
	"fmt"
	"os"
	"sort"
	"strings"
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
	fmt.Fprintln(w, "DESTINATION\tCONNS\tALLOWED/MAX\tRATE/MIN\tREADY\tDEFERRED\tSENT(1m)\tPAUSED UNTIL\tRECENT")
	for _, d := range res.Items {
		rate := "unlimited"
		if d.Throttle.RatePerMinute > 0 {
			rate = fmt.Sprintf("%.0f", d.Throttle.RatePerMinute)
		}
		paused := "-"
		if d.Paused {
			paused = d.Throttle.PausedUntil.Format(time.RFC3339)
		}
		var recent []string
		for cls, n := range d.Recent {
			recent = append(recent, fmt.Sprintf("%s:%d", cls, n))
		}
		sort.Strings(recent)
		fmt.Fprintf(w, "%s\t%d\t%d/%d\t%s\t%d\t%d\t%d\t%s\t%s\n", d.Key, d.Connections, d.Throttle.Conns, d.Throttle.MaxConns, rate,
			d.Ready, d.Waiting, d.SentLastMin, paused, strings.Join(recent, " "))
	}
	return w.Flush()
}
