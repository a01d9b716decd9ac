package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/user"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/posthorn/posthorn/internal/api"
	"github.com/posthorn/posthorn/internal/queue/ops"
)

func destinationsCmd(g *globals) *cobra.Command {
	var tenantName string
	cmd := &cobra.Command{
		Use:   "destinations",
		Short: "List destinations with their limits, adapted values, connections, pending mail, pauses and last failure",
		Long: `List destinations: every one the scheduler holds state for, and every one with pending
mail in the queue (even when all of it waits for a retry), with the latest failure there.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var res struct {
				Items []ops.DestinationRow `json:"items"`
			}
			return g.show("/admin/v1/destinations", query(map[string]string{"tenant": tenantName}), &res, func() error { return printDestinations(res.Items) })
		},
	}
	cmd.Flags().StringVar(&tenantName, "tenant", "", "only destinations with this tenant's pending mail, counted for it (name or id)")
	cmd.AddCommand(destinationPauseCmd(g, "pause"), destinationPauseCmd(g, "resume"))
	return cmd
}

// destinationPauseCmd is `destinations pause KEY [--for D]` and
// `destinations resume KEY`: an operator's pause, kept in the server's
// memory (a restart clears it).
func destinationPauseCmd(g *globals, action string) *cobra.Command {
	var dur string
	cmd := &cobra.Command{
		Use:   action + " DESTINATION",
		Short: "Pause a destination: no new connections to it, its mail waits (until --for ends, or resume; a restart clears it)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			by := "cli"
			if u, err := user.Current(); err == nil {
				by = "cli:" + u.Username
			}
			var res api.PauseResult
			req := api.PauseRequest{For: dur, By: by}
			if err := c.Do(context.Background(), "POST", "/admin/v1/destinations/"+url.PathEscape(args[0])+"/"+action, nil, req, &res); err != nil {
				return err
			}
			if g.json {
				return printJSON(res)
			}
			fmt.Println(res.Message)
			return nil
		},
	}
	if action == "pause" {
		cmd.Flags().StringVar(&dur, "for", "", "pause for this long (e.g. 30m, 2h); default: until resumed")
	} else {
		cmd.Short = "Resume a destination an operator paused"
	}
	return cmd
}

func printDestinations(items []ops.DestinationRow) error {
	if len(items) == 0 {
		fmt.Println("No destinations: nothing pending, nothing sent recently")
		return nil
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "DESTINATION\tPENDING\tCONNS\tALLOWED/MAX\tRATE/MIN\tREADY\tDEFERRED\tSENT(1m)\tPAUSED UNTIL\tRECENT\tLAST FAILURE")
	for _, d := range items {
		rate := "unlimited"
		if d.Throttle.RatePerMinute > 0 {
			rate = fmt.Sprintf("%.0f", d.Throttle.RatePerMinute)
		}
		paused := "-"
		switch {
		case d.Manual != nil && d.Manual.Until.IsZero():
			paused = "resume (by " + d.Manual.By + ")"
		case d.Manual != nil:
			paused = d.Manual.Until.Format(time.RFC3339) + " (by " + d.Manual.By + ")"
		case d.Paused:
			paused = d.Throttle.PausedUntil.Format(time.RFC3339)
		}
		var recent []string
		for cls, n := range d.Recent {
			recent = append(recent, fmt.Sprintf("%s:%d", cls, n))
		}
		sort.Strings(recent)
		last := "-"
		if d.LastFailure != "" {
			last = clipText(d.LastFailure, 70) + " (" + d.LastFailureAt.Format(time.RFC3339) + ")"
		}
		fmt.Fprintf(w, "%s\t%d\t%d\t%d/%d\t%s\t%d\t%d\t%d\t%s\t%s\t%s\n", d.Key, d.Pending, d.Connections, d.Throttle.Conns, d.Throttle.MaxConns, rate,
			d.Ready, d.Waiting, d.SentLastMin, paused, dash(strings.Join(recent, " ")), last)
	}
	return w.Flush()
}
