package main

import (
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/posthorn/posthorn/internal/server"
)

// storeFlag adds --store to a command that opens the store itself.
func storeFlag(cmd *cobra.Command, v *string) {
	cmd.Flags().StringVar(v, "store", "", `the store: "" for the embedded SQLite database in the data directory (default), or postgres://user@host/db, shared by every node of a cluster`)
}

func migrateCmd(g *globals) *cobra.Command {
	var storeURL string
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Bring the store's schema up to date, without starting the server",
		Long: `Run the store's schema migrations and exit. posthorn serve runs them on start too
(under a lock, so several nodes starting at once migrate a shared store once); migrate
lets an operator do it ahead of a rolling upgrade.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("store") {
				cfg.Store = storeURL
			}
			v, err := server.Migrate(&cfg)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(map[string]any{"schema_version": v})
			}
			fmt.Printf("schema is at version %d\n", v)
			return nil
		},
	}
	storeFlag(cmd, &storeURL)
	return cmd
}

func nodesCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "nodes",
		Short: "List the nodes sharing this node's store, with their last heartbeat and the deliveries each holds",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var rep server.NodesReport
			return g.show(server.PathNodes, nil, &rep, func() error {
				if !rep.Cluster {
					fmt.Println("single node (embedded store)")
				}
				w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "NODE\tSTATE\tLAST HEARTBEAT\tLEASES\tSENDING\tPID\tHOST")
				for _, n := range rep.Nodes {
					state := "alive"
					switch {
					case !n.Stopped.IsZero():
						state = "stopped"
					case !n.Alive:
						state = "dead"
					}
					name := n.Name
					if name == rep.Self {
						name += " (this)"
					}
					ago := time.Since(n.Heartbeat).Round(100 * time.Millisecond)
					fmt.Fprintf(w, "%s\t%s\t%s ago\t%d\t%d\t%d\t%s\n", name, state, ago, n.Leases, n.Sending, n.PID, n.Host)
				}
				return w.Flush()
			})
		},
	}
}
