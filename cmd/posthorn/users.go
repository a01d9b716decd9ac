package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/posthorn/posthorn/internal/api"
)

func userCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "user", Short: "Manage SMTP submission users"}
	var req api.UserRequest
	add := &cobra.Command{
		Use:   "add USERNAME",
		Short: "Add an SMTP user (a password is generated unless --password is given)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req.Username = args[0]
			var res api.UserResponse
			if err := call(g, "POST", "/admin/v1/users", req, &res); err != nil {
				return err
			}
			if q, ok := quotaFlags(cmd, "user", args[0]); ok {
				if err := call(g, "POST", "/admin/v1/abuse/quota", q, nil); err != nil {
					return fmt.Errorf("user %s added, but its quota was not set: %w", args[0], err)
				}
			}
			if g.json {
				return printJSON(res)
			}
			fmt.Printf("SMTP user %s (tenant %s, lane %s)\n  password: %s\n", res.Username, res.Tenant, res.Lane, res.Password)
			return nil
		},
	}
	add.Flags().StringVar(&req.Tenant, "tenant", "", "tenant name or id (default: the default tenant)")
	add.Flags().StringVar(&req.Password, "password", "", "password (default: generated)")
	add.Flags().StringVar(&req.Lane, "lane", "", "default lane for this user's mail: high, normal, low")
	add.Flags().BoolVar(&req.DSN, "dsn", false, "send the envelope sender a DSN (bounce notice) when this user's mail finally fails")
	add.Flags().BoolVar(&req.MessageIDIdempotency, "message-id-idempotency", false, "treat the Message-ID header as an idempotency key: a resubmission is answered, not queued again")
	addQuotaFlags(add)
	cmd.AddCommand(add, listCmd(g, "list", "List SMTP users", "/admin/v1/users"), releaseCmd(g, "user"), quotaSetCmd(g, "user"))
	return cmd
}

func apikeyCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "apikey", Short: "Manage HTTP API keys"}
	var req api.KeyRequest
	var scopes string
	create := &cobra.Command{
		Use:   "create",
		Short: "Create an API key (shown once)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req.Scopes = splitList(scopes)
			var res api.KeyResponse
			if err := call(g, "POST", "/admin/v1/apikeys", req, &res); err != nil {
				return err
			}
			if g.json {
				return printJSON(res)
			}
			fmt.Printf("API key %q for tenant %s, scopes %s:\n  %s\n", res.Name, res.Tenant, strings.Join(res.Scopes, ","), res.APIKey)
			return nil
		},
	}
	create.Flags().StringVar(&req.Tenant, "tenant", "", "tenant name or id (default: the default tenant)")
	create.Flags().StringVar(&req.Name, "name", "", "a name to recognise the key by")
	create.Flags().StringVar(&scopes, "scope", "send,read", "scopes, comma separated: send, read, admin")
	cmd.AddCommand(create, listCmd(g, "list", "List API keys (without secrets)", "/admin/v1/apikeys"), releaseCmd(g, "apikey"), quotaSetCmd(g, "apikey"))
	return cmd
}

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
