/*
 * fsutil.c - fault seam, durable-file recipe, data-directory lock.
 */
#include "storage/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "protocol/log.h"

static int posix_open(const char *path, int flags, mode_t mode)
{
    return open(path, flags | O_CLOEXEC, mode);
}

const sl_fs_ops sl_fs_posix = {
    .open = posix_open,
    .write = write,
    .pwrite = pwrite,
    .fdatasync = fdatasync,
    .fsync = fsync,
    .ftruncate = ftruncate,
    .syncfs = syncfs,
};

const sl_fs_ops *sl_fs = &sl_fs_posix;

long long sl_fs_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

long long sl_fs_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

sl_err sl_fs_pwrite_all(int fd, const void *buf, size_t n, off_t off)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t w = sl_fs->pwrite(fd, p, n, off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return SL_ESYS(errno);
        }
        if (w == 0)
            return SL_ESYS(ENOSPC);
        p += w;
        n -= (size_t)w;
        off += w;
    }
    return SL_OK;
}

sl_err sl_fs_pread_all(int fd, void *buf, size_t n, off_t off, size_t *got)
{
    char *p = buf;
    size_t done = 0;
    while (done < n) {
        ssize_t r = pread(fd, p + done, n - done, off + (off_t)done);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return SL_ESYS(errno);
        }
        if (r == 0)
            break;
        done += (size_t)r;
    }
    if (got)
        *got = done;
    return done == n ? SL_OK : SL_ERR_MALFORMED;
}

sl_err sl_fs_fsync_dir(const char *path, int is_dir)
{
    char buf[PATH_MAX];
    const char *d = path;
    int fd, rc = SL_OK;

    if (!is_dir) {
        const char *slash = strrchr(path, '/');
        if (!slash) {
            d = ".";
        } else if (slash == path) {
            d = "/";
        } else {
            size_t len = (size_t)(slash - path);
            if (len >= sizeof(buf))
                return SL_ESYS(ENAMETOOLONG);
            memcpy(buf, path, len);
            buf[len] = 0;
            d = buf;
        }
    }
    fd = sl_fs->open(d, O_RDONLY | O_DIRECTORY, 0);
    if (fd < 0)
        return SL_ESYS(errno);
    if (sl_fs->fsync(fd) != 0)
        rc = SL_ESYS(errno);
    close(fd);
    return rc;
}

sl_err sl_fs_commit_durable(int tmp_fd, const char *tmp, const char *path)
{
    /* Order matters: the data must be on disk before the rename can be,
     * otherwise a crash right after the rename leaves PATH empty or short
     * (the ext4 "zero-length file" problem). The directory fsync makes the
     * rename itself durable. */
    if (sl_fs->fsync(tmp_fd) != 0)
        return SL_ESYS(errno);
    if (rename(tmp, path) != 0)
        return SL_ESYS(errno);
    return sl_fs_fsync_dir(path, 0);
}

sl_err sl_fs_write_durable(const char *path, const void *data, size_t len)
{
    char tmp[PATH_MAX];
    int fd = -1;
    sl_err rc;

    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
        return SL_ESYS(ENAMETOOLONG);
    /* A stale PATH.tmp from a crash is simply replaced (O_TRUNC); it was
     * never renamed, so nobody relies on it. */
    fd = sl_fs->open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return SL_ESYS(errno);
    rc = sl_fs_pwrite_all(fd, data, len, 0);
    if (rc != SL_OK)
        goto out;
    rc = sl_fs_commit_durable(fd, tmp, path);
out:
    close(fd);
    if (rc != SL_OK)
        unlink(tmp);
    return rc;
}

sl_err sl_fs_mkdirs(const char *path, mode_t mode)
{
    char buf[PATH_MAX];
    size_t len = strlen(path);

    if (len == 0 || len >= sizeof(buf))
        return SL_ESYS(ENAMETOOLONG);
    memcpy(buf, path, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != 0)
            continue;
        char c = buf[i];
        buf[i] = 0;
        if (mkdir(buf, mode) != 0 && errno != EEXIST)
            return SL_ESYS(errno);
        buf[i] = c;
    }
    struct stat st;
    if (stat(path, &st) != 0)
        return SL_ESYS(errno);
    if (!S_ISDIR(st.st_mode))
        return SL_ESYS(ENOTDIR);
    return SL_OK;
}

#define SETERR(...)                                                            \
    do {                                                                       \
        if (errbuf && n)                                                       \
            snprintf(errbuf, n, __VA_ARGS__);                                  \
    } while (0)

sl_err sl_fs_lock_dir(const char *dir, int *fd_out, char *errbuf, size_t n)
{
    char path[PATH_MAX];
    char pid[32];
    int fd;

    if ((size_t)snprintf(path, sizeof(path), "%s/.lock", dir) >= sizeof(path)) {
        SETERR("data directory path too long: %s", dir);
        return SL_ESYS(ENAMETOOLONG);
    }
    fd = sl_fs->open(path, O_RDWR | O_CREAT, 0644);
    if (fd < 0) {
        int e = errno;
        SETERR("cannot create lock file %s: %s", path, strerror(e));
        return SL_ESYS(e);
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        if (e == EWOULDBLOCK) {
            ssize_t r = pread(fd, pid, sizeof(pid) - 1, 0);
            size_t k = 0;
            pid[r > 0 ? r : 0] = 0;
            while (pid[k] >= '0' && pid[k] <= '9')
                k++;
            pid[k] = 0;
            if (errbuf && n)
                snprintf(errbuf, n,
                         "data directory %s is locked by another sluiced "
                         "(pid %s)",
                         dir, k ? pid : "unknown");
            close(fd);
            return SL_ERR_BUSY;
        }
        SETERR("cannot lock %s: %s", path, strerror(e));
        close(fd);
        return SL_ESYS(e);
    }
    /* Ours now: record who holds it, for the message above. */
    int len = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    if (sl_fs->ftruncate(fd, 0) != 0 ||
        sl_fs_pwrite_all(fd, pid, (size_t)len, 0) != SL_OK)
        sl_log(SL_WARN, "storage", "cannot write pid into %s", path);
    *fd_out = fd;
    return SL_OK;
}

void sl_fs_unlock_dir(int fd)
{
    if (fd >= 0)
        close(fd); /* releases the flock */
}
