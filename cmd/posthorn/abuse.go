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

func addQuotaFlags(c *cobra.Command) {
	c.Flags().Int("quota-hour", 0, "messages this sender may send per hour (0: no limit; default: the config's)")
	c.Flags().Int("quota-day", 0, "messages this sender may send per day (0: no limit; default: the config's)")
}

// quotaFlags builds a quota request from the flags that were given.
func quotaFlags(cmd *cobra.Command, what, name string) (abuse.QuotaRequest, bool) {
	req := abuse.QuotaRequest{}
	if what == "user" {
		req.User = name
	} else {
		req.APIKey = name
	}
	set := false
	for flag, dst := range map[string]**int{"quota-hour": &req.Hour, "quota-day": &req.Day} {
		if cmd.Flags().Changed(flag) {
			v, _ := cmd.Flags().GetInt(flag)
			*dst, set = &v, true
		}
	}
	if c, _ := cmd.Flags().GetBool("clear-quota"); c {
		req.Clear, set = true, true
	}
	return req, set
}

// quotaSetCmd is `user set NAME` and `apikey set ID`: for now, the
// sender's quotas (kept in the data directory's quotas.json).
func quotaSetCmd(g *globals, what string) *cobra.Command {
	c := &cobra.Command{
		Use:   "set " + map[string]string{"user": "NAME", "apikey": "ID"}[what],
		Short: "Change a sender's quotas (messages per hour and per day)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req, ok := quotaFlags(cmd, what, args[0])
			if !ok {
				return fmt.Errorf("nothing to change: give --quota-hour, --quota-day or --clear-quota")
			}
			var res abuse.QuotaResponse
			if err := call(g, "POST", "/admin/v1/abuse/quota", req, &res); err != nil {
				return err
			}
			if g.json {
				return printJSON(res)
			}
			fmt.Printf("%s: %d messages per hour, %d per day (0: no limit)\n", res.Principal, res.Hour, res.Day)
			return nil
		},
	}
	addQuotaFlags(c)
	c.Flags().Bool("clear-quota", false, "go back to the quotas of the config file")
	return c
}
