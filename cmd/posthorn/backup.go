package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/posthorn/posthorn/internal/backup"
	"github.com/posthorn/posthorn/internal/server"
	"github.com/posthorn/posthorn/internal/store/sqlite"
)

func backupCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "backup FILE",
		Short: "Write a consistent backup of the running server (database and keys) to FILE ('-': stdout)",
		Long: `Ask the running server, through its admin socket, for an online backup: a gzip'd tar with a consistent
copy of the database (SQLite's backup API; the server keeps accepting and delivering), the VERP, unsubscribe
and other key files and the TLS certificate of the data directory, and a manifest with checksums. The file
is verified after writing. Restore it with 'posthorn restore FILE --data-dir DIR' while posthorn is stopped.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ctx := context.Background()
			if args[0] == "-" {
				_, err := c.Download(ctx, "POST", server.PathBackup, os.Stdout)
				return err
			}
			dst := args[0]
			tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".partial-")
			if err != nil {
				return err
			}
			defer os.Remove(tmp.Name()) // after the rename: a no-op
			n, err := c.Download(ctx, "POST", server.PathBackup, tmp)
			if err == nil {
				err = tmp.Sync()
			}
			if cerr := tmp.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("backup: %w", err)
			}
			f, err := os.Open(tmp.Name())
			if err != nil {
				return err
			}
			m, err := backup.Verify(f)
			f.Close()
			if err != nil {
				return fmt.Errorf("backup is incomplete, not kept: %w", err)
			}
			if err := os.Rename(tmp.Name(), dst); err != nil {
				return err
			}
			if g.json {
				return printJSON(map[string]any{"file": dst, "bytes": n, "manifest": m})
			}
			fmt.Printf("backup written to %s: %d files, %s, schema version %d\n", dst, len(m.Files), bytesText(n), m.SchemaVersion)
			return nil
		},
	}
}

func restoreCmd(g *globals) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "restore FILE",
		Short: "Restore a backup into a data directory (posthorn must be stopped)",
		Long: `Restore a file written by 'posthorn backup' into the data directory (--data-dir, $POSTHORN_DATA_DIR or the
config's data_dir). The directory must be empty unless --force (which replaces its posthorn files), and no
posthorn may be running on it. Every checksum and the database are verified before anything is moved in
place; a backup from a newer posthorn (newer schema) is refused. Deliveries that were being sent when the
backup was taken are retried after the next start.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			var in io.Reader = os.Stdin
			if args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return err
				}
				defer f.Close()
				in = f
			}
			if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
				return err
			}
			release, err := server.LockDataDir(cfg.DataDir)
			if err != nil {
				return err
			}
			defer release()
			m, err := backup.Restore(in, cfg.DataDir, force, func(db string) error {
				_, err := sqlite.Inspect(context.Background(), db)
				return err
			})
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(m)
			}
			fmt.Printf("restored %d files into %s (backup of %s, posthorn %s, schema version %d)\nstart posthorn with: posthorn serve --data-dir %s\n",
				len(m.Files), cfg.DataDir, m.CreatedAt.Format("2006-01-02 15:04:05Z"), m.Version, m.SchemaVersion, cfg.DataDir)
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "replace the posthorn files of a non-empty data directory")
	return cmd
}
