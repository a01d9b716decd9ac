package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/posthorn/posthorn/internal/store"
)

func eventsCmd(g *globals) *cobra.Command {
	var typ, msg, rcpt, tenantName string
	var after int64
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Show the activity log (every state change, throttle change and operator action)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := query(map[string]string{"type": typ, "message": msg, "recipient": rcpt, "tenant": tenantName})
			if after > 0 {
				q.Set("after", fmt.Sprint(after))
			}
			var res struct {
				Items []store.Event `json:"items"`
			}
			return g.show("/admin/v1/events", q, &res, func() error {
				for _, e := range res.Items {
					fmt.Printf("%d %s %-16s %s %s %s\n", e.ID, e.At.Format(time.RFC3339), e.Type, e.MessageID, e.Recipient,
						replyOrDetail(e.Reply.Code, e.Reply.String(), e.Detail))
				}
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&typ, "type", "", "event type, e.g. deferred, bounced, throttle_changed")
	f.StringVar(&msg, "message", "", "message id")
	f.StringVar(&rcpt, "recipient", "", "recipient address")
	f.StringVar(&tenantName, "tenant", "", "tenant id")
	f.Int64Var(&after, "after", 0, "only events after this event id (for paging)")
	return cmd
}
