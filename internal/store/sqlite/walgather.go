package sqlite

/*
#include <stdlib.h>
#include <string.h>

// The parts of sqlite3.h this file needs (the driver compiles SQLite into
// the binary; these structures are SQLite's stable VFS interface, version 3).
typedef long long sqlite3_int64;
typedef struct sqlite3_file sqlite3_file;
typedef struct sqlite3_vfs sqlite3_vfs;
typedef void (*sqlite3_syscall_ptr)(void);
struct sqlite3_file { const struct sqlite3_io_methods *pMethods; };
typedef struct sqlite3_io_methods {
	int iVersion;
	int (*xClose)(sqlite3_file*);
	int (*xRead)(sqlite3_file*, void*, int iAmt, sqlite3_int64 iOfst);
	int (*xWrite)(sqlite3_file*, const void*, int iAmt, sqlite3_int64 iOfst);
	int (*xTruncate)(sqlite3_file*, sqlite3_int64 size);
	int (*xSync)(sqlite3_file*, int flags);
	int (*xFileSize)(sqlite3_file*, sqlite3_int64 *pSize);
	int (*xLock)(sqlite3_file*, int);
	int (*xUnlock)(sqlite3_file*, int);
	int (*xCheckReservedLock)(sqlite3_file*, int *pResOut);
	int (*xFileControl)(sqlite3_file*, int op, void *pArg);
	int (*xSectorSize)(sqlite3_file*);
	int (*xDeviceCharacteristics)(sqlite3_file*);
	int (*xShmMap)(sqlite3_file*, int iPg, int pgsz, int, void volatile**);
	int (*xShmLock)(sqlite3_file*, int offset, int n, int flags);
	void (*xShmBarrier)(sqlite3_file*);
	int (*xShmUnmap)(sqlite3_file*, int deleteFlag);
	int (*xFetch)(sqlite3_file*, sqlite3_int64 iOfst, int iAmt, void **pp);
	int (*xUnfetch)(sqlite3_file*, sqlite3_int64 iOfst, void *p);
} sqlite3_io_methods;
struct sqlite3_vfs {
	int iVersion;
	int szOsFile;
	int mxPathname;
	sqlite3_vfs *pNext;
	const char *zName;
	void *pAppData;
	int (*xOpen)(sqlite3_vfs*, const char *zName, sqlite3_file*, int flags, int *pOutFlags);
	void *rest[15]; // xDelete .. xNextSystemCall: copied from the default VFS
};
sqlite3_vfs *sqlite3_vfs_find(const char *zVfsName);
int sqlite3_vfs_register(sqlite3_vfs*, int makeDflt);

#define GATHER_SQLITE_OPEN_WAL 0x00080000
#define GATHER_SQLITE_IOERR_NOMEM (10 | (12<<8))
// The default VFS writes at most 128 KiB a call (it masks larger sizes).
#define GATHER_CAP (124 * 1024)

// A WAL file opened through the gathering VFS: its writes are kept in buf
// while they follow each other, and written with one pwrite before
// anything else is done with this file handle (a sync, a read, a
// truncation, a write elsewhere, closing). Writes reach the file in the
// order they were made, only later. Only the writer's connection writes
// the WAL between its commits, and every commit syncs it (synchronous=
// FULL), so the buffer is empty whenever another connection may look at
// or checkpoint-truncate the file; the one exception is the spilled
// frames of a transaction rolled back, written out at the next write:
// past the last commit, or under an older WAL header's salts after a
// checkpoint restarted the WAL, they are ignored, as they are without
// gathering.
typedef struct gatherFile {
	sqlite3_file base;
	sqlite3_file *real; // the default VFS's file, right after this struct
	char *buf;
	int n;              // bytes in buf
	sqlite3_int64 off;  // file offset of buf[0]
} gatherFile;

static sqlite3_vfs gatherVfs;
static sqlite3_vfs *gatherOrig;

static int gatherFlush(gatherFile *g) {
	if (g->n == 0) return 0;
	int n = g->n;
	g->n = 0;
	return g->real->pMethods->xWrite(g->real, g->buf, n, g->off);
}

static int gClose(sqlite3_file *f) {
	gatherFile *g = (gatherFile *)f;
	int rc = gatherFlush(g);
	int rc2 = g->real->pMethods->xClose(g->real);
	free(g->buf);
	g->buf = 0;
	return rc ? rc : rc2;
}

static int gWrite(sqlite3_file *f, const void *p, int amt, sqlite3_int64 off) {
	gatherFile *g = (gatherFile *)f;
	if (g->n > 0 && off == g->off + g->n && g->n + amt <= GATHER_CAP) {
		memcpy(g->buf + g->n, p, amt);
		g->n += amt;
		return 0;
	}
	int rc = gatherFlush(g);
	if (rc) return rc;
	if (amt > GATHER_CAP / 4) return g->real->pMethods->xWrite(g->real, p, amt, off);
	if (!g->buf && !(g->buf = malloc(GATHER_CAP))) return GATHER_SQLITE_IOERR_NOMEM;
	memcpy(g->buf, p, amt);
	g->n = amt;
	g->off = off;
	return 0;
}

// Every other method writes out what was gathered first, then does what
// the default VFS does.
#define GATHER_FWD(call) gatherFile *g = (gatherFile *)f; int rc = gatherFlush(g); if (rc) return rc; return g->real->pMethods->call

static int gRead(sqlite3_file *f, void *p, int amt, sqlite3_int64 off) { GATHER_FWD(xRead(g->real, p, amt, off)); }
static int gTruncate(sqlite3_file *f, sqlite3_int64 size) { GATHER_FWD(xTruncate(g->real, size)); }
static int gSync(sqlite3_file *f, int flags) { GATHER_FWD(xSync(g->real, flags)); }
static int gFileSize(sqlite3_file *f, sqlite3_int64 *size) { GATHER_FWD(xFileSize(g->real, size)); }
static int gLock(sqlite3_file *f, int l) { GATHER_FWD(xLock(g->real, l)); }
static int gUnlock(sqlite3_file *f, int l) { GATHER_FWD(xUnlock(g->real, l)); }
static int gCheckReservedLock(sqlite3_file *f, int *out) { GATHER_FWD(xCheckReservedLock(g->real, out)); }
static int gFileControl(sqlite3_file *f, int op, void *arg) { GATHER_FWD(xFileControl(g->real, op, arg)); }
static int gSectorSize(sqlite3_file *f) { gatherFile *g = (gatherFile *)f; return g->real->pMethods->xSectorSize(g->real); }
static int gDeviceCharacteristics(sqlite3_file *f) { gatherFile *g = (gatherFile *)f; return g->real->pMethods->xDeviceCharacteristics(g->real); }
static int gShmMap(sqlite3_file *f, int pg, int sz, int ext, void volatile **pp) { gatherFile *g = (gatherFile *)f; return g->real->pMethods->xShmMap(g->real, pg, sz, ext, pp); }
static int gShmLock(sqlite3_file *f, int off, int n, int flags) { GATHER_FWD(xShmLock(g->real, off, n, flags)); }
static void gShmBarrier(sqlite3_file *f) { gatherFile *g = (gatherFile *)f; g->real->pMethods->xShmBarrier(g->real); }
static int gShmUnmap(sqlite3_file *f, int del) { gatherFile *g = (gatherFile *)f; return g->real->pMethods->xShmUnmap(g->real, del); }
static int gFetch(sqlite3_file *f, sqlite3_int64 off, int amt, void **pp) { *pp = 0; return 0; } // no memory-mapped reads of the WAL
static int gUnfetch(sqlite3_file *f, sqlite3_int64 off, void *p) { return 0; }

static const sqlite3_io_methods gatherMethods = {
	3, gClose, gRead, gWrite, gTruncate, gSync, gFileSize, gLock, gUnlock, gCheckReservedLock,
	gFileControl, gSectorSize, gDeviceCharacteristics, gShmMap, gShmLock, gShmBarrier, gShmUnmap,
	gFetch, gUnfetch,
};

static int gatherOpen(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *outFlags) {
	if (!(flags & GATHER_SQLITE_OPEN_WAL)) {
		// Any other file is the default VFS's own, in place.
		return gatherOrig->xOpen(gatherOrig, name, f, flags, outFlags);
	}
	gatherFile *g = (gatherFile *)f;
	memset(g, 0, sizeof(*g));
	g->real = (sqlite3_file *)(g + 1);
	int rc = gatherOrig->xOpen(gatherOrig, name, g->real, flags, outFlags);
	if (rc == 0 && g->real->pMethods) g->base.pMethods = &gatherMethods;
	return rc;
}

// posthorn_register_walgather registers the VFS "posthorn-walgather" (not
// the default): the default VFS with the WAL's writes gathered.
static int posthorn_register_walgather(void) {
	gatherOrig = sqlite3_vfs_find(0);
	if (!gatherOrig) return 1;
	gatherVfs = *gatherOrig;
	gatherVfs.iVersion = gatherOrig->iVersion < 3 ? gatherOrig->iVersion : 3;
	gatherVfs.szOsFile = (int)sizeof(gatherFile) + gatherOrig->szOsFile;
	gatherVfs.pNext = 0;
	gatherVfs.zName = "posthorn-walgather";
	gatherVfs.xOpen = gatherOpen;
	return sqlite3_vfs_register(&gatherVfs, 0);
}
*/
import "C"

// walGatherVFS is the SQLite VFS the writer's connection opens the
// database with: the default one, except that the writes to the WAL
// file are gathered in memory while they follow each other and written
// with one pwrite before the file is synced (or read, truncated, locked,
// closed). SQLite writes each WAL frame with two pwrite calls (its
// 24-byte header, then the page); a commit of 40 pages made 80 syscalls,
// each several µs of CPU on a virtual machine. Durability is unchanged:
// the commit's fsync comes after the single write, and nothing is
// acknowledged before the commit returns.
// It is registered at start-up, after malloc.go's settings (which must
// come before SQLite initialises); if that failed, opening the writer
// fails with "no such vfs".
const walGatherVFS = "posthorn-walgather"

func registerWALGather() { C.posthorn_register_walgather() }
