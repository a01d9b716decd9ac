package main

import "os"

// Where every command finds its configuration and data directory, first
// match wins:
//
//	config file:    --config, $POSTHORN_CONFIG, /etc/posthorn/posthorn.toml if it exists, none (defaults)
//	data directory: --data-dir, $POSTHORN_DATA_DIR, data_dir in the config file, ./posthorn-data
//
// So a system install (config in /etc/posthorn, data_dir = "/var/lib/posthorn")
// needs no flags, and a checkout works as before.
const (
	envConfig    = "POSTHORN_CONFIG"
	envDataDir   = "POSTHORN_DATA_DIR"
	systemConfig = "/etc/posthorn/posthorn.toml"
)

// resolveConfigPath is the configuration file to read ("" for none).
func (g *globals) resolveConfigPath() string {
	if g.configPath != "" {
		return g.configPath
	}
	if p := os.Getenv(envConfig); p != "" {
		return p
	}
	if _, err := os.Stat(systemConfig); err == nil {
		return systemConfig
	}
	return ""
}

// dataDirOverride is the data directory given outside the file ("" for
// none).
func (g *globals) dataDirOverride() string {
	if g.dataDir != "" {
		return g.dataDir
	}
	return os.Getenv(envDataDir)
}
