/*
 * fsutil.h - file system helpers of storage/: the fault-injection seam, the
 * durable-file recipe and the data-directory lock.
 *
 * Every write, pwrite, fdatasync, fsync, syncfs, ftruncate and open done by
 * storage/
 * goes through the table `sl_fs` points at. Tests replace it (keep a copy of
 * sl_fs_posix, override one entry, point sl_fs at the copy) to inject ENOSPC
 * or EIO exactly where they want, in the manner of SQLite's VFS (test6.c)
 * and beanstalkd's falloc seam. Swap it only while no flusher thread runs
 * a round (or accept that the flusher sees either table).
 */
#ifndef SL_FSUTIL_H
#define SL_FSUTIL_H

#include <stddef.h>
#include <sys/types.h>

#include "protocol/err.h"

typedef struct sl_fs_ops {
    int (*open)(const char *path, int flags, mode_t mode);
    ssize_t (*write)(int fd, const void *buf, size_t n);
    ssize_t (*pwrite)(int fd, const void *buf, size_t n, off_t off);
    int (*fdatasync)(int fd);
    int (*fsync)(int fd);
    int (*ftruncate)(int fd, off_t len);
    /* syncfs(2): every dirty file of fd's file system, and the device
     * cache (start-up after a crash, clean stop; partition.c). */
    int (*syncfs)(int fd);
} sl_fs_ops;

/* The real system calls. */
extern const sl_fs_ops sl_fs_posix;
/* The table storage/ uses; defaults to &sl_fs_posix. @thread any (reads) */
extern const sl_fs_ops *sl_fs;

/*
 * Lock the data directory `dir` (flock LOCK_EX|LOCK_NB on DIR/.lock) and
 * write our pid into the lock file. On success *fd_out holds the lock: keep
 * it open for the life of the process (sl_fs_unlock_dir releases it).
 * Returns SL_OK; SL_ERR_BUSY when another process holds the lock (errbuf:
 * "data directory DIR is locked by another sluiced (pid N)"); SL_ESYS(errno)
 * when the file cannot be created (errbuf names the path). errbuf may be
 * NULL. @thread any
 */
sl_err sl_fs_lock_dir(const char *dir, int *fd_out, char *errbuf, size_t n);
/* Release a lock taken by sl_fs_lock_dir (closes fd). Accepts -1. */
void sl_fs_unlock_dir(int fd);

/*
 * The one recipe for durable files: write `data` to PATH.tmp, fsync it,
 * rename it over PATH, fsync the directory. After SL_OK the new contents
 * survive a crash; on failure PATH is unchanged (the .tmp is removed).
 * Returns SL_OK or SL_ESYS(errno). @thread any
 */
sl_err sl_fs_write_durable(const char *path, const void *data, size_t len);

/* The second half of the recipe, for files written by the caller (e.g.
 * compaction streams into TMP): fsync tmp_fd, rename tmp over path, fsync
 * the directory. Does not close tmp_fd. */
sl_err sl_fs_commit_durable(int tmp_fd, const char *tmp, const char *path);

/* fsync the directory holding `path` (or `path` itself when is_dir). */
sl_err sl_fs_fsync_dir(const char *path, int is_dir);

/* mkdir -p. SL_OK when it exists already. */
sl_err sl_fs_mkdirs(const char *path, mode_t mode);

/* Write all n bytes at off (loops over short writes) through sl_fs.
 * Returns SL_OK or SL_ESYS(errno) (ENOSPC for a write that made no
 * progress without an errno). */
sl_err sl_fs_pwrite_all(int fd, const void *buf, size_t n, off_t off);

/* Read exactly n bytes at off with pread. SL_OK, SL_ERR_MALFORMED if the
 * file ends first (*got, may be NULL, says how many bytes were read), or
 * SL_ESYS(errno). */
sl_err sl_fs_pread_all(int fd, void *buf, size_t n, off_t off, size_t *got);

/* Wall clock in ms since the epoch. */
long long sl_fs_now_ms(void);
/* Monotonic clock in microseconds (durations, deadlines). */
long long sl_fs_mono_us(void);

#endif
