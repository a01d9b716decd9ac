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

static void posthorn_trim(void) { malloc_trim(0); }

static int posthorn_tune_sqlite(void) {
	// SQLite's memory statistics take a process-wide mutex around every
	// malloc and free (several per statement); nothing reads them. Only
	// possible before SQLite initialises (the first open): otherwise it
	// returns SQLITE_MISUSE and changes nothing.
	return sqlite3_config(POSTHORN_SQLITE_CONFIG_MEMSTATUS, 0);
}
*/
import "C"

import "time"

// trimEvery is how often the memory SQLite freed goes back to the OS.
// Kept on every free (above), a burst (a million messages through the
// bulk API, a large merge or checkpoint) left a quarter of a GiB of
// freed C heap in the RSS for good; one malloc_trim every ten seconds
// returns it at the cost of one round of page faults, not one per commit.
const trimEvery = 10 * time.Second

// trimmer returns freed C heap to the OS every trimEvery until quit.
func trimmer(quit <-chan struct{}) {
	t := time.NewTicker(trimEvery)
	defer t.Stop()
	for {
		select {
		case <-quit:
			return
		case <-t.C:
			C.posthorn_trim()
		}
	}
}

func init() {
	C.posthorn_tune_malloc()
	C.posthorn_tune_sqlite()
	registerWALGather() // initialises SQLite: after the settings above
}
