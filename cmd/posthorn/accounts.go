package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/posthorn/posthorn/internal/api"
	"github.com/posthorn/posthorn/internal/store"
)

func accountCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "account", Short: "Manage accounts: people who use the API (email, password, role in a tenant)"}
	var req api.AccountRequest
	add := &cobra.Command{
		Use:   "add EMAIL",
		Short: "Add an account with a role: owner, admin, sender or viewer (no --tenant: an owner of the installation)",
		Long: "Add an account. Without --password the password is asked for on a terminal, or read from the first line\n" +
			"of stdin when stdin is not a terminal. Without --tenant the account owns the installation (role owner).",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req.Email = args[0]
			if req.Password == "" {
				pw, err := readPassword(os.Stdin, os.Stderr, "Password for "+req.Email)
				if err != nil {
					return err
				}
				req.Password = pw
			}
			var res api.AccountResponse
			if err := call(g, "POST", "/admin/v1/accounts", req, &res); err != nil {
				return err
			}
			if g.json {
				return printJSON(res)
			}
			fmt.Printf("account %s: role %s in %s\n", res.Email, res.Role, tenantLabel(res.TenantID))
			return nil
		},
	}
	add.Flags().StringVar(&req.Tenant, "tenant", "", "tenant name or id (none: the account owns the installation)")
	add.Flags().StringVar(&req.Role, "role", "", "owner, admin, sender or viewer")
	add.Flags().StringVar(&req.Password, "password", "", "password (default: asked for, or read from stdin)")
	add.MarkFlagRequired("role")

	var listTenant string
	list := &cobra.Command{
		Use:   "list",
		Short: "List accounts",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var res struct{ Items []store.Account }
			return g.show("/admin/v1/accounts", query(map[string]string{"tenant": listTenant}), &res, func() error {
				tw := tabwriter.NewWriter(os.Stdout, 2, 8, 2, ' ', 0)
				fmt.Fprintln(tw, "EMAIL\tTENANT\tROLE\tCREATED")
				for _, a := range res.Items {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", a.Email, tenantLabel(a.TenantID), a.Role, when(a.CreatedAt, "-"))
				}
				return tw.Flush()
			})
		},
	}
	list.Flags().StringVar(&listTenant, "tenant", "", "only this tenant's accounts")

	var pw, pwTenant string
	passwd := &cobra.Command{
		Use:   "passwd EMAIL",
		Short: "Set an account's password (asked for, or read from stdin, without --password)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if pw == "" {
				var err error
				if pw, err = readPassword(os.Stdin, os.Stderr, "New password for "+args[0]); err != nil {
					return err
				}
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			var res map[string]any
			if err := c.Do(cmd.Context(), "POST", "/admin/v1/accounts/"+url.PathEscape(args[0])+"/password",
				query(map[string]string{"tenant": pwTenant}), api.PasswordRequest{Password: pw}, &res); err != nil {
				return err
			}
			if g.json {
				return printJSON(res)
			}
			fmt.Println("password changed for", args[0])
			return nil
		},
	}
	passwd.Flags().StringVar(&pw, "password", "", "the new password (default: asked for, or read from stdin)")
	passwd.Flags().StringVar(&pwTenant, "tenant", "", "only if the account belongs to this tenant")
	cmd.AddCommand(add, list, removeCmd(g, "EMAIL", "Remove an account and the API keys it created", "/admin/v1/accounts/"), passwd)
	return cmd
}

func tenantLabel(id string) string {
	if id == "" {
		return "(installation)"
	}
	return id
}

// readPassword asks twice on a terminal (without echo), or reads the
// first line of in when it is not a terminal (for scripts).
func readPassword(in *os.File, prompt io.Writer, what string) (string, error) {
	fd := int(in.Fd())
	if !isTerminal(fd) {
		line, err := bufio.NewReader(in).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("read password from stdin: %w", err)
		}
		pw := strings.TrimRight(line, "\r\n")
		if pw == "" {
			return "", errors.New("no password: give --password, or one line on stdin")
		}
		return pw, nil
	}
	r := bufio.NewReader(in)
	ask := func(p string) (string, error) {
		fmt.Fprint(prompt, p+": ")
		var line string
		err := withoutEcho(fd, func() error {
			var err error
			line, err = r.ReadString('\n')
			return err
		})
		fmt.Fprintln(prompt)
		return strings.TrimRight(line, "\r\n"), err
	}
	pw, err := ask(what)
	if err != nil {
		return "", err
	}
	again, err := ask("Again")
	if err != nil {
		return "", err
	}
	if pw != again {
		return "", errors.New("the passwords differ")
	}
	if pw == "" {
		return "", errors.New("empty password")
	}
	return pw, nil
}
