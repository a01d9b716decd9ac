package main

import (
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/posthorn/posthorn/internal/api"
	"github.com/posthorn/posthorn/internal/store"
)

func suppressionCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "suppression", Short: "Per-tenant suppression lists: who must not be mailed"}
	var tenantName, reason, detail string
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
			return call(g, "DELETE", "/admin/v1/suppressions", api.SuppressionRequest{Tenant: tenantName, Entry: args[0]}, nil)
		},
	}
	remove.Flags().StringVar(&tenantName, "tenant", "", "tenant name or id")
	list := &cobra.Command{
		Use:   "list",
		Short: "List entries",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var res struct {
				Items []store.Suppression `json:"items"`
			}
			return g.show("/admin/v1/suppressions", query(map[string]string{"tenant": tenantName}), &res, func() error {
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
	list.Flags().StringVar(&tenantName, "tenant", "", "only this tenant")
	cmd.AddCommand(add, remove, list)
	return cmd
}
