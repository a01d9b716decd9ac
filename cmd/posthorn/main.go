// Command posthorn is the posthorn mail server and its command-line tools.
// This file only parses flags and dispatches; the server is wired in
// internal/server and the CLI talks to it through internal/api/adminclient.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/posthorn/posthorn/internal/api/adminclient"
	"github.com/posthorn/posthorn/internal/config"
	"github.com/posthorn/posthorn/internal/server"
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
	root.Version = server.Version()
	root.PersistentFlags().StringVar(&g.dataDir, "data-dir", "", "data directory (default $"+envDataDir+", else data_dir in the config, else \"posthorn-data\")")
	root.PersistentFlags().StringVar(&g.configPath, "config", "", "TOML configuration file (default $"+envConfig+", else "+systemConfig+" when it exists)")
	root.PersistentFlags().BoolVar(&g.json, "json", false, "print JSON")
	// Installed as /usr/sbin/sendmail (a link named sendmail), posthorn is
	// the sendmail command.
	if filepath.Base(os.Args[0]) == "sendmail" {
		os.Exit(runSendmail(g, os.Args[1:], os.Stdin, os.Stderr))
	}
	root.AddCommand(serveCmd(g), initCmd(g), queueCmd(g), dlqCmd(g), destinationsCmd(g), eventsCmd(g), reportCmd(g), classifyCmd(g), bounceCmd(g), suppressionCmd(g), userCmd(g), apikeyCmd(g), tenantCmd(g), domainCmd(g), poolsCmd(g), blocklistCmd(g), dmarcCmd(g),
		accountCmd(g), sendmailCmd(g),
		webhookCmd(g), alertsCmd(g), // webhook.go
		abuseCmd(g),
		reloadCmd(g), statusCmd(g), backupCmd(g), restoreCmd(g), configCmd(g),
		migrateCmd(g), nodesCmd(g)) // cluster.go
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "posthorn:", err)
		os.Exit(1)
	}
}

// loadConfig reads the configuration file and applies the data directory
// (see configPath and dataDirOverride).
func (g *globals) loadConfig() (config.Config, error) {
	cfg, err := config.Load(g.resolveConfigPath())
	if err != nil {
		return cfg, err
	}
	if d := g.dataDirOverride(); d != "" {
		cfg.DataDir = d
	}
	return cfg, nil
}

func (g *globals) client() (*adminclient.Client, error) {
	cfg, err := g.loadConfig()
	if err != nil {
		return nil, err
	}
	return adminclient.NewClient(cfg.AdminSocket()), nil
}

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// query builds URL parameters from the non-empty values.
func query(kv map[string]string) url.Values {
	q := url.Values{}
	for k, v := range kv {
		if v != "" {
			q.Set(k, v)
		}
	}
	return q
}

// show GETs path from the admin socket and either prints the raw JSON
// (--json) or decodes it into out and calls text to print it for people.
func (g *globals) show(path string, q url.Values, out any, text func() error) error {
	c, err := g.client()
	if err != nil {
		return err
	}
	var raw json.RawMessage
	if err := c.Do(context.Background(), "GET", path, q, nil, &raw); err != nil {
		return err
	}
	if g.json {
		_, err := os.Stdout.Write(raw)
		return err
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return err
	}
	return text()
}
