package sqlite

/*
#include <malloc.h>

// From sqlite3.h (the driver compiles SQLite into the binary).
int sqlite3_config(int, ...);
#define POSTHORN_SQLITE_CONFIG_MEMSTATUS 9

static void posthorn_tune_malloc(void) {
	// SQLite runs on whichever OS thread the Go scheduler gives a cgo call,
	// so glibc hands it per-thread arenas and trims them on free with
	// madvise(MADV_DONTNEED): each trim is a TLB shootdown and the next
	// allocation page-faults again. Measured, that cost most of the CPU of
	// a commit. Keep freed memory instead, in a few arenas.
	mallopt(M_TRIM_THRESHOLD, 256 * 1024 * 1024);
	mallopt(M_MMAP_THRESHOLD, 4 * 1024 * 1024);
	mallopt(M_ARENA_MAX, 2);
}

static int posthorn_tune_sqlite(void) {
	// SQLite's memory statistics take a process-wide mutex around every
	// malloc and free (several per statement); nothing reads them. Only
	// possible before SQLite initialises (the first open): otherwise it
	// returns SQLITE_MISUSE and changes nothing.
	return sqlite3_config(POSTHORN_SQLITE_CONFIG_MEMSTATUS, 0);
}
*/
import "C"

func init() {
	C.posthorn_tune_malloc()
	C.posthorn_tune_sqlite()
	registerWALGather() // initialises SQLite: after the settings above
}
