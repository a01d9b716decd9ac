package main

import (
	"context"
	"encoding/json"
	"fmt"
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
	cmd.AddCommand(add, list)
	return cmd
}

func call(g *globals, method, path string, body, out any) error {
	c, err := g.client()
	if err != nil {
		return err
	}
	return c.Do(context.Background(), method, path, nil, body, out)
}
