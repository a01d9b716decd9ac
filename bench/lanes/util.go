package main

import (
	"encoding/json"
	"os/exec"
)

func run(bin string, args ...string) ([]byte, error) {
	return exec.Command(bin, args...).Output()
}

func jsonField(b []byte, key string) string {
	var m map[string]any
	json.Unmarshal(b, &m)
	s, _ := m[key].(string)
	return s
}
