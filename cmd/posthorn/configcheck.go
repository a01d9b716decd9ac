package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/posthorn/posthorn/internal/classify"
	"github.com/posthorn/posthorn/internal/config"
	"github.com/posthorn/posthorn/internal/store/sqlite"
)

func configCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Configuration tools"}
	cmd.AddCommand(&cobra.Command{
		Use:   "check [FILE]",
		Short: "Check a configuration file and the data directory without starting (like postfix check)",
		Long: `Check the configuration (FILE, else --config, $POSTHORN_CONFIG or /etc/posthorn/posthorn.toml) and the data
directory it names: the file parses with no unknown keys and validates, the TLS certificate and the classifier
rules load, the data directory is a directory owned by this user and not writable by group or others, and its
database (when there is one) is intact and not from a newer posthorn. Prints every problem; exits 1 if any.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := g.resolveConfigPath()
			if len(args) == 1 {
				path = args[0]
			}
			problems, warnings, notes := checkConfig(path, g.dataDirOverride())
			if g.json {
				if err := printJSON(map[string]any{"config": path, "problems": nonNil(problems), "warnings": nonNil(warnings), "ok": notes}); err != nil {
					return err
				}
			} else {
				for _, n := range notes {
					fmt.Println("ok:     ", n)
				}
				for _, w := range warnings {
					fmt.Println("warning:", w)
				}
				for _, p := range problems {
					fmt.Println("problem:", p)
				}
			}
			if len(problems) > 0 {
				return fmt.Errorf("config check: %d problem(s)", len(problems))
			}
			return nil
		},
	})
	return cmd
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// checkConfig runs the checks of `posthorn config check`.
func checkConfig(path, dataDir string) (problems, warnings, notes []string) {
	name := path
	if name == "" {
		name = "(no file: built-in defaults)"
	}
	cfg, err := config.Load(path)
	if err != nil {
		return []string{err.Error()}, nil, nil
	}
	if dataDir != "" {
		cfg.DataDir = dataDir
	}
	if err := cfg.Validate(); err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			problems = append(problems, "config "+name+": "+line)
		}
	} else {
		notes = append(notes, "config "+name+" is valid")
	}
	warnings = append(warnings, cfg.Warnings()...)
	if cfg.SMTP.TLSCert != "" {
		if c, err := tls.LoadX509KeyPair(cfg.SMTP.TLSCert, cfg.SMTP.TLSKey); err != nil {
			problems = append(problems, fmt.Sprintf("smtp.tls_cert/tls_key: %v", err))
		} else if leaf, err := x509.ParseCertificate(c.Certificate[0]); err == nil {
			switch left := time.Until(leaf.NotAfter); {
			case left < 0:
				problems = append(problems, fmt.Sprintf("smtp.tls_cert %s expired on %s", cfg.SMTP.TLSCert, leaf.NotAfter.Format(time.DateOnly)))
			case left < 14*24*time.Hour:
				warnings = append(warnings, fmt.Sprintf("smtp.tls_cert %s expires on %s", cfg.SMTP.TLSCert, leaf.NotAfter.Format(time.DateOnly)))
			default:
				notes = append(notes, "tls certificate "+cfg.SMTP.TLSCert+" loads")
			}
		}
	}
	if cfg.Classify.Rules != "" {
		if _, err := classify.Load(cfg.Classify.Rules, cfg.Classify.Replace); err != nil {
			problems = append(problems, fmt.Sprintf("classify.rules: %v", err))
		} else {
			notes = append(notes, "classifier rules "+cfg.Classify.Rules+" load")
		}
	}
	p, w, n := checkDataDir(cfg.DataDir, cfg.DBPath())
	return append(problems, p...), append(warnings, w...), append(notes, n...)
}

// checkDataDir checks the data directory and its database as the server
// would at start, without changing anything.
func checkDataDir(dir, db string) (problems, warnings, notes []string) {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, []string{"data directory " + dir + " does not exist yet (posthorn init or the first start creates it)"}, nil
	case err != nil:
		return []string{fmt.Sprintf("data directory: %v", err)}, nil, nil
	case !fi.IsDir():
		return []string{"data directory " + dir + " is not a directory"}, nil, nil
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		problems = append(problems, fmt.Sprintf("data directory %s is writable by group or others (mode %04o): posthorn refuses to start; fix: chmod 700 %s", dir, perm, dir))
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Getuid() {
		problems = append(problems, fmt.Sprintf("data directory %s is owned by uid %d, not by this user (uid %d): run posthorn as its owner (or chown it)", dir, st.Uid, os.Getuid()))
	}
	if len(problems) == 0 {
		notes = append(notes, "data directory "+dir+" is private to its owner")
	}
	if _, err := os.Stat(db); errors.Is(err, os.ErrNotExist) {
		warnings = append(warnings, "no database in "+dir+" yet (posthorn init or the first start creates it)")
		return problems, warnings, notes
	}
	v, err := sqlite.Inspect(context.Background(), db)
	if err != nil {
		problems = append(problems, err.Error())
	} else {
		notes = append(notes, fmt.Sprintf("database %s is intact (schema version %d of %d)", db, v, sqlite.SchemaVersion()))
	}
	return problems, warnings, notes
}
