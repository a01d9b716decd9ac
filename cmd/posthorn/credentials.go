package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/posthorn/posthorn/internal/api"
	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/tenant"
)

func userCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "user", Short: "Manage SMTP submission users"}
	var req api.UserRequest
	var domains string
	add := &cobra.Command{
		Use:   "add USERNAME",
		Short: "Add an SMTP user (a password is generated unless --password is given)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req.Username, req.Domains = args[0], splitList(domains)
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
			if len(res.Domains) > 0 {
				fmt.Printf("  may send only from: %s\n", strings.Join(res.Domains, ", "))
			}
			return nil
		},
	}
	add.Flags().StringVar(&req.Tenant, "tenant", "", "tenant name or id (default: the default tenant)")
	add.Flags().StringVar(&req.Password, "password", "", "password (default: generated)")
	add.Flags().StringVar(&req.Lane, "lane", "", "default lane for this user's mail: high, normal, low")
	add.Flags().StringVar(&domains, "domain", "", "sender domains this user may use, comma separated (default: any of the tenant's)")
	add.Flags().BoolVar(&req.DSN, "dsn", false, "send the envelope sender a DSN (bounce notice) when this user's mail finally fails")
	add.Flags().BoolVar(&req.MessageIDIdempotency, "message-id-idempotency", false, "treat the Message-ID header as an idempotency key: a resubmission is answered, not queued again")

	var listTenant string
	list := &cobra.Command{
		Use:   "list",
		Short: "List SMTP users",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var res struct{ Items []store.SMTPUser }
			return g.show("/admin/v1/users", query(map[string]string{"tenant": listTenant}), &res, func() error {
				tw := tabwriter.NewWriter(os.Stdout, 2, 8, 2, ' ', 0)
				fmt.Fprintln(tw, "USERNAME\tTENANT\tLANE\tDOMAINS\tDSN\tMESSAGE-ID IDEMPOTENCY\tCREATED")
				for _, u := range res.Items {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", u.Username, u.TenantID, u.DefaultLane, orAny(u.Domains),
						yesNo(u.SendDSN), yesNo(u.IdempotentMessageID), when(u.CreatedAt, "-"))
				}
				return tw.Flush()
			})
		},
	}
	list.Flags().StringVar(&listTenant, "tenant", "", "only this tenant's users (name or id)")
	rm := removeCmd(g, "USERNAME", "Remove an SMTP user (records a credential_revoked event)", "/admin/v1/users/")
	rm.Aliases = []string{"revoke"}
	addQuotaFlags(add)
	cmd.AddCommand(add, list, rm, userPasswdCmd(g), releaseCmd(g, "user"), quotaSetCmd(g, "user"))
	return cmd
}

func userPasswdCmd(g *globals) *cobra.Command {
	var pw, tn string
	var generate bool
	c := &cobra.Command{
		Use:   "passwd USERNAME",
		Short: "Set an SMTP user's password: --password, --generate, or asked for (read from stdin when not a terminal)",
		Long: `Set an SMTP user's password. The old password stops working at once; a
password_changed event records the change.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if pw == "" && !generate {
				var err error
				if pw, err = readPassword(os.Stdin, os.Stderr, "New password for "+args[0]); err != nil {
					return err
				}
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			var res struct {
				Username string `json:"username"`
				Password string `json:"password"`
			}
			if err := c.Do(cmd.Context(), "POST", "/admin/v1/users/"+url.PathEscape(args[0])+"/password",
				query(map[string]string{"tenant": tn}), api.PasswordRequest{Password: pw}, &res); err != nil {
				return err
			}
			if g.json {
				return printJSON(res)
			}
			fmt.Println("password changed for", res.Username)
			if generate {
				fmt.Println("  password:", res.Password)
			}
			return nil
		},
	}
	c.Flags().StringVar(&pw, "password", "", "the new password (default: asked for, or read from stdin)")
	c.Flags().BoolVar(&generate, "generate", false, "generate a password and print it once")
	c.Flags().StringVar(&tn, "tenant", "", "only if the user belongs to this tenant")
	return c
}

// removeCmd deletes path+ARG; with --tenant, something of another tenant
// is not found.
func removeCmd(g *globals, arg, short, path string) *cobra.Command {
	var tn string
	c := &cobra.Command{
		Use:   "remove " + arg,
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			var res json.RawMessage
			if err := c.Do(context.Background(), "DELETE", path+url.PathEscape(args[0]), query(map[string]string{"tenant": tn}), nil, &res); err != nil {
				return err
			}
			if g.json {
				_, err := os.Stdout.Write(res)
				return err
			}
			fmt.Println("removed", args[0])
			return nil
		},
	}
	c.Flags().StringVar(&tn, "tenant", "", "only if it belongs to this tenant")
	return c
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func orAny(ds []string) string {
	if len(ds) == 0 {
		return "(any)"
	}
	return strings.Join(ds, ",")
}

func apikeyCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "apikey", Short: "Manage HTTP API keys"}
	var req api.KeyRequest
	var scopes, role, domains, expires string
	create := &cobra.Command{
		Use:   "create",
		Short: "Create an API key (shown once)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req.Scopes, req.Domains = splitList(scopes), splitList(domains)
			if role != "" {
				if cmd.Flags().Changed("scope") {
					return fmt.Errorf("give --scope or --role, not both")
				}
				r, err := tenant.ParseRole(role)
				if err != nil {
					return err
				}
				req.Scopes = tenant.RoleScopes(r)
			}
			if expires != "" {
				at, err := parseExpiry(expires, time.Now())
				if err != nil {
					return err
				}
				req.ExpiresAt = &at
			}
			var res api.KeyResponse
			if err := call(g, "POST", "/admin/v1/apikeys", req, &res); err != nil {
				return err
			}
			if g.json {
				return printJSON(res)
			}
			kind := "API key"
			if res.Sandbox {
				kind = "Sandbox API key (mail is stored, never sent)"
			}
			fmt.Printf("%s %q for tenant %s, scopes %s:\n  %s\n", kind, res.Name, res.Tenant, strings.Join(res.Scopes, ","), res.APIKey)
			if len(res.Domains) > 0 {
				fmt.Printf("  may send only from: %s\n", strings.Join(res.Domains, ", "))
			}
			if !res.ExpiresAt.IsZero() {
				fmt.Printf("  expires: %s\n", res.ExpiresAt.Format(time.RFC3339))
			}
			return nil
		},
	}
	create.Flags().StringVar(&req.Tenant, "tenant", "", "tenant name or id (default: the default tenant)")
	create.Flags().StringVar(&req.Name, "name", "", "a name to recognise the key by")
	create.Flags().StringVar(&scopes, "scope", "send,read", "scopes, comma separated: send, read, admin")
	create.Flags().StringVar(&role, "role", "", "scopes of a role instead of --scope: viewer (read), sender (send,read), admin or owner (all)")
	create.Flags().StringVar(&domains, "domain", "", "sender domains this key may use, comma separated (default: any of the tenant's)")
	create.Flags().BoolVar(&req.Sandbox, "sandbox", false, "a sandbox key (ph_test_): its mail is accepted and shown delivered, never sent")
	create.Flags().StringVar(&expires, "expires", "", "expiry: a duration such as 30d or 12h, or an RFC 3339 time (default: never)")

	var listTenant string
	list := &cobra.Command{
		Use:   "list",
		Short: "List API keys (prefixes, never secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var res struct{ Items []store.APIKey }
			return g.show("/admin/v1/apikeys", query(map[string]string{"tenant": listTenant}), &res, func() error {
				tw := tabwriter.NewWriter(os.Stdout, 2, 8, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tPREFIX\tTENANT\tNAME\tSCOPES\tDOMAINS\tEXPIRES\tLAST USED\tCREATED BY")
				for _, k := range res.Items {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Prefix, k.TenantID, k.Name, strings.Join(k.Scopes, ","),
						orAny(k.Domains), when(k.ExpiresAt, "never"), when(k.LastUsedAt, "-"), k.CreatedBy)
				}
				return tw.Flush()
			})
		},
	}
	list.Flags().StringVar(&listTenant, "tenant", "", "only this tenant's keys (name or id)")
	rm := removeCmd(g, "ID", "Remove (revoke) an API key (records a credential_revoked event)", "/admin/v1/apikeys/")
	rm.Aliases = []string{"revoke"}
	cmd.AddCommand(create, list, rm, releaseCmd(g, "apikey"), quotaSetCmd(g, "apikey"))
	return cmd
}

func when(t time.Time, zero string) string {
	if t.IsZero() {
		return zero
	}
	return t.Local().Format("2006-01-02 15:04")
}

// parseExpiry reads "30d", "12h", "90m" (from now) or an RFC 3339 time.
func parseExpiry(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days <= 0 {
			return time.Time{}, fmt.Errorf("--expires %q: want a number of days such as 30d", s)
		}
		return now.Add(time.Duration(days) * 24 * time.Hour), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return time.Time{}, fmt.Errorf("--expires %q: want 30d, 12h or an RFC 3339 time", s)
	}
	return now.Add(d), nil
}
