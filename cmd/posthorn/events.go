package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/posthorn/posthorn/internal/api"
	"github.com/posthorn/posthorn/internal/store"
)

func eventsCmd(g *globals) *cobra.Command {
	var typ, msg, rcpt, domain, dest, tag, since, until, tenantName, cursor string
	var limit int
	var asc, follow bool
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Show the activity log, newest first (every state change, throttle change and operator action); --follow for live",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if typ != "" && !store.ValidEventType(typ) {
				return fmt.Errorf("unknown event type %q; valid types: %s", typ, store.EventTypeList())
			}
			q := query(map[string]string{"type": typ, "message": msg, "recipient": rcpt, "domain": domain, "destination": dest,
				"tag": tag, "since": since, "until": until, "tenant": tenantName, "cursor": cursor})
			if follow {
				return followEvents(g, q, limit, cmd.Flags().Changed("limit"))
			}
			if asc {
				q.Set("order", "asc")
			}
			if limit <= 0 {
				return fmt.Errorf("--limit must be positive")
			}
			q.Set("limit", strconv.Itoa(limit))
			var page api.EventPage
			return g.show("/admin/v1/events", q, &page, func() error { return printEventPage(page) })
		},
	}
	f := cmd.Flags()
	f.StringVar(&typ, "type", "", "event type, e.g. deferred, bounced, throttle_changed")
	f.StringVar(&msg, "message", "", "message id")
	f.StringVar(&rcpt, "recipient", "", "recipient address")
	f.StringVar(&domain, "domain", "", "recipient domain")
	f.StringVar(&dest, "destination", "", "destination (provider, or domain) of attempts")
	f.StringVar(&tag, "tag", "", "message tag")
	f.StringVar(&since, "since", "", "from this time (RFC 3339, a date, or a duration ago such as 24h)")
	f.StringVar(&until, "until", "", "before this time (same forms)")
	f.StringVar(&tenantName, "tenant", "", "tenant id")
	f.IntVar(&limit, "limit", 1000, "at most this many events (with --follow: how many recent ones to show first, default 10)")
	f.StringVar(&cursor, "cursor", "", "continue a listing from the cursor it printed")
	f.BoolVar(&asc, "asc", false, "oldest first")
	f.BoolVar(&follow, "follow", false, "keep printing new events as they happen (Ctrl-C ends)")
	return cmd
}

func printEvent(e *store.Event) {
	fmt.Printf("%d %s %-16s %s %s %s\n", e.ID, e.At.Format(time.RFC3339), e.Type, e.MessageID, e.Recipient,
		replyOrDetail(e.Reply.Code, e.Reply.String(), e.Detail))
}

func printEventPage(page api.EventPage) error {
	if len(page.Items) == 0 {
		fmt.Println("no events")
		return nil
	}
	for i := range page.Items {
		printEvent(&page.Items[i])
	}
	if page.NextCursor == "" {
		return nil
	}
	switch {
	case page.Total > 0 && !page.TotalCapped:
		fmt.Printf("-- %s of %s shown; more with --cursor %s (or a larger --limit)\n", thousands(len(page.Items)), thousands(page.Total), page.NextCursor)
	case page.Total > 0:
		fmt.Printf("-- %s of more than %s shown; more with --cursor %s\n", thousands(len(page.Items)), thousands(page.Total), page.NextCursor)
	default:
		fmt.Printf("-- more: --cursor %s\n", page.NextCursor)
	}
	return nil
}

// followEvents shows the last few events, oldest first, then follows the
// live stream from the newest of them (so nothing falls in between).
func followEvents(g *globals, q url.Values, limit int, limitSet bool) error {
	c, err := g.client()
	if err != nil {
		return err
	}
	if !limitSet {
		limit = 10
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	print := func(e *store.Event) error {
		if g.json {
			b, _ := json.Marshal(e)
			_, err := fmt.Printf("%s\n", b)
			return err
		}
		printEvent(e)
		return nil
	}
	last := "0"
	pq := cloneQuery(q)
	pq.Set("limit", strconv.Itoa(max(limit, 1)))
	var page api.EventPage
	if err := c.Do(ctx, "GET", "/admin/v1/events", pq, nil, &page); err != nil {
		return err
	}
	slices.Reverse(page.Items)
	for i, e := range page.Items {
		if i >= len(page.Items)-limit {
			if err := print(&e); err != nil {
				return err
			}
		}
		last = strconv.FormatInt(e.ID, 10)
	}
	sq := cloneQuery(q)
	sq.Del("cursor")
	sq.Del("since")
	sq.Del("until")
	return c.Stream(ctx, "/admin/v1/events/stream", sq, last, func(_ string, data []byte) error {
		var e store.Event
		if err := json.Unmarshal(data, &e); err != nil {
			return err
		}
		return print(&e)
	})
}

func cloneQuery(q url.Values) url.Values {
	out := make(url.Values, len(q))
	for k, v := range q {
		out[k] = slices.Clone(v)
	}
	return out
}
