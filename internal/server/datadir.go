package server

import (
	"fmt"
	"os"
	"path/filepath"
)

// prepareDataDir creates the data directory owner-only (0700), or checks
// an existing one. A directory that group or others may write is refused:
// anyone who can write it can replace the database, the keys or the admin
// socket (and capture what the CLI sends to it). Files an earlier version
// left readable by others (the database, keys, the TLS key) are tightened
// to 0600.
func prepareDataDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("data dir %s is not a directory", dir)
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return fmt.Errorf("data dir %s is writable by group or others (mode %04o), so another local user could replace its files; "+
			"fix it with: chmod 700 %s", dir, perm, dir)
	}
	for _, d := range []string{dir, filepath.Join(dir, "tls")} {
		entries, err := os.ReadDir(d)
		if err != nil {
			if os.IsNotExist(err) {
				continue
			}
			return fmt.Errorf("data dir: %w", err)
		}
		for _, e := range entries {
			p := filepath.Join(d, e.Name())
			fi, err := e.Info()
			if err != nil || !(fi.Mode().IsRegular() || fi.IsDir()) {
				continue // sockets, links and files gone meanwhile
			}
			want := os.FileMode(0o600)
			if fi.IsDir() {
				want = 0o700
			}
			if fi.Mode().Perm()&0o077 != 0 {
				if err := os.Chmod(p, want); err != nil {
					return fmt.Errorf("data dir: tighten %s: %w", p, err)
				}
			}
		}
	}
	return nil
}
