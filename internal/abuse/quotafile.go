package abuse

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// The operator's per-sender quotas are kept in a small JSON file in the
// data directory (quotas.json), not in the store: they are settings of
// this guard, read once at start and written when the operator changes
// one (atomically: a temporary file, fsync, rename).

type quotaJSON struct {
	PerHour int `json:"hour"`
	PerDay  int `json:"day"`
}

// UseQuotaFile loads the operator's quotas from path (missing: none) and
// saves later changes there.
func (g *Guard) UseQuotaFile(path string) error {
	m, err := loadQuotas(path)
	if err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.quotaFile, g.set = path, m
	return nil
}

func loadQuotas(path string) (map[string]Quota, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]Quota{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("quota file: %w", err)
	}
	var raw map[string]quotaJSON
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("quota file %s: %w", path, err)
	}
	m := make(map[string]Quota, len(raw))
	for k, v := range raw {
		m[k] = Quota{PerHour: v.PerHour, PerDay: v.PerDay}
	}
	return m, nil
}

func saveQuotas(path string, m map[string]Quota) error {
	raw := make(map[string]quotaJSON, len(m))
	for k, v := range m {
		raw[k] = quotaJSON{v.PerHour, v.PerDay}
	}
	b, err := json.MarshalIndent(raw, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".quotas-*")
	if err != nil {
		return fmt.Errorf("save quotas: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("save quotas: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("save quotas: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save quotas: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("save quotas: %w", err)
	}
	return nil
}
