//go:build !linux

package dkimqueue

// lowerPriority is a no-op where the nice value is not per thread.
func lowerPriority(int) error { return nil }
