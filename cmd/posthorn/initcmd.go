package main

import (
	"context"
	"errors"
	"fmt"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/posthorn/posthorn/internal/config"
	"github.com/posthorn/posthorn/internal/server"
)

func initCmd(g *globals) *cobra.Command {
	var storeURL string
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create the data directory with the default tenant, an admin API key and an SMTP user",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("store") {
				cfg.Store = storeURL
			}
			if cfg.SharedStore() {
				return initShared(g, &cfg)
			}
			c, err := server.Init(context.Background(), &cfg)
			if errors.Is(err, syscall.EWOULDBLOCK) {
				return fmt.Errorf("%s is already initialised and a posthorn is serving it.\n"+
					"Next: make new credentials with 'posthorn user add NAME' or 'posthorn apikey create'; see it with 'posthorn status'", cfg.DataDir)
			}
			if err != nil {
				return err
			}
			if c == nil {
				return fmt.Errorf("%s is already initialised: its default tenant and credentials exist (they are shown only once).\n"+
					"Next: start it with 'posthorn serve --data-dir %s', then make new credentials with 'posthorn user add NAME' or "+
					"'posthorn apikey create'; to start afresh, stop posthorn and remove %s", cfg.DataDir, cfg.DataDir, cfg.DataDir)
			}
			if g.json {
				return printJSON(c)
			}
			fmt.Printf("Created tenant %q in %s. These secrets are shown only once:\n  API key:       %s\n  SMTP username: %s\n  SMTP password: %s\n",
				c.Tenant, cfg.DataDir, c.APIKey, c.SMTPUsername, c.SMTPPassword)
			return nil
		},
	}
	storeFlag(cmd, &storeURL)
	return cmd
}

// initShared initialises a PostgreSQL store, once for the whole cluster.
func initShared(g *globals, cfg *config.Config) error {
	c, err := server.Init(context.Background(), cfg)
	if err != nil {
		return err
	}
	if c == nil {
		return fmt.Errorf("the shared store is already initialised: its default tenant and credentials exist (they are shown only once).\n" +
			"Next: start each node with 'posthorn serve --store URL --data-dir DIR', then make new credentials with 'posthorn user add NAME' or 'posthorn apikey create'")
	}
	if g.json {
		return printJSON(c)
	}
	fmt.Printf("Created tenant %q in the shared store. These secrets are shown only once:\n  API key:       %s\n  SMTP username: %s\n  SMTP password: %s\n",
		c.Tenant, c.APIKey, c.SMTPUsername, c.SMTPPassword)
	return nil
}
