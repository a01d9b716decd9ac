package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/posthorn/posthorn/internal/abuse"
)

// releaseCmd is `user release NAME` and `apikey release ID`: clear the
// anomaly detector's flag on a sender (docs/abuse.md).
func releaseCmd(g *globals, what string) *cobra.Command {
	var held bool
	c := &cobra.Command{
		Use:   "release " + map[string]string{"user": "NAME", "apikey": "ID"}[what],
		Short: "Clear the compromised-account flag so new mail is queued again (held mail stays held unless --release-held)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := abuse.ReleaseRequest{ReleaseHeld: held}
			if what == "user" {
				req.User = args[0]
			} else {
				req.APIKey = args[0]
			}
			var res abuse.ReleaseResponse
			if err := call(g, "POST", "/admin/v1/abuse/release", req, &res); err != nil {
				return err
			}
			if g.json {
				return printJSON(res)
			}
			if !res.Released {
				fmt.Printf("%s was not flagged\n", res.Principal)
			} else {
				fmt.Printf("%s released; %d messages were held since the flag", res.Principal, len(res.Held))
				if held {
					fmt.Printf(", %d deliveries back in the queue", res.HeldReleased)
				}
				fmt.Println()
			}
			return nil
		},
	}
	c.Flags().BoolVar(&held, "release-held", false, "also release the mail held since the flag was set (this run)")
	return c
}

func abuseCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "abuse",
		Short: "Show flagged senders and content-scanner counters",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var st abuse.Status
			if err := call(g, "GET", "/admin/v1/abuse", nil, &st); err != nil {
				return err
			}
			if g.json {
				return printJSON(st)
			}
			if len(st.Flagged) == 0 {
				fmt.Println("no flagged senders")
			}
			for _, f := range st.Flagged {
				fmt.Printf("%s (tenant %s) flagged %s: %s, %d held\n", f.Principal, f.Tenant, f.At.Format("2006-01-02 15:04:05"), f.Rule, f.Held)
			}
			if st.Scan != nil {
				fmt.Printf("scan: %v\n", st.Scan)
			}
			return nil
		},
	}
}
