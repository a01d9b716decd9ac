package dkimqueue

import "syscall"

// lowerPriority lowers the calling thread's scheduling priority (Linux
// keeps the nice value per thread); the caller has locked its goroutine
// to the thread and never unlocks it, so the thread ends with it.
func lowerPriority(nice int) error {
	return syscall.Setpriority(syscall.PRIO_PROCESS, syscall.Gettid(), nice)
}
