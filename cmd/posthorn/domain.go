package main

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/spf13/cobra"

	"github.com/posthorn/posthorn/internal/api"
	"github.com/posthorn/posthorn/internal/domain"
)

func domainCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "domain", Short: "Manage sending domains and their DKIM keys"}
	var req api.DomainRequest
	add := &cobra.Command{
		Use:   "add DOMAIN",
		Short: "Add a sending domain with a new DKIM key and print the DNS records to publish",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req.Domain = args[0]
			var res domain.Info
			if err := call(g, "POST", "/admin/v1/domains", req, &res); err != nil {
				return err
			}
			if g.json {
				return printJSON(res)
			}
			printDomain(&res)
			return nil
		},
	}
	add.Flags().StringVar(&req.Tenant, "tenant", "", "tenant name or id (default: the default tenant)")
	add.Flags().StringVar(&req.Algorithm, "algorithm", "rsa", "DKIM key: rsa (2048 bits) or ed25519")
	add.Flags().StringVar(&req.Selector, "selector", "", "DKIM selector (default: generated)")
	add.Flags().BoolVar(&req.UnverifiedOK, "unverified-ok", false, "sign and send before the DKIM record is seen in DNS")

	var tenant string
	list := &cobra.Command{
		Use:   "list",
		Short: "List sending domains",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var res struct {
				Items []domain.Info `json:"items"`
			}
			return g.show("/admin/v1/domains", query(map[string]string{"tenant": tenant}), &res, func() error {
				fmt.Printf("%-30s %-14s %-9s %-20s %s\n", "DOMAIN", "TENANT", "STATUS", "SELECTOR", "CHECKED")
				for _, d := range res.Items {
					checked := "never"
					if !d.CheckedAt.IsZero() {
						checked = d.CheckedAt.Format("2006-01-02 15:04:05")
					}
					fmt.Printf("%-30s %-14s %-9s %-20s %s\n", d.Domain, d.Tenant, d.Status, d.Selector+"/"+d.Algorithm, checked)
				}
				return nil
			})
		},
	}
	list.Flags().StringVar(&tenant, "tenant", "", "only this tenant's domains")

	show := &cobra.Command{
		Use:   "show DOMAIN",
		Short: "Show a domain, its keys and the records to publish",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var res domain.Info
			return g.show("/admin/v1/domains/"+url.PathEscape(args[0]), nil, &res, func() error {
				printDomain(&res)
				return nil
			})
		},
	}
	check := &cobra.Command{
		Use:   "check DOMAIN",
		Short: "Look up the domain's records in DNS and report each as ok, missing or wrong",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var res domain.Report
			if err := call(g, "POST", "/admin/v1/domains/"+url.PathEscape(args[0])+"/check", nil, &res); err != nil {
				return err
			}
			if g.json {
				return printJSON(res)
			}
			fmt.Printf("%s: %s\n", res.Domain, res.Status)
			for _, r := range res.Records {
				fmt.Printf("  %-8s %-5s %s\n", r.Status, r.Type, r.Name)
				if r.Status != domain.CheckOK {
					fmt.Printf("           want: %s\n", r.Value)
					for _, f := range r.Found {
						fmt.Printf("           found: %s\n", f)
					}
					if r.Detail != "" {
						fmt.Printf("           %s\n", r.Detail)
					}
				}
			}
			return nil
		},
	}
	remove := &cobra.Command{
		Use:   "remove DOMAIN",
		Short: "Remove a domain and its keys (its mail is no longer signed, nor accepted)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return simple(g, "DELETE", "/admin/v1/domains/"+url.PathEscape(args[0]), nil, "removed "+args[0])
		},
	}
	var rot api.RotateRequest
	rotate := &cobra.Command{
		Use:   "rotate DOMAIN",
		Short: "Make a new DKIM key; it signs once a check sees its record in DNS",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var res domain.Info
			if err := call(g, "POST", "/admin/v1/domains/"+url.PathEscape(args[0])+"/rotate", rot, &res); err != nil {
				return err
			}
			if g.json {
				return printJSON(res)
			}
			printDomain(&res)
			return nil
		},
	}
	rotate.Flags().StringVar(&rot.Algorithm, "algorithm", "", "rsa or ed25519 (default: the current key's)")
	rotate.Flags().StringVar(&rot.Selector, "selector", "", "selector of the new key (default: generated)")
	removeKey := &cobra.Command{
		Use:   "remove-key DOMAIN SELECTOR",
		Short: "Remove a retired (or pending) DKIM key",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return simple(g, "DELETE", "/admin/v1/domains/"+url.PathEscape(args[0])+"/keys/"+url.PathEscape(args[1]), nil, "removed key "+args[1])
		},
	}
	cmd.AddCommand(add, list, show, check, remove, rotate, removeKey)
	return cmd
}

// simple calls the admin API and prints its JSON answer or a line of text.
func simple(g *globals, method, path string, body any, text string) error {
	var res map[string]any
	if err := call(g, method, path, body, &res); err != nil {
		return err
	}
	if g.json {
		return printJSON(res)
	}
	fmt.Println(text)
	return nil
}

func printDomain(d *domain.Info) {
	fmt.Printf("%s (tenant %s): %s", d.Domain, d.Tenant, d.Status)
	if d.UnverifiedOK {
		fmt.Print(", signing before verification")
	}
	fmt.Printf("\nDKIM: selector %s, %s\n", d.Selector, d.Algorithm)
	for _, k := range d.Keys {
		if k.Selector != d.Selector {
			fmt.Printf("  other key: %s (%s, %s)\n", k.Selector, k.Algorithm, k.State)
		}
	}
	fmt.Println("Publish these DNS records:")
	for _, r := range d.Records {
		note := ""
		if r.KeyState != "" && r.KeyState != "active" {
			note = "   ; new key, " + r.KeyState
		}
		fmt.Printf("  %s %s\n    %s%s\n", r.Type, r.Name, strings.TrimSpace(r.Value), note)
	}
}
