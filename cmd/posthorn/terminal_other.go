//go:build !linux

package main

// isTerminal is unknown off Linux: passwords are read from stdin as if
// it were not a terminal (give --password or pipe it in).
func isTerminal(fd int) bool { return false }

func withoutEcho(fd int, fn func() error) error { return fn() }
