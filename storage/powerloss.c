/*
 * powerloss.c - the power-loss fault layer (see powerloss.h for the model).
 *
 * Locking: every operation holds `freeze` for reading from before its
 * bookkeeping until its system call returned; the cut takes it for writing
 * (writer-preferring, so new operations queue behind it) and never releases
 * it. `mu` protects the file table, which is keyed by absolute path. The undo
 * log is kept in memory: this is a test mode, and a round writes megabytes, not
 * gigabytes.
 *
 * The rest of the process stops before the files change (stop_world):
 * reads (sendfile, pread) do not go through the seam, so without the stop
 * the event loop went on answering clients from files the cut was
 * rewriting. A queue acquire answered that way carried zeros where the
 * undo had put back preallocated space (a reply no real power loss can
 * send; docs/benchmarks.md, "round 462"). So the cutting thread first
 * parks every other thread in a signal handler that never returns, then
 * resets every TCP connection (SO_LINGER 0: what the socket buffers still
 * held never leaves, as with the machine off), and only then rewrites the
 * files. From the stop on, it takes no lock another thread could hold
 * (no malloc, no stdio, no gmtime: see raw_log).
 *
 * The stop was not enough: a reply written by sendfile before the cut
 * does not carry a copy of the bytes, the socket buffers hold references
 * to the segment's page cache pages, and on loopback those references
 * travel into the client's receive queue, where the reset does not reach
 * (what was received stays readable after an RST). A client that read its
 * reply a little late (under load) read the bytes the cut had just put
 * back: zeros again (crash_powerloss, 2026-12-07). So the cut no longer
 * writes into the pages a reply may still refer to: it reads what
 * survives, truncates the file to 0 (which takes the old pages out of the
 * file unchanged) and writes the content back into new pages
 * (rewrite_file).
 */
#include "storage/powerloss.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
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
    int fresh;     /* created by us; its directory not fsynced since */
    pl_undo *undo; /* newest first */
    struct pl_file *next;
} pl_file;

static pthread_rwlock_t freeze;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pl_file *files;
static unsigned long long ops, cut_at;
static unsigned long long rng = 1;
static int tear = 1, verbose, active;
static unsigned long long hold_ms; /* tests: stay stopped this long */
static int stop = 1; /* 0: the old cut under a running process (tests) */
static int inplace;  /* 1: the old cut, files rewritten in place (tests) */
static int cutting;  /* set once, by the thread that cuts */
static int armed_by_signal; /* signal=1 */
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

/* ---- stopping the rest of the process ---------------------------------- */

#define PL_STOP_MAX 4096 /* threads; far more than sluiced starts */
static int stop_sig;
static pid_t stopped[PL_STOP_MAX];
static int nstopped;

/* Parks the thread it runs on for good (until _exit). */
static void stop_handler(int sig)
{
    sigset_t all;
    int i = __atomic_fetch_add(&nstopped, 1, __ATOMIC_SEQ_CST);
    (void)sig;
    if (i < PL_STOP_MAX)
        __atomic_store_n(&stopped[i], gettid(), __ATOMIC_SEQ_CST);
    sigfillset(&all);
    for (;;)
        sigsuspend(&all);
}

static int is_stopped(pid_t tid)
{
    int n = __atomic_load_n(&nstopped, __ATOMIC_SEQ_CST);
    for (int i = 0; i < n && i < PL_STOP_MAX; i++)
        if (__atomic_load_n(&stopped[i], __ATOMIC_SEQ_CST) == tid)
            return 1;
    return 0;
}

/* Calls fn(number) for each numeric entry of a /proc directory; no
 * allocation (getdents64 into a stack buffer). */
static void each_entry(const char *dir, void (*fn)(long, void *), void *arg)
{
    char buf[4096] __attribute__((aligned(8))); /* dirent64 records */
    ssize_t n;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return;
    while ((n = getdents64(fd, buf, sizeof(buf))) > 0) {
        for (ssize_t off = 0; off < n;) {
            struct dirent64 *d = (struct dirent64 *)(buf + off);
            char *end;
            long v = strtol(d->d_name, &end, 10);
            off += d->d_reclen;
            if (end != d->d_name && *end == 0 && v != fd)
                fn(v, arg);
        }
    }
    close(fd);
}

typedef struct {
    pid_t self;
    int running; /* threads not parked yet */
    pid_t sent[PL_STOP_MAX];
    int nsent;
} stop_scan;

static void stop_one(long tid, void *arg)
{
    stop_scan *sc = arg;
    int i;
    if ((pid_t)tid == sc->self || is_stopped((pid_t)tid))
        return;
    sc->running++;
    for (i = 0; i < sc->nsent; i++)
        if (sc->sent[i] == (pid_t)tid)
            return; /* signalled; the handler has not run yet */
    if (sc->nsent < PL_STOP_MAX && tgkill(getpid(), (pid_t)tid, stop_sig) == 0)
        sc->sent[sc->nsent++] = (pid_t)tid;
}

/* Park every other thread of the process; returns how many would not stop
 * within 5 s (0 in every run so far). Threads started meanwhile are found
 * by the next scan. */
static int stop_world(void)
{
    static stop_scan sc;
    struct timespec t0, now, nap = {0, 50 * 1000};
    sc.self = gettid();
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        sc.running = 0;
        each_entry("/proc/self/task", stop_one, &sc);
        if (sc.running == 0)
            return 0;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - t0.tv_sec > 5)
            return sc.running;
        nanosleep(&nap, NULL);
    }
}

/* Reset a TCP socket: nothing more of what it holds reaches the peer. */
static void reset_socket(long fd, void *arg)
{
    int dom = 0, type = 0;
    socklen_t l1 = sizeof(dom), l2 = sizeof(type);
    struct linger lg = {1, 0};
    if (getsockopt((int)fd, SOL_SOCKET, SO_DOMAIN, &dom, &l1) != 0 ||
        getsockopt((int)fd, SOL_SOCKET, SO_TYPE, &type, &l2) != 0 ||
        (dom != AF_INET && dom != AF_INET6) || type != SOCK_STREAM)
        return;
    setsockopt((int)fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close((int)fd);
    ++*(int *)arg;
}

/* One log line in sl_log's text format, written without a lock another
 * (parked) thread could hold: sl_log's gmtime_r takes glibc's tz lock. */
__attribute__((format(printf, 1, 2))) static void raw_log(const char *fmt, ...)
{
    char line[1024];
    struct timespec ts;
    long long days, sod, z, era, doe, yoe, y, doy, mp, d, m;
    int n, w;
    va_list ap;
    clock_gettime(CLOCK_REALTIME, &ts);
    days = ts.tv_sec / 86400;
    sod = ts.tv_sec % 86400;
    /* civil date from days since 1970-01-01 (H. Hinnant's algorithm) */
    z = days + 719468;
    era = z / 146097;
    doe = z - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    y = yoe + era * 400;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    d = doy - (153 * mp + 2) / 5 + 1;
    m = mp < 10 ? mp + 3 : mp - 9;
    y += m <= 2;
    n = snprintf(line, sizeof(line),
                 "%04lld-%02lld-%02lldT%02lld:%02lld:%02lld.%03ldZ ERROR "
                 "powerloss ",
                 y, m, d, sod / 3600, sod / 60 % 60, sod % 60,
                 ts.tv_nsec / 1000000);
    va_start(ap, fmt);
    w = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (w > 0)
        n += w < (int)sizeof(line) - n - 1 ? w : (int)sizeof(line) - n - 2;
    line[n++] = '\n';
    if (write(sl_log_fd(), line, (size_t)n) < 0)
        return;
}

/*
 * Make f hold what survives (its first min(size, keep) bytes, the undo
 * log put back, keep bytes long) without changing a byte under a reply
 * already sent. sendfile hands the socket references to the file's page
 * cache pages, not a copy, and on loopback those references travel into
 * the client's receive queue, where resetting the connection does not
 * reach. Rewriting the file in place changed what a client that read its
 * reply late then read (zeros where the undo put back preallocated
 * space); truncating it in place did too (a truncate inside a folio
 * zeroes the rest of it, and ext4 caches files in folios of up to 2 MiB).
 * A truncate to 0 only takes the folios out of the file, unchanged, so:
 * read what survives, truncate to 0, write it back. Same inode (the
 * journal names segments by inode number); new pages. A new file renamed
 * over the old one would keep the old pages too, but changes the inode,
 * and the journal then skipped the segment's entries at replay. The
 * buffer comes from mmap: no malloc while other threads are parked.
 */
static void rewrite_file(pl_file *f, off_t size, off_t keep)
{
    off_t have = size < keep ? size : keep, pos;
    size_t len = (size_t)keep;
    uint8_t *buf = NULL;
    pl_undo *u;
    int fd = open(f->path, O_RDWR | O_CLOEXEC);

    if (fd < 0)
        return; /* gone since the stat */
    if (len > 0) {
        buf = mmap(NULL, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (buf == MAP_FAILED)
            abort();
    }
    for (pos = 0; pos < have;) {
        ssize_t got = pread(fd, buf + pos, (size_t)(have - pos), pos);
        if (got <= 0)
            abort();
        pos += got;
    }
    for (u = f->undo; u; u = u->next) /* newest first: oldest bytes win */
        memcpy(buf + u->off, u->old, u->n);
    if (ftruncate(fd, 0) != 0)
        abort();
    for (pos = 0; pos < keep;) {
        ssize_t put = pwrite(fd, buf + pos, (size_t)(keep - pos), pos);
        if (put <= 0)
            abort();
        pos += put;
    }
    if (buf)
        munmap(buf, len);
    close(fd);
}

/* The machine stops: make the disk hold only what was synced. */
static void cut(void)
{
    pl_file *f;
    int removed = 0, torn = 0, nfiles = 0, resets = 0, unstopped = 0;
    long long dropped = 0;
    if (stop) {
        unstopped = stop_world();
        each_entry("/proc/self/fd", reset_socket, &resets);
    }
    pthread_mutex_lock(&mu);
    for (f = files; f; f = f->next) {
        off_t size = file_size(f->path), keep;
        int fd;
        pl_undo *u;
        if (size < 0)
            continue; /* unlinked since */
        nfiles++;
        if (verbose)
            raw_log("%s: size %lld durable %lld%s%s", f->path, (long long)size,
                    (long long)f->durable,
                    f->fresh ? " (new, directory not synced: removed)" : "",
                    f->undo ? " (overwrites undone)" : "");
        if (f->fresh) {
            unlink(f->path);
            removed++;
            dropped += size;
            continue;
        }
        keep = f->durable;
        if (tear && size > keep && rnd() % 2) {
            keep += (off_t)(rnd() % (unsigned long long)(size - keep + 1));
            torn++;
        }
        if (!f->undo && size == keep)
            continue; /* nothing to drop */
        for (u = f->undo; u; u = u->next)
            dropped += (long long)u->n;
        if (size > keep)
            dropped += size - keep;
        if (inplace) {
            fd = open(f->path, O_WRONLY | O_CLOEXEC);
            if (fd < 0)
                continue;
            for (u = f->undo; u; u = u->next)
                if (pwrite(fd, u->old, u->n, u->off) != (ssize_t)u->n)
                    abort();
            if (ftruncate(fd, keep) != 0)
                abort();
            close(fd);
        } else {
            rewrite_file(f, size, keep);
        }
    }
    raw_log("cut at operation %llu: %d files, %lld bytes dropped, %d torn "
            "tails, %d unsynced new files removed, %d connections reset%s; "
            "exiting %d",
            cut_at, nfiles, dropped, torn, removed, resets,
            unstopped ? " (SOME THREADS DID NOT STOP)" : "", SL_POWERLOSS_EXIT);
    if (hold_ms) {
        struct timespec t = {(time_t)(hold_ms / 1000),
                             (long)(hold_ms % 1000) * 1000000};
        while (nanosleep(&t, &t) != 0 && errno == EINTR)
            ;
    }
    _exit(SL_POWERLOSS_EXIT);
}

/* signal=1: the signal moves the cut to the next operation. */
static void arm_handler(int sig)
{
    (void)sig;
    __atomic_store_n(&cut_at, __atomic_load_n(&ops, __ATOMIC_SEQ_CST) + 1,
                     __ATOMIC_SEQ_CST);
}

void sl_pl_begin(void)
{
    unsigned long long n;
    pthread_rwlock_rdlock(&freeze);
    n = __atomic_add_fetch(&ops, 1, __ATOMIC_SEQ_CST);
    if (n >= __atomic_load_n(&cut_at, __ATOMIC_SEQ_CST) &&
        !__atomic_exchange_n(&cutting, 1, __ATOMIC_SEQ_CST)) {
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
    for (tok = strtok_r(s, ", ", &save); tok;
         tok = strtok_r(NULL, ", ", &save)) {
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
        else if (strcmp(tok, "hold") == 0 && v <= 60000)
            hold_ms = v;
        else if (strcmp(tok, "stop") == 0 && v <= 1)
            stop = (int)v;
        else if (strcmp(tok, "inplace") == 0 && v <= 1)
            inplace = (int)v;
        else if (strcmp(tok, "signal") == 0 && v <= 1)
            armed_by_signal = (int)v;
        else
            goto bad;
    }
    if (cut_at == 0 && armed_by_signal)
        cut_at = ~0ull; /* only the signal cuts */
    if (cut_at == 0) {
        snprintf(err, errlen,
                 "SLUICE_POWERLOSS '%s': at=N (N >= 1) or "
                 "signal=1 is required",
                 spec);
        rc = SL_ERR_INVALID_ARG;
        goto out;
    }
    rng = seed * 0x9E3779B97F4A7C15ull + 1;
    {
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = stop_handler;
        sigfillset(&sa.sa_mask);
        stop_sig = SIGRTMIN + 4;
        if (sigaction(stop_sig, &sa, NULL) != 0 ||
            (armed_by_signal &&
             (sa.sa_handler = arm_handler,
              sigaction(SL_POWERLOSS_ARM_SIG, &sa, NULL) != 0))) {
            snprintf(err, errlen, "SLUICE_POWERLOSS: sigaction: %s",
                     strerror(errno));
            rc = SL_ERR_INVALID_ARG;
            goto out;
        }
    }
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
    snprintf(err, errlen,
             "SLUICE_POWERLOSS '%s': bad part '%s' (expected "
             "at=N, seed=S, tear=0|1, verbose=0|1, hold=MS, stop=0|1, "
             "inplace=0|1, signal=0|1)",
             spec, tok);
    rc = SL_ERR_INVALID_ARG;
out:
    free(s);
    return rc;
}
