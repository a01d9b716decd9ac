package main

import (
	"encoding/csv"

	"fmt"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/posthorn/posthorn/internal/api"
)

func reportCmd(g *globals) *cobra.Command {
	var from, to, groupBy, tenantName string
	var asCSV bool
	cmd := &cobra.Command{
		Use:   "report",
		Short: "Deliverability report: accepted, delivered, deferred, bounced, complaints, unsubscribes, suppressed, dead letters and rates",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := query(map[string]string{"from": from, "to": to, "group_by": groupBy, "tenant": tenantName})
			var rep api.Report
			return g.show("/admin/v1/reports/deliverability", q, &rep, func() error {
				if asCSV {
					return api.ReportCSV(csv.NewWriter(os.Stdout), &rep)
				}
				return printReport(&rep)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&from, "from", "", "first day (2006-01-02, RFC 3339, or a duration ago such as 720h; default: 6 days before --to)")
	f.StringVar(&to, "to", "", "last day (default: today, UTC)")
	f.StringVar(&groupBy, "group-by", "day", "day, domain, destination or tag")
	f.StringVar(&tenantName, "tenant", "", "tenant id (default: every tenant)")
	f.BoolVar(&asCSV, "csv", false, "print CSV")
	return cmd
}

func pct(x float64) string { return fmt.Sprintf("%.2f%%", x*100) }

func printReport(rep *api.Report) error {
	fmt.Printf("Deliverability %s .. %s by %s\n", rep.From, rep.To, rep.GroupBy)
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "KEY\tSENT\tDELIVERED\tDEFERRED\tHARD\tSOFT\tCOMPLAINTS\tUNSUBS\tSUPPRESSED\tDEAD\tDELIV%\tBOUNCE%\tCOMPL%\t")
	for _, l := range append(rep.Rows, rep.Total) {
		c := l.Counters
		fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t\n", l.Key, c.Accepted, c.Delivered, c.Deferred, c.Bounced,
			c.SoftBounced, c.Complaints, c.Unsubscribed, c.Suppressed, c.DeadLettered, pct(l.Rates.Delivered), pct(l.Rates.Bounced),
			pct(l.Rates.Complaints))
	}
	return w.Flush()
}
