package main

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/posthorn/posthorn/internal/server"
)

func reloadCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "reload",
		Short: "Reload the running server's configuration (like kill -HUP; postfix reload)",
		Long: `Ask the running server to read its configuration again and apply what can change while it runs:
log level, trusted networks, smarthost and relay routes, destination and delivery limits, classifier rules,
the TLS certificate files (re-read), suppression hold settings, shutdown_timeout. Other changed settings are
listed as needing a restart. An invalid configuration is refused and the running one kept (exit status 1).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			var rep server.ReloadReport
			if err := c.Do(context.Background(), "POST", server.PathReload, nil, nil, &rep); err != nil {
				return err
			}
			if g.json {
				return printJSON(rep)
			}
			if len(rep.Applied) == 0 {
				fmt.Println("reloaded: nothing changed that can be applied")
			}
			for _, a := range rep.Applied {
				fmt.Println("applied:      ", a)
			}
			for _, r := range rep.NeedsRestart {
				fmt.Println("needs restart:", r)
			}
			return nil
		},
	}
}

func statusCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the running server: version, uptime, listeners, queue by state, paused destinations, store size",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var st server.Status
			return g.show(server.PathStatus, nil, &st, func() error {
				fmt.Printf("posthorn %s, pid %d, up %s (since %s)%s\n", st.Version, st.PID, st.Uptime, st.Started.Format("2006-01-02 15:04:05Z"),
					map[bool]string{true: ", SHUTTING DOWN"}[st.Draining])
				fmt.Printf("data dir   %s (store %s, schema %d)\n", st.DataDir, bytesText(st.StoreBytes), st.SchemaVersion)
				for _, k := range sortedKeys(st.Listeners) {
					fmt.Printf("listening  %-8s %s\n", k, st.Listeners[k])
				}
				var parts []string
				total := 0
				for _, k := range sortedKeys(st.Queue) {
					parts = append(parts, fmt.Sprintf("%s %d", k, st.Queue[k]))
					total += st.Queue[k]
				}
				if total == 0 {
					parts = []string{"empty"}
				}
				fmt.Println("deliveries", strings.Join(parts, ", "))
				if len(st.Paused) > 0 {
					fmt.Println("paused     ", strings.Join(st.Paused, ", "))
				}
				if len(st.Throttled) > 0 {
					fmt.Println("throttled  ", strings.Join(st.Throttled, ", "))
				}
				return nil
			})
		},
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func bytesText(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}
