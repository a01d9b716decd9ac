package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
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
			c, err := g.client()
			if err != nil {
				return err
			}
			q := url.Values{}
			for k, v := range map[string]string{"type": typ, "message": msg, "recipient": rcpt, "tenant": tenantName} {
				if v != "" {
					q.Set(k, v)
				}
			}
			if after > 0 {
				q.Set("after", fmt.Sprint(after))
			}
			var raw json.RawMessage
			if err := c.Do(context.Background(), "GET", "/admin/v1/events", q, nil, &raw); err != nil {
				return err
			}
			if g.json {
				_, err := os.Stdout.Write(raw)
				return err
			}
			var res struct {
				Items []store.Event `json:"items"`
			}
			if err := json.Unmarshal(raw, &res); err != nil {
				return err
			}
			for _, e := range res.Items {
				fmt.Printf("%d %s %-16s %s %s %s\n", e.ID, e.At.Format(time.RFC3339), e.Type, e.MessageID, e.Recipient,
					replyOrDetail(e.Reply.Code, e.Reply.String(), e.Detail))
			}
			return nil
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
