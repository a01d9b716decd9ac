package main

import (
	"context"
	"encoding/json"
	"os"

	"github.com/spf13/cobra"

	"github.com/posthorn/posthorn/internal/api"
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
			_, err := os.Stdout.Write(res)
			return err
		},
	}
	cmd.AddCommand(add, listCmd(g, "list", "List tenants", "/admin/v1/tenants"))
	return cmd
}

func listCmd(g *globals, use, short, path string) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var res json.RawMessage
			if err := call(g, "GET", path, nil, &res); err != nil {
				return err
			}
			_, err := os.Stdout.Write(res)
			return err
		},
	}
}

func call(g *globals, method, path string, body, out any) error {
	c, err := g.client()
	if err != nil {
		return err
	}
	return c.Do(context.Background(), method, path, nil, body, out)
}
