/*
 * pl_vfs.c - the SQLite side of the power-loss fault layer
 * (storage/powerloss.h): a VFS that wraps the default one and reports
 * every write, truncate and sync of groups.db, meta.db and their WALs to
 * the layer, as SQLite's own crash tests (src/test6.c) wrap theirs.
 * Registered as the default VFS by sluiced only under SLUICE_POWERLOSS.
 */
#include "broker/pl_vfs.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "storage/powerloss.h"

typedef struct pl_file {
    sqlite3_file base;
    char path[PATH_MAX];
    sqlite3_file *real; /* follows this struct */
} pl_file;

static sqlite3_vfs *parent;
static sqlite3_vfs vfs;
static sqlite3_io_methods methods;

#define REAL(f) (((pl_file *)(f))->real)

static int x_close(sqlite3_file *f)
{
    return REAL(f)->pMethods->xClose(REAL(f));
}

static int x_read(sqlite3_file *f, void *b, int n, sqlite3_int64 off)
{
    return REAL(f)->pMethods->xRead(REAL(f), b, n, off);
}

static int x_write(sqlite3_file *f, const void *b, int n, sqlite3_int64 off)
{
    int rc;
    sl_pl_begin();
    sl_pl_note_write(((pl_file *)f)->path, (off_t)off, (size_t)n);
    rc = REAL(f)->pMethods->xWrite(REAL(f), b, n, off);
    sl_pl_end();
    return rc;
}

static int x_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    int rc;
    sl_pl_begin();
    sl_pl_note_truncate(((pl_file *)f)->path, (off_t)size);
    rc = REAL(f)->pMethods->xTruncate(REAL(f), size);
    sl_pl_end();
    return rc;
}

static int x_sync(sqlite3_file *f, int flags)
{
    int rc;
    sl_pl_begin();
    rc = REAL(f)->pMethods->xSync(REAL(f), flags);
    if (rc == SQLITE_OK)
        sl_pl_note_sync(((pl_file *)f)->path);
    sl_pl_end();
    return rc;
}

static int x_size(sqlite3_file *f, sqlite3_int64 *s)
{
    return REAL(f)->pMethods->xFileSize(REAL(f), s);
}
static int x_lock(sqlite3_file *f, int l)
{
    return REAL(f)->pMethods->xLock(REAL(f), l);
}
static int x_unlock(sqlite3_file *f, int l)
{
    return REAL(f)->pMethods->xUnlock(REAL(f), l);
}
static int x_reserved(sqlite3_file *f, int *o)
{
    return REAL(f)->pMethods->xCheckReservedLock(REAL(f), o);
}
static int x_fcntl(sqlite3_file *f, int op, void *a)
{
    return REAL(f)->pMethods->xFileControl(REAL(f), op, a);
}
static int x_sector(sqlite3_file *f)
{
    return REAL(f)->pMethods->xSectorSize(REAL(f));
}
static int x_devchar(sqlite3_file *f)
{
    return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}
static int x_shm_map(sqlite3_file *f, int pg, int sz, int ext,
                     void volatile **pp)
{
    return REAL(f)->pMethods->xShmMap(REAL(f), pg, sz, ext, pp);
}
static int x_shm_lock(sqlite3_file *f, int off, int n, int fl)
{
    return REAL(f)->pMethods->xShmLock(REAL(f), off, n, fl);
}
static void x_shm_barrier(sqlite3_file *f)
{
    REAL(f)->pMethods->xShmBarrier(REAL(f));
}
static int x_shm_unmap(sqlite3_file *f, int del)
{
    return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}
static int x_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **pp)
{
    /* no memory-mapped I/O: every page goes through x_read/x_write */
    *pp = NULL;
    return SQLITE_OK;
}
static int x_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
    return SQLITE_OK;
}

static int x_open(sqlite3_vfs *v, const char *name, sqlite3_file *f, int flags,
                  int *out_flags)
{
    pl_file *p = (pl_file *)f;
    int rc;
    memset(p, 0, sizeof(*p));
    p->real = (sqlite3_file *)(p + 1);
    if (name)
        snprintf(p->path, sizeof(p->path), "%s", name);
    rc = parent->xOpen(parent, name, p->real, flags, out_flags);
    if (rc == SQLITE_OK && p->real->pMethods)
        f->pMethods = &methods;
    return rc;
}

static int x_delete(sqlite3_vfs *v, const char *n, int sync)
{
    return parent->xDelete(parent, n, sync);
}
static int x_access(sqlite3_vfs *v, const char *n, int fl, int *out)
{
    return parent->xAccess(parent, n, fl, out);
}
static int x_fullpath(sqlite3_vfs *v, const char *n, int len, char *out)
{
    return parent->xFullPathname(parent, n, len, out);
}
static int x_random(sqlite3_vfs *v, int n, char *out)
{
    return parent->xRandomness(parent, n, out);
}
static int x_sleep(sqlite3_vfs *v, int us)
{
    return parent->xSleep(parent, us);
}
static int x_time(sqlite3_vfs *v, double *t)
{
    return parent->xCurrentTime(parent, t);
}
static int x_lasterr(sqlite3_vfs *v, int n, char *b)
{
    return parent->xGetLastError ? parent->xGetLastError(parent, n, b) : 0;
}
static int x_time64(sqlite3_vfs *v, sqlite3_int64 *t)
{
    return parent->xCurrentTimeInt64(parent, t);
}

int sl_pl_vfs_register(void)
{
    parent = sqlite3_vfs_find(NULL);
    if (!parent)
        return SQLITE_ERROR;
    methods = (sqlite3_io_methods){
        .iVersion = 3,
        .xClose = x_close,
        .xRead = x_read,
        .xWrite = x_write,
        .xTruncate = x_truncate,
        .xSync = x_sync,
        .xFileSize = x_size,
        .xLock = x_lock,
        .xUnlock = x_unlock,
        .xCheckReservedLock = x_reserved,
        .xFileControl = x_fcntl,
        .xSectorSize = x_sector,
        .xDeviceCharacteristics = x_devchar,
        .xShmMap = x_shm_map,
        .xShmLock = x_shm_lock,
        .xShmBarrier = x_shm_barrier,
        .xShmUnmap = x_shm_unmap,
        .xFetch = x_fetch,
        .xUnfetch = x_unfetch,
    };
    vfs = (sqlite3_vfs){
        .iVersion = 2,
        .szOsFile = (int)sizeof(pl_file) + parent->szOsFile,
        .mxPathname = parent->mxPathname,
        .zName = "sl_powerloss",
        .xOpen = x_open,
        .xDelete = x_delete,
        .xAccess = x_access,
        .xFullPathname = x_fullpath,
        .xRandomness = x_random,
        .xSleep = x_sleep,
        .xCurrentTime = x_time,
        .xGetLastError = x_lasterr,
        .xCurrentTimeInt64 = x_time64,
    };
    return sqlite3_vfs_register(&vfs, 1);
}
