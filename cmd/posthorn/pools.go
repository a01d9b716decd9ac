package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/posthorn/posthorn/internal/blocklist"
	"github.com/posthorn/posthorn/internal/dmarc"
	"github.com/posthorn/posthorn/internal/pool"
)

func poolsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "pools",
		Short: "List source IP pools: each address with its warm-up day, today's count and cap per destination",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var res struct {
				Items []pool.MemberStatus `json:"items"`
			}
			return g.show("/admin/v1/pools", nil, &res, func() error {
				w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
				fmt.Fprintln(w, "POOL\tADDRESS\tEHLO\tWEIGHT\tWARM-UP\tCAP/DEST\tSENT TODAY\tBY DESTINATION\tSELECTS")
				for _, m := range res.Items {
					warm, cap := "warm", "-"
					if m.Warming {
						warm, cap = fmt.Sprintf("day %d/%d", m.Day, m.Days), fmt.Sprint(m.Cap)
					}
					var per []string
					for d, n := range m.PerDest {
						per = append(per, fmt.Sprintf("%s:%d", d, n))
					}
					sort.Strings(per)
					fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\t%d\t%s\t%s\n", m.Pool, m.Address, dash(m.EHLO), m.Weight, warm, cap, m.Today,
						dash(strings.Join(per, " ")), dash(m.Selected))
				}
				return w.Flush()
			})
		},
	}
}

func blocklistCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "blocklist", Short: "DNS blocklist monitoring of the sending IPs and domains"}
	cmd.AddCommand(&cobra.Command{
		Use:   "check",
		Short: "Check every sending IP and domain against the configured blocklists now (listed: true, false or unknown)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			var raw json.RawMessage
			if err := c.Do(context.Background(), "POST", "/admin/v1/blocklists/check", nil, struct{}{}, &raw); err != nil {
				return err
			}
			if g.json {
				_, err := os.Stdout.Write(raw)
				return err
			}
			var res struct {
				Items []blocklist.Result `json:"items"`
			}
			if err := json.Unmarshal(raw, &res); err != nil {
				return err
			}
			w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(w, "TARGET\tZONE\tLISTED\tCODE\tMEANING\tWEIGHT\tREMOVAL")
			for _, r := range res.Items {
				meaning := r.Meaning
				if r.Error != "" {
					meaning = r.Error
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", r.Target, r.Zone, r.Listed, dash(r.Code), dash(meaning), r.Weight, dash(r.RemovalURL))
			}
			return w.Flush()
		},
	})
	return cmd
}

func dmarcCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "dmarc", Short: "DMARC aggregate reports received at the rua address"}
	var since string
	report := &cobra.Command{
		Use:   "report DOMAIN",
		Short: "Summarise a domain's DMARC reports per source IP: volume, DKIM/SPF alignment, sources that are not ours",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			q := url.Values{"domain": {args[0]}}
			if since != "" {
				q.Set("since", since)
			}
			var sum dmarc.Summary
			return g.show("/admin/v1/dmarc", q, &sum, func() error {
				fmt.Printf("%s since %s: %d reports, %d messages, DMARC pass %d, fail %d (DKIM aligned pass %d, SPF aligned pass %d)\n",
					sum.Domain, sum.Since.Format("2006-01-02 15:04"), sum.Reports, sum.Messages, sum.DMARCPass, sum.DMARCFail, sum.DKIMPass, sum.SPFPass)
				w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
				fmt.Fprintln(w, "SOURCE IP\tOURS\tMESSAGES\tDKIM PASS/FAIL\tSPF PASS/FAIL\tDMARC PASS/FAIL\tQUAR/REJ\tREPORTERS")
				for _, s := range sum.Sources {
					ours := "?"
					if s.Ours != nil {
						ours = map[bool]string{true: "yes", false: "NO"}[*s.Ours]
					}
					fmt.Fprintf(w, "%s\t%s\t%d\t%d/%d\t%d/%d\t%d/%d\t%d/%d\t%s\n", s.IP, ours, s.Messages, s.DKIMPass, s.DKIMFail, s.SPFPass, s.SPFFail,
						s.DMARCPass, s.DMARCFail, s.Quarantine, s.Rejected, strings.Join(s.Reporters, ","))
				}
				if err := w.Flush(); err != nil {
					return err
				}
				if len(sum.NotOurs) > 0 {
					fmt.Printf("\nsources that are not ours (someone else sending as %s, or forwarders): %s\n", sum.Domain, strings.Join(sum.NotOurs, " "))
				}
				return nil
			})
		},
	}
	report.Flags().StringVar(&since, "since", "", "reports since this time (RFC 3339, YYYY-MM-DD or a duration like 168h; default 30 days)")
	cmd.AddCommand(report)
	return cmd
}
