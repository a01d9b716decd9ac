package config

import (
	"crypto/sha256"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// SharedStore reports whether Store names a PostgreSQL database (a store
// several posthorn nodes may share) rather than the embedded SQLite one.
func (c *Config) SharedStore() bool {
	return strings.HasPrefix(c.Store, "postgres://") || strings.HasPrefix(c.Store, "postgresql://")
}

// Node is this node's name in a cluster: node_name, or the machine's
// hostname followed by a short hash of the data directory's absolute
// path, so that two nodes on one machine (each with its own data
// directory) differ and a restarted node keeps its name.
func (c *Config) Node() string {
	if c.NodeName != "" {
		return c.NodeName
	}
	host, _ := os.Hostname()
	if host == "" {
		host = "localhost"
	}
	dir, err := filepath.Abs(c.DataDir)
	if err != nil {
		dir = c.DataDir
	}
	sum := sha256.Sum256([]byte(dir))
	return host + "-" + hex.EncodeToString(sum[:3])
}

// redactURL hides a password in a store URL for messages.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxx")
	}
	return u.String()
}
