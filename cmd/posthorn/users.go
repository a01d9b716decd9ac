package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/posthorn/posthorn/internal/api"
	"github.com/posthorn/posthorn/internal/store"
)

func tenantCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "tenant", Short: "Manage tenants"}
	add := &cobra.Command{
		Use:   "add NAME",
		Short: "Add a tenant",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var res json.RawMessage
			if err := call(g, "POST", "/admin/v1/tenants", api.TenantRequest{Name: args[0]}, &res); err != nil {
				return err
			}
			if g.json {
				_, err := os.Stdout.Write(res)
				return err
			}
			var t store.Tenant
			if err := json.Unmarshal(res, &t); err != nil {
				return err
			}
			fmt.Printf("tenant %s added (id %s)\n", t.Name, t.ID)
			return nil
		},
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List tenants",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var res struct{ Items []store.Tenant }
			return g.show("/admin/v1/tenants", nil, &res, func() error {
				tw := tabwriter.NewWriter(os.Stdout, 2, 8, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tID\tCREATED")
				for _, t := range res.Items {
					fmt.Fprintf(tw, "%s\t%s\t%s\n", t.Name, t.ID, when(t.CreatedAt, "-"))
				}
				return tw.Flush()
			})
		},
	}
	cmd.AddCommand(add, list, tenantRemoveCmd(g))
	return cmd
}

func tenantRemoveCmd(g *globals) *cobra.Command {
	var force bool
	c := &cobra.Command{
		Use:   "remove NAME",
		Short: "Remove a tenant with its SMTP users, API keys and accounts (refused while it has pending mail, unless --force)",
		Long: `Remove a tenant with its SMTP users, API keys and accounts; its mail and events stay
as history, and a tenant_removed event records the removal. Refused while the
tenant has pending mail (--force cancels it first), sending domains or webhook
endpoints (remove those first). The default tenant cannot be removed.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			q := url.Values{}
			if force {
				q.Set("force", "1")
			}
			var res struct {
				Removed   string `json:"removed"`
				ID        string `json:"id"`
				Cancelled int    `json:"cancelled"`
			}
			if err := c.Do(cmd.Context(), "DELETE", "/admin/v1/tenants/"+url.PathEscape(args[0]), q, nil, &res); err != nil {
				return err
			}
			if g.json {
				return printJSON(res)
			}
			fmt.Printf("removed tenant %s (id %s); %s cancelled\n", res.Removed, res.ID, plural(res.Cancelled, "pending delivery", "pending deliveries"))
			return nil
		},
	}
	c.Flags().BoolVar(&force, "force", false, "cancel the tenant's pending mail and remove it")
	return c
}

func call(g *globals, method, path string, body, out any) error {
	c, err := g.client()
	if err != nil {
		return err
	}
	return c.Do(context.Background(), method, path, nil, body, out)
}
