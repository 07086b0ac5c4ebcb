/*
 * powerloss.c - the power-loss fault layer (see powerloss.h for the model).
 *
 * Locking: every operation holds `freeze` for reading from before its
 * bookkeeping until its system call returned; the cut takes it for writing
 * (writer-preferring, so new operations queue behind it) and never releases
 * it. `mu` protects the file table, which is keyed by absolute path. The undo log is kept in memory: this
 * is a test mode, and a round writes megabytes, not gigabytes.
 */
#include "storage/powerloss.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "protocol/log.h"
#include "storage/fsutil.h"

typedef struct pl_undo {
    off_t off;
    size_t n;
    struct pl_undo *next; /* older */
    uint8_t old[];
} pl_undo;

typedef struct pl_file {
    char *path;
    off_t durable;
    int fresh; /* created by us; its directory not fsynced since */
    pl_undo *undo; /* newest first */
    struct pl_file *next;
} pl_file;

static pthread_rwlock_t freeze;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pl_file *files;
static unsigned long long ops, cut_at;
static unsigned long long rng = 1;
static int tear = 1, verbose, active;
static sl_fs_ops pl_ops;

static unsigned long long rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static off_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

/* mu held */
static pl_file *find(const char *path, int create)
{
    pl_file *f;
    for (f = files; f; f = f->next)
        if (strcmp(f->path, path) == 0)
            return f;
    if (!create)
        return NULL;
    f = calloc(1, sizeof(*f));
    if (!f || !(f->path = strdup(path)))
        abort(); /* a test mode: no way to model what we cannot track */
    f->durable = file_size(path);
    if (f->durable < 0)
        f->durable = 0;
    f->next = files;
    files = f;
    return f;
}

static void free_undo(pl_file *f)
{
    while (f->undo) {
        pl_undo *u = f->undo;
        f->undo = u->next;
        free(u);
    }
}

/* Save the old bytes of [off, off+n) that lie below the durable size. */
static void save_old(pl_file *f, off_t off, size_t n)
{
    off_t end = off + (off_t)n;
    pl_undo *u;
    int fd;
    ssize_t got;
    if (end > f->durable)
        end = f->durable;
    if (off >= end)
        return;
    u = malloc(sizeof(*u) + (size_t)(end - off));
    if (!u)
        abort();
    u->off = off;
    u->n = (size_t)(end - off);
    fd = open(f->path, O_RDONLY | O_CLOEXEC);
    got = fd >= 0 ? pread(fd, u->old, u->n, off) : -1;
    if (fd >= 0)
        close(fd);
    if (got < 0) {
        free(u);
        return;
    }
    u->n = (size_t)got; /* the file may be shorter than durable already */
    u->next = f->undo;
    f->undo = u;
}

void sl_pl_note_write(const char *path, off_t off, size_t n)
{
    pthread_mutex_lock(&mu);
    save_old(find(path, 1), off, n);
    pthread_mutex_unlock(&mu);
}

void sl_pl_note_truncate(const char *path, off_t len)
{
    pl_file *f;
    pthread_mutex_lock(&mu);
    f = find(path, 1);
    if (len < f->durable)
        save_old(f, len, (size_t)(f->durable - len));
    pthread_mutex_unlock(&mu);
}

void sl_pl_note_sync(const char *path)
{
    struct stat st;
    pl_file *f;
    size_t dl = strlen(path);
    pthread_mutex_lock(&mu);
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        for (f = files; f; f = f->next)
            if (strncmp(f->path, path, dl) == 0 && f->path[dl] == '/' &&
                !strchr(f->path + dl + 1, '/'))
                f->fresh = 0;
    } else {
        f = find(path, 1);
        free_undo(f);
        f->durable = file_size(path);
        if (f->durable < 0)
            f->durable = 0;
    }
    pthread_mutex_unlock(&mu);
}

static void note_create(const char *path)
{
    pl_file *f;
    pthread_mutex_lock(&mu);
    f = find(path, 1);
    free_undo(f);
    f->durable = 0;
    f->fresh = 1;
    pthread_mutex_unlock(&mu);
}

/* The machine stops: make the disk hold only what was synced. */
static void cut(void)
{
    pl_file *f;
    int removed = 0, torn = 0, nfiles = 0;
    long long dropped = 0;
    pthread_mutex_lock(&mu);
    for (f = files; f; f = f->next) {
        off_t size = file_size(f->path), keep;
        int fd;
        pl_undo *u;
        if (size < 0)
            continue; /* unlinked since */
        nfiles++;
        if (verbose)
            sl_log(SL_ERROR, "powerloss", "%s: size %lld durable %lld%s%s",
                   f->path, (long long)size, (long long)f->durable,
                   f->fresh ? " (new, directory not synced: removed)" : "",
                   f->undo ? " (overwrites undone)" : "");
        if (f->fresh) {
            unlink(f->path);
            removed++;
            dropped += size;
            continue;
        }
        fd = open(f->path, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        for (u = f->undo; u; u = u->next) {
            if (pwrite(fd, u->old, u->n, u->off) != (ssize_t)u->n)
                abort();
            dropped += (long long)u->n;
        }
        keep = f->durable;
        if (tear && size > keep && rnd() % 2) {
            keep += (off_t)(rnd() % (unsigned long long)(size - keep + 1));
            torn++;
        }
        if (size > keep)
            dropped += size - keep;
        if (ftruncate(fd, keep) != 0)
            abort();
        close(fd);
    }
    sl_log(SL_ERROR, "powerloss",
           "cut at operation %llu: %d files, %lld bytes dropped, %d torn "
           "tails, %d unsynced new files removed; exiting %d",
           cut_at, nfiles, dropped, torn, removed, SL_POWERLOSS_EXIT);
    _exit(SL_POWERLOSS_EXIT);
}

void sl_pl_begin(void)
{
    unsigned long long n;
    pthread_rwlock_rdlock(&freeze);
    n = __atomic_add_fetch(&ops, 1, __ATOMIC_SEQ_CST);
    if (n == cut_at) {
        pthread_rwlock_unlock(&freeze);
        pthread_rwlock_wrlock(&freeze); /* in-flight operations finish */
        cut();
    }
}

void sl_pl_end(void)
{
    pthread_rwlock_unlock(&freeze);
}

/* ---- the sl_fs table --------------------------------------------------- */

/* The path of fd, asked of the kernel at every operation: fds are dup()ed
 * and reused outside the seam, so a cache by fd number would go stale. */
static const char *path_of(int fd, char *buf, size_t len)
{
    char link[64];
    ssize_t n;
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    n = readlink(link, buf, len - 1);
    if (n <= 0)
        return NULL;
    buf[n] = 0;
    return buf;
}

static int pl_open(const char *path, int flags, mode_t mode)
{
    int existed = access(path, F_OK) == 0, fd;
    char real[PATH_MAX];
    sl_pl_begin();
    if (existed && (flags & O_TRUNC) && realpath(path, real))
        sl_pl_note_truncate(real, 0);
    fd = sl_fs_posix.open(path, flags, mode);
    if (fd >= 0) {
        char buf[PATH_MAX];
        if (!existed && (flags & O_CREAT) && path_of(fd, buf, sizeof(buf)))
            note_create(buf);
    }
    sl_pl_end();
    return fd;
}

static ssize_t pl_pwrite(int fd, const void *b, size_t n, off_t off)
{
    char buf[PATH_MAX];
    ssize_t r;
    sl_pl_begin();
    if (path_of(fd, buf, sizeof(buf)))
        sl_pl_note_write(buf, off, n);
    r = sl_fs_posix.pwrite(fd, b, n, off);
    sl_pl_end();
    return r;
}

static ssize_t pl_write(int fd, const void *b, size_t n)
{
    char buf[PATH_MAX];
    ssize_t r;
    off_t off;
    sl_pl_begin();
    off = (fcntl(fd, F_GETFL) & O_APPEND) ? lseek(fd, 0, SEEK_END)
                                           : lseek(fd, 0, SEEK_CUR);
    if (off >= 0 && path_of(fd, buf, sizeof(buf)))
        sl_pl_note_write(buf, off, n);
    r = sl_fs_posix.write(fd, b, n);
    sl_pl_end();
    return r;
}

static int pl_ftruncate(int fd, off_t len)
{
    char buf[PATH_MAX];
    int r;
    sl_pl_begin();
    if (path_of(fd, buf, sizeof(buf)))
        sl_pl_note_truncate(buf, len);
    r = sl_fs_posix.ftruncate(fd, len);
    sl_pl_end();
    return r;
}

static int sync_common(int fd, int (*fn)(int))
{
    char buf[PATH_MAX];
    int r;
    sl_pl_begin();
    r = fn(fd);
    if (r == 0 && path_of(fd, buf, sizeof(buf)))
        sl_pl_note_sync(buf);
    sl_pl_end();
    return r;
}

static int pl_fdatasync(int fd)
{
    return sync_common(fd, sl_fs_posix.fdatasync);
}

static int pl_fsync(int fd)
{
    return sync_common(fd, sl_fs_posix.fsync);
}

/* syncfs: every tracked file (and every directory entry) is durable. */
static int pl_syncfs(int fd)
{
    int r;
    sl_pl_begin();
    r = sl_fs_posix.syncfs(fd);
    if (r == 0) {
        pthread_mutex_lock(&mu);
        for (pl_file *f = files; f; f = f->next) {
            free_undo(f);
            f->durable = file_size(f->path);
            if (f->durable < 0)
                f->durable = 0;
            f->fresh = 0;
        }
        pthread_mutex_unlock(&mu);
    }
    sl_pl_end();
    return r;
}

int sl_powerloss_active(void)
{
    return active;
}

sl_err sl_powerloss_install(const char *spec, char *err, size_t errlen)
{
    char *s = strdup(spec ? spec : ""), *tok, *save = NULL;
    pthread_rwlockattr_t ra;
    unsigned long long seed = 1;
    sl_err rc = SL_OK;

    if (!s)
        return SL_ERR_NOMEM;
    for (tok = strtok_r(s, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
        char *eq = strchr(tok, '='), *end;
        unsigned long long v;
        if (!eq)
            goto bad;
        *eq = 0;
        errno = 0;
        v = strtoull(eq + 1, &end, 10);
        if (errno || *end || end == eq + 1)
            goto bad;
        if (strcmp(tok, "at") == 0)
            cut_at = v;
        else if (strcmp(tok, "seed") == 0)
            seed = v;
        else if (strcmp(tok, "tear") == 0 && v <= 1)
            tear = (int)v;
        else if (strcmp(tok, "verbose") == 0 && v <= 1)
            verbose = (int)v;
        else
            goto bad;
    }
    if (cut_at == 0) {
        snprintf(err, errlen, "SLUICE_POWERLOSS '%s': at=N (N >= 1) is "
                 "required", spec);
        rc = SL_ERR_INVALID_ARG;
        goto out;
    }
    rng = seed * 0x9E3779B97F4A7C15ull + 1;
    pthread_rwlockattr_init(&ra);
    pthread_rwlockattr_setkind_np(&ra,
                                  PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&freeze, &ra);
    pthread_rwlockattr_destroy(&ra);
    pl_ops = sl_fs_posix;
    pl_ops.open = pl_open;
    pl_ops.write = pl_write;
    pl_ops.pwrite = pl_pwrite;
    pl_ops.ftruncate = pl_ftruncate;
    pl_ops.fdatasync = pl_fdatasync;
    pl_ops.fsync = pl_fsync;
    pl_ops.syncfs = pl_syncfs;
    sl_fs = &pl_ops;
    active = 1;
    goto out;
bad:
    snprintf(err, errlen, "SLUICE_POWERLOSS '%s': bad part '%s' (expected "
             "at=N, seed=S, tear=0|1)", spec, tok);
    rc = SL_ERR_INVALID_ARG;
out:
    free(s);
    return rc;
}
