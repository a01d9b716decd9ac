package dkimqueue

import (
	"syscall"
	"unsafe"
)

// schedIdle is Linux's SCHED_IDLE policy: the thread runs only on CPU
// time that no normal thread on its run queue wants.
const schedIdle = 5

// lowerPriority puts the calling thread in SCHED_IDLE (Linux keeps the
// policy per thread; no privilege is needed to lower it), or, failing
// that, raises its nice value. The caller has locked its goroutine to
// the thread and never unlocks it, so the thread ends with it.
func lowerPriority(nice int) error {
	var param struct{ priority int32 }
	_, _, errno := syscall.RawSyscall(syscall.SYS_SCHED_SETSCHEDULER, uintptr(syscall.Gettid()), schedIdle, uintptr(unsafe.Pointer(&param)))
	if errno == 0 {
		return nil
	}
	return syscall.Setpriority(syscall.PRIO_PROCESS, syscall.Gettid(), nice)
}
