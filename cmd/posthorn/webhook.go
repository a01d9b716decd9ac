package main

import (
	"fmt"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/posthorn/posthorn/internal/api"
	"github.com/posthorn/posthorn/internal/store"
)

func webhookCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "webhook", Short: "Webhook endpoints: events POSTed to a tenant's URL, signed (docs/webhooks.md)"}
	var tenantName, events string
	add := &cobra.Command{
		Use:   "add URL",
		Short: "Add an endpoint for --events; prints its id and signing secret (shown once)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var res api.WebhookCreated
			req := api.WebhookRequest{Tenant: tenantName, URL: args[0], Events: splitList(events)}
			if err := call(g, "POST", "/admin/v1/webhooks", req, &res); err != nil {
				return err
			}
			if g.json {
				return printJSON(res)
			}
			fmt.Printf("webhook %s -> %s (%s)\nsigning secret (shown only now): %s\n", res.ID, res.URL, strings.Join(res.Events, ","), res.Secret)
			return nil
		},
	}
	add.Flags().StringVar(&events, "events", "", "event types, comma separated (e.g. delivered,deferred,bounced,alert_fired)")
	add.Flags().StringVar(&tenantName, "tenant", "", "tenant name or id (default: the default tenant)")
	add.MarkFlagRequired("events")
	list := &cobra.Command{
		Use:   "list",
		Short: "List endpoints",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var res struct {
				Items []store.WebhookEndpoint `json:"items"`
			}
			return g.show("/admin/v1/webhooks", query(map[string]string{"tenant": tenantName}), &res, func() error {
				w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
				fmt.Fprintln(w, "ID\tTENANT\tURL\tEVENTS\tPENDING\tFAILING SINCE\tDISABLED")
				for _, e := range res.Items {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", e.ID, e.TenantID, e.URL, strings.Join(e.Events, ","), e.Pending,
						fmtTime(e.FailingSince), fmtTime(e.DisabledAt))
				}
				return w.Flush()
			})
		},
	}
	list.Flags().StringVar(&tenantName, "tenant", "", "only this tenant")
	simple := func(use, short, method, suffix, done string) *cobra.Command {
		return &cobra.Command{
			Use: use + " ID", Short: short, Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				var res map[string]any
				if err := call(g, method, "/admin/v1/webhooks/"+url.PathEscape(args[0])+suffix, nil, &res); err != nil {
					return err
				}
				if g.json {
					return printJSON(res)
				}
				fmt.Println(done, args[0])
				return nil
			},
		}
	}
	attempts := &cobra.Command{
		Use:   "attempts ID",
		Short: "The endpoint's latest requests: status, latency, first bytes of the answer",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var res struct {
				Items []store.WebhookAttempt `json:"items"`
			}
			return g.show("/admin/v1/webhooks/"+url.PathEscape(args[0])+"/attempts", nil, &res, func() error {
				w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
				fmt.Fprintln(w, "AT\tWEBHOOK\tEVENT\tTRY\tSTATUS\tLATENCY\tRESULT")
				for _, a := range res.Items {
					result := "ok"
					if !a.OK {
						result = a.Error
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%d\t%s\t%s\n", a.At.Format(time.RFC3339), a.WebhookID, a.EventType, a.N, a.Status,
						a.Duration.Round(time.Millisecond), clipText(result+" "+a.Response, 80))
				}
				return w.Flush()
			})
		},
	}
	cmd.AddCommand(add, list, simple("remove", "Remove an endpoint with its pending webhooks", "DELETE", "", "removed"),
		simple("test", "Send the endpoint a webhook_test event", "POST", "/test", "test webhook queued for"),
		simple("enable", "Turn a disabled endpoint on again (its pending webhooks resume)", "POST", "/enable", "enabled"), attempts)
	return cmd
}

func alertsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "alerts",
		Short: "Firing and recently resolved alerts ([[alert]] rules, docs/alerts.md)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var res struct {
				Items []store.Alert `json:"items"`
			}
			return g.show("/admin/v1/alerts", nil, &res, func() error {
				w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
				fmt.Fprintln(w, "ALERT\tSTATE\tVALUE\tTHRESHOLD\tFIRED\tRESOLVED\tACTION\tDETAIL")
				for _, a := range res.Items {
					state := "resolved"
					if a.Firing {
						state = "FIRING"
					}
					action := "-"
					if a.Action != "" {
						action = a.Action + " (" + a.ActionState + ")"
					}
					fmt.Fprintf(w, "%s\t%s\t%.1f\t%.1f\t%s\t%s\t%s\t%s\n", a.Key, state, a.Value, a.Threshold, fmtTime(a.FiredAt),
						fmtTime(a.ResolvedAt), action, clipText(a.Detail, 80))
				}
				return w.Flush()
			})
		},
	}
	release := &cobra.Command{
		Use:   "release KEY",
		Short: "Lift a firing alert's action (throttle, hold_lane) now; the alert stays listed as firing",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var a store.Alert
			if err := call(g, "POST", "/admin/v1/alerts/release", map[string]string{"key": args[0]}, &a); err != nil {
				return err
			}
			if g.json {
				return printJSON(a)
			}
			fmt.Printf("alert %s: %s action released\n", a.Key, a.Action)
			return nil
		},
	}
	cmd.AddCommand(release)
	return cmd
}
