// Command posthorn is the posthorn mail server and its command-line tools.
// This file only parses flags and dispatches; the server is wired in
// internal/server and the CLI talks to it through internal/api.
package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/posthorn/posthorn/internal/api"
	"github.com/posthorn/posthorn/internal/config"
)

// globals are the flags every command shares.
type globals struct {
	dataDir    string
	configPath string
	json       bool
}

func main() {
	g := &globals{}
	root := &cobra.Command{
		Use:           "posthorn",
		Short:         "posthorn: a self-hosted outbound mail server",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.dataDir, "data-dir", "", "data directory (default \"posthorn-data\", or data_dir in the config)")
	root.PersistentFlags().StringVar(&g.configPath, "config", "", "TOML configuration file")
	root.PersistentFlags().BoolVar(&g.json, "json", false, "print JSON")
	root.AddCommand(serveCmd(g), initCmd(g), queueCmd(g), dlqCmd(g), destinationsCmd(g), eventsCmd(g), userCmd(g), apikeyCmd(g), tenantCmd(g))
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "posthorn:", err)
		os.Exit(1)
	}
}

// loadConfig reads --config and applies --data-dir.
func (g *globals) loadConfig() (config.Config, error) {
	cfg, err := config.Load(g.configPath)
	if err != nil {
		return cfg, err
	}
	if g.dataDir != "" {
		cfg.DataDir = g.dataDir
	}
	return cfg, nil
}

func (g *globals) client() (*api.Client, error) {
	cfg, err := g.loadConfig()
	if err != nil {
		return nil, err
	}
	return api.NewClient(cfg.AdminSocket()), nil
}

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
