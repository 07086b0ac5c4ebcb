/*
 * sluice-durable-call - the CPU one durable append costs, by the system
 * call (or io_uring request) that makes it durable.
 *
 *   sluice-durable-call [--dir DIR] [--count N] [--bytes S] [--rounds R]
 *                       [--modes LIST] [--sq-idle-ms MS] [--keep]
 *
 * Issue 20's "window of one" (a receipt on every persistent SEND, one
 * outstanding) makes the broker pay one durable append per message. On
 * the test VM the fdatasync after the append was 41-45% of the broker's
 * CPU per message (docs/benchmarks.md "Issue 20: window of one, session
 * 14"); this tool asks whether any other durability call costs less. It
 * appends N records of S bytes (default 2000 of 1024) to one file, each
 * durable before the next starts, with each of:
 *
 *   idle          no write: the caller sleeps 100 us per "append" (a
 *                 control for the kthreads column: the machine's kworker
 *                 CPU in the same wall time without this tool's I/O)
 *   none          pwrite only: not durable, the baseline of the write
 *   fdatasync     pwrite, then fdatasync (what the broker does today)
 *   rwf-dsync     pwritev2(RWF_DSYNC): write and sync in one call
 *   odsync        the file opened O_DSYNC, pwrite
 *   sfr           pwrite, sync_file_range(WAIT_BEFORE|WRITE|WAIT_AFTER),
 *                 then fdatasync (the data written back first, the flush
 *                 after)
 *   direct        O_DIRECT: the 4 KiB blocks the record touches (the
 *                 tail block rewritten each time, from an aligned copy of
 *                 it), then fdatasync
 *   direct-dsync  O_DIRECT|O_DSYNC, the same writes, no fdatasync
 *   uring-dsync   io_uring IORING_OP_WRITE with RWF_DSYNC, one request
 *   uring-link    io_uring WRITE linked (IOSQE_IO_LINK) to an
 *                 FSYNC(IORING_FSYNC_DATASYNC), submitted together
 *   uring-direct-dsync  io_uring WRITE with RWF_DSYNC on the O_DIRECT
 *                 descriptor (the direct writes above)
 *   uring-direct-link   the O_DIRECT write linked to an FSYNC(DATASYNC)
 *   uring-dsync-sqpoll, uring-direct-dsync-sqpoll: the same two with
 *                 IORING_SETUP_SQPOLL (the kernel's submission thread
 *                 polls the ring; no io_uring_enter to submit; it
 *                 spins --sq-idle-ms, default 10, after its last request)
 *
 * Each io_uring request is submitted with io_uring_submit and waited for
 * with io_uring_wait_cqe. The modes need liburing (Debian: liburing-dev)
 * and are left out (a line says so) when built without it.
 *
 * The file is prepared as storage/segment.c prepares a segment's tail:
 * fallocated, then zeros written over it (sl_seg_zero_ahead; here all at
 * once, before the clock starts, so no mode pays the zero step, which
 * the broker pays once per MiB) and made durable; the appends then only
 * overwrite written blocks (no extent conversion, no size change in the
 * fdatasync). For the O_DIRECT modes the zeroed pages are then dropped
 * from the page cache (a direct write over cached pages would invalidate
 * them, a cost the broker would not have); the buffered modes keep them,
 * as the broker's zero-ahead leaves them cached.
 *
 * Per mode and round it prints, per append:
 *   cpu          CPU of the whole process: caller + helpers
 *   caller       CPU of the calling thread (/proc/self/task/N/schedstat,
 *                nanoseconds on a CPU)
 *   helpers      CPU of this process's other threads (io-wq "iou-wrk",
 *                SQPOLL "iou-sqp": threads of this process since Linux
 *                5.12), from their schedstat
 *   rusage       getrusage(RUSAGE_SELF) user + system, a cross-check of
 *                cpu that also counts threads that exited during the run
 *   kthreads     CPU of the machine's kworker threads over the run (from
 *                /proc/N/schedstat): work the kernel does on its own
 *                threads for this file (a direct write's O_DSYNC flush
 *                runs in ext4's dio completion worker) is nobody's
 *                process CPU; the figure includes other processes' kernel
 *                work in the same seconds, so it is an upper bound
 *   vcsw, ivcsw  voluntary and involuntary context switches (process)
 *   p50, p99     wall latency of one durable append, microseconds
 *   mean         wall time of the run / N (the kthreads column's
 *                background is about idle's kthreads / idle's mean per
 *                microsecond of it)
 *
 * --rounds R (default 5) repeats the whole list R times, the order of the
 * modes rotated each round so that no mode always runs first or after
 * the same one; a summary gives each mode's median and worst over the
 * rounds. DIR (default .) chooses the file system; the file is removed
 * (--keep: renamed to sluice-durable-call.PID.MODE, to check that it
 * holds the 20 warm-up and N records, then zeros).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "bench_time.h"
#ifdef SL_HAVE_LIBURING
#include <liburing.h>
#endif

#define BLK 4096u
#define MAX_MODES 16
#define MAX_ROUNDS 64

static int count = 2000;
static size_t bytes = 1024;
static int rounds = 5;
static unsigned sq_idle_ms = 10;
static int keep;   /* --keep: leave the files, to check their content */
static char *rec;  /* the record: S bytes */
static char *tail; /* O_DIRECT: aligned image of the blocks from the tail
                      block's start to the end of the data */
static size_t tail_cap;

static const char *all_modes[] = {
    "idle",
    "none",
    "fdatasync",
    "rwf-dsync",
    "odsync",
    "sfr",
    "direct",
    "direct-dsync",
    "uring-dsync",
    "uring-link",
    "uring-direct-dsync",
    "uring-direct-link",
    "uring-dsync-sqpoll",
    "uring-direct-dsync-sqpoll",
};

struct result {
    double cpu, rusage, caller, helpers, kthreads, vcsw, ivcsw, p50, p99, mean;
};

/* First field of a schedstat file: nanoseconds on a CPU. */
static double schedstat_ns(const char *path)
{
    unsigned long long ns = 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    if (fscanf(f, "%llu", &ns) != 1)
        ns = 0;
    fclose(f);
    return (double)ns;
}

/* CPU (ns) of the calling thread. */
static double caller_ns(void)
{
    return schedstat_ns("/proc/thread-self/schedstat");
}

/* This process's threads other than the caller, with their CPU (ns). */
#define MAX_TASKS 256
struct tasks {
    int n;
    int tid[MAX_TASKS];
    double ns[MAX_TASKS];
};

static void helpers_snap(struct tasks *t)
{
    char path[512];
    pid_t self = (pid_t)getpid();
    struct dirent *e;
    DIR *d = opendir("/proc/self/task");
    t->n = 0;
    if (!d)
        return;
    while ((e = readdir(d)) && t->n < MAX_TASKS) {
        if (!isdigit((unsigned char)e->d_name[0]) ||
            atoi(e->d_name) == (int)self)
            continue;
        snprintf(path, sizeof(path), "/proc/self/task/%s/schedstat", e->d_name);
        t->tid[t->n] = atoi(e->d_name);
        t->ns[t->n++] = schedstat_ns(path);
    }
    closedir(d);
}

/* CPU (ns) the helper threads alive at the end used since the start (a
 * thread that exited in between, such as an io-wq worker of an earlier
 * ring timing out, is left out; rusage counts it). */
static double helpers_ns(const struct tasks *a, const struct tasks *b)
{
    double sum = 0;
    for (int i = 0; i < b->n; i++) {
        double before = 0;
        for (int j = 0; j < a->n; j++)
            if (a->tid[j] == b->tid[i])
                before = a->ns[j];
        sum += b->ns[i] - before;
    }
    return sum;
}

/* CPU (ns) of every kworker thread of the machine. */
static double kworkers_ns(void)
{
    char path[512], comm[64];
    double sum = 0;
    struct dirent *e;
    DIR *d = opendir("/proc");
    if (!d)
        return 0;
    while ((e = readdir(d))) {
        FILE *f;
        if (!isdigit((unsigned char)e->d_name[0]))
            continue;
        snprintf(path, sizeof(path), "/proc/%s/comm", e->d_name);
        f = fopen(path, "r");
        if (!f)
            continue;
        if (!fgets(comm, sizeof(comm), f))
            comm[0] = 0;
        fclose(f);
        if (strncmp(comm, "kworker", 7) != 0)
            continue;
        snprintf(path, sizeof(path), "/proc/%s/schedstat", e->d_name);
        sum += schedstat_ns(path);
    }
    closedir(d);
    return sum;
}

static int is_direct(const char *mode)
{
    return strstr(mode, "direct") != NULL;
}

static int is_uring(const char *mode)
{
    return strncmp(mode, "uring", 5) == 0;
}

/* The file as a segment's preallocated tail: fallocated, zeros written
 * over it and made durable. */
static int open_file(const char *path, const char *mode, size_t total)
{
    static char z[1 << 16];
    int flags = O_CREAT | O_RDWR | O_TRUNC;
    int fd = open(path, flags, 0644);
    if (fd < 0)
        die(path);
    if (fallocate(fd, 0, 0, (off_t)total) != 0)
        die("fallocate");
    for (size_t off = 0; off < total; off += sizeof(z))
        if (pwrite(fd, z, sizeof(z), (off_t)off) != (ssize_t)sizeof(z))
            die("pwrite zeros");
    if (fdatasync(fd) != 0)
        die("fdatasync");
    if (is_direct(mode))
        (void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    close(fd);
    flags = O_RDWR;
    if (!strcmp(mode, "odsync") || !strcmp(mode, "direct-dsync"))
        flags |= O_DSYNC;
    if (is_direct(mode))
        flags |= O_DIRECT;
    fd = open(path, flags);
    if (fd < 0)
        die(path);
    return fd;
}

/* O_DIRECT: put the record at off into the tail image and return the
 * aligned range to write (the blocks from off's block to the end). */
static void direct_range(uint64_t off, uint64_t *wstart, size_t *wlen)
{
    uint64_t bstart = off & ~(uint64_t)(BLK - 1);
    uint64_t end = off + bytes;
    uint64_t bend = (end + BLK - 1) & ~(uint64_t)(BLK - 1);
    memcpy(tail + (off - bstart), rec, bytes);
    memset(tail + (end - bstart), 0, (size_t)(bend - end));
    *wstart = bstart;
    *wlen = (size_t)(bend - bstart);
}

/* After the append at off: the image starts at the new tail block. */
static void direct_advance(uint64_t off)
{
    uint64_t bstart = off & ~(uint64_t)(BLK - 1);
    uint64_t end = off + bytes;
    uint64_t nstart = end & ~(uint64_t)(BLK - 1);
    if (nstart > bstart)
        memmove(tail, tail + (nstart - bstart), (size_t)(end - nstart));
}

#ifdef SL_HAVE_LIBURING
static void uring_wait(struct io_uring *ring, int n, size_t want)
{
    struct io_uring_cqe *cqe;
    for (int k = 0; k < n; k++) {
        int rc = io_uring_wait_cqe(ring, &cqe);
        if (rc != 0) {
            errno = -rc;
            die("io_uring_wait_cqe");
        }
        if (cqe->res < 0) {
            fprintf(stderr, "io_uring: %s\n", strerror(-cqe->res));
            exit(1);
        }
        if (k == 0 && want && (size_t)cqe->res != want) {
            fprintf(stderr, "io_uring: short write %d of %zu\n", cqe->res,
                    want);
            exit(1);
        }
        io_uring_cqe_seen(ring, cqe);
    }
}

static void uring_submit(struct io_uring *ring, int n)
{
    /* with SQPOLL the count is of the entries the kernel's thread had not
     * taken yet when the call returned: 0 when it was quick */
    int rc = io_uring_submit(ring);
    if (rc < 0 || (rc != n && !(ring->flags & IORING_SETUP_SQPOLL))) {
        errno = rc < 0 ? -rc : EIO;
        die("io_uring_submit");
    }
}
#endif

/* One durable append of the record at off. */
static void append(const char *mode, int fd, uint64_t off, void *ringp)
{
    const char *src = rec;
    uint64_t woff = off;
    size_t wlen = bytes;
    (void)ringp;
    if (!strcmp(mode, "idle")) {
        struct timespec ts = {0, 100000};
        nanosleep(&ts, NULL);
        return;
    }
    if (is_direct(mode)) {
        direct_range(off, &woff, &wlen);
        src = tail;
    }
    if (!strcmp(mode, "none") || !strcmp(mode, "odsync") ||
        !strcmp(mode, "direct-dsync")) {
        if (pwrite(fd, src, wlen, (off_t)woff) != (ssize_t)wlen)
            die("pwrite");
    } else if (!strcmp(mode, "fdatasync") || !strcmp(mode, "direct")) {
        if (pwrite(fd, src, wlen, (off_t)woff) != (ssize_t)wlen)
            die("pwrite");
        if (fdatasync(fd) != 0)
            die("fdatasync");
    } else if (!strcmp(mode, "rwf-dsync")) {
        struct iovec v = {(void *)src, wlen};
        if (pwritev2(fd, &v, 1, (off_t)woff, RWF_DSYNC) != (ssize_t)wlen)
            die("pwritev2");
    } else if (!strcmp(mode, "sfr")) {
        if (pwrite(fd, src, wlen, (off_t)woff) != (ssize_t)wlen)
            die("pwrite");
        if (sync_file_range(fd, (off_t)woff, (off_t)wlen,
                            SYNC_FILE_RANGE_WAIT_BEFORE |
                                SYNC_FILE_RANGE_WRITE |
                                SYNC_FILE_RANGE_WAIT_AFTER) != 0)
            die("sync_file_range");
        if (fdatasync(fd) != 0)
            die("fdatasync");
#ifdef SL_HAVE_LIBURING
    } else if (strstr(mode, "link")) {
        struct io_uring *ring = ringp;
        struct io_uring_sqe *s = io_uring_get_sqe(ring);
        io_uring_prep_write(s, fd, src, (unsigned)wlen, woff);
        s->flags |= IOSQE_IO_LINK;
        s = io_uring_get_sqe(ring);
        io_uring_prep_fsync(s, fd, IORING_FSYNC_DATASYNC);
        uring_submit(ring, 2);
        uring_wait(ring, 2, wlen);
    } else if (is_uring(mode)) { /* the RWF_DSYNC writes */
        struct io_uring *ring = ringp;
        struct io_uring_sqe *s = io_uring_get_sqe(ring);
        io_uring_prep_write(s, fd, src, (unsigned)wlen, woff);
        s->rw_flags = RWF_DSYNC;
        uring_submit(ring, 1);
        uring_wait(ring, 1, wlen);
#endif
    } else {
        fprintf(stderr, "unknown mode %s\n", mode);
        exit(2);
    }
    if (is_direct(mode))
        direct_advance(off);
}

static int run(const char *dir, const char *mode, struct result *r)
{
    char path[4096];
    size_t warm = 20;
    size_t total = ((warm + (size_t)count) * bytes + 2 * BLK + (1u << 20)) &
                   ~(size_t)((1u << 20) - 1);
    double *lat = malloc(sizeof(double) * (size_t)count);
    struct rusage a, b;
    double c0, c1, k0, k1, w0, w1;
    static struct tasks h0, h1;
    void *ringp = NULL;
    int fd;
#ifdef SL_HAVE_LIBURING
    struct io_uring ring;
    if (is_uring(mode)) {
        struct io_uring_params p;
        int rc;
        memset(&p, 0, sizeof(p));
        if (strstr(mode, "sqpoll")) {
            p.flags = IORING_SETUP_SQPOLL;
            p.sq_thread_idle = sq_idle_ms;
        }
        rc = io_uring_queue_init_params(8, &ring, &p);
        if (rc != 0) {
            fprintf(stderr, "%s: io_uring_queue_init: %s\n", mode,
                    strerror(-rc));
            free(lat);
            return -1;
        }
        ringp = &ring;
    }
#else
    if (is_uring(mode)) {
        printf("%-26s (not built: needs liburing)\n", mode);
        free(lat);
        return -1;
    }
#endif
    if (!lat)
        die("malloc");
    snprintf(path, sizeof(path), "%s/sluice-durable-call.%d", dir,
             (int)getpid());
    fd = open_file(path, mode, total);
    memset(tail, 0, tail_cap);
    /* warm-up: the first appends fault in pages, start io_uring workers */
    for (size_t i = 0; i < warm; i++)
        append(mode, fd, (uint64_t)i * bytes, ringp);
    helpers_snap(&h0);
    k0 = kworkers_ns();
    getrusage(RUSAGE_SELF, &a);
    c0 = caller_ns();
    w0 = now_us();
    for (int i = 0; i < count; i++) {
        double t0 = now_us();
        append(mode, fd, (uint64_t)(warm + (size_t)i) * bytes, ringp);
        lat[i] = now_us() - t0;
    }
    w1 = now_us();
    c1 = caller_ns();
    getrusage(RUSAGE_SELF, &b);
    helpers_snap(&h1);
    k1 = kworkers_ns();
    qsort(lat, (size_t)count, sizeof(double), cmp_d);
    r->rusage = (tv_us(b.ru_utime) + tv_us(b.ru_stime) - tv_us(a.ru_utime) -
                 tv_us(a.ru_stime)) /
                count;
    r->caller = (c1 - c0) / 1e3 / count;
    r->helpers = helpers_ns(&h0, &h1) / 1e3 / count;
    r->cpu = r->caller + r->helpers;
    r->kthreads = (k1 - k0) / 1e3 / count;
    r->vcsw = (double)(b.ru_nvcsw - a.ru_nvcsw) / count;
    r->ivcsw = (double)(b.ru_nivcsw - a.ru_nivcsw) / count;
    r->mean = (w1 - w0) / count;
    r->p50 = lat[count / 2];
    r->p99 = lat[(size_t)count * 99 / 100];
#ifdef SL_HAVE_LIBURING
    if (ringp)
        io_uring_queue_exit(&ring);
#endif
    close(fd);
    if (keep) {
        char kept[4200];
        snprintf(kept, sizeof(kept), "%s.%s", path, mode);
        if (rename(path, kept) != 0)
            die("rename");
    } else
        unlink(path);
    free(lat);
    return 0;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), cmp_d);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double worst(const double *v, int n)
{
    double m = v[0];
    for (int i = 1; i < n; i++)
        if (v[i] > m)
            m = v[i];
    return m;
}

int main(int argc, char **argv)
{
    const char *dir = ".";
    const char *modes[MAX_MODES];
    static struct result res[MAX_MODES][MAX_ROUNDS];
    int ok[MAX_MODES] = {0};
    char list[1024] = "";
    int nmodes = 0;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--dir") && v)
            dir = argv[++i];
        else if (!strcmp(argv[i], "--count") && v)
            count = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--bytes") && v)
            bytes = (size_t)atol(argv[++i]);
        else if (!strcmp(argv[i], "--rounds") && v)
            rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--sq-idle-ms") && v)
            sq_idle_ms = (unsigned)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--keep"))
            keep = 1;
        else if (!strcmp(argv[i], "--modes") && v)
            snprintf(list, sizeof(list), "%s", argv[++i]);
        else {
            fprintf(stderr,
                    "usage: %s [--dir DIR] [--count N] [--bytes S] "
                    "[--rounds R] [--modes LIST] [--sq-idle-ms MS] [--keep]\n"
                    "modes:",
                    argv[0]);
            for (size_t k = 0; k < sizeof(all_modes) / sizeof(*all_modes); k++)
                fprintf(stderr, " %s", all_modes[k]);
            fprintf(stderr, "\n");
            return 2;
        }
    }
    if (count <= 0 || bytes == 0 || bytes > (1u << 20) || rounds <= 0 ||
        rounds > MAX_ROUNDS) {
        fprintf(stderr, "bad --count, --bytes or --rounds\n");
        return 2;
    }
    if (list[0]) {
        for (char *save = NULL, *m = strtok_r(list, ",", &save);
             m && nmodes < MAX_MODES; m = strtok_r(NULL, ",", &save))
            modes[nmodes++] = m;
    } else {
        for (size_t k = 0; k < sizeof(all_modes) / sizeof(*all_modes); k++)
            modes[nmodes++] = all_modes[k];
    }
    rec = malloc(bytes);
    tail_cap = bytes + 2 * BLK;
    if (!rec || posix_memalign((void **)&tail, BLK, tail_cap) != 0)
        die("malloc");
    memset(rec, 'x', bytes);
    printf("# %d durable appends of %zu bytes per run, %d rounds, in %s\n",
           count, bytes, rounds, dir);
    printf("# per append: cpu = process (caller + helpers) us, caller = "
           "calling thread us, helpers = its other threads us, rusage = "
           "RUSAGE_SELF us, kthreads = all kworkers us, switches, latency "
           "us\n");
    for (int r = 0; r < rounds; r++) {
        for (int j = 0; j < nmodes; j++) {
            int m = (j + r) % nmodes;
            struct result *x = &res[m][r];
            if (run(dir, modes[m], x) != 0)
                continue;
            ok[m] = 1;
            printf("round=%d %-26s cpu=%.1f caller=%.1f helpers=%.1f "
                   "rusage=%.1f kthreads=%.1f vcsw=%.2f ivcsw=%.2f p50=%.0f "
                   "p99=%.0f mean=%.0f\n",
                   r + 1, modes[m], x->cpu, x->caller, x->helpers, x->rusage,
                   x->kthreads, x->vcsw, x->ivcsw, x->p50, x->p99, x->mean);
            fflush(stdout);
        }
    }
    printf("\n# median (worst) over %d rounds\n", rounds);
    printf("| mode | cpu us | caller us | helpers us | rusage us | kthreads us "
           "| vcsw | p50 us | p99 us |\n"
           "|---|---|---|---|---|---|---|---|---|\n");
    for (int m = 0; m < nmodes; m++) {
        double v[8][MAX_ROUNDS];
        if (!ok[m])
            continue;
        for (int r = 0; r < rounds; r++) {
            v[0][r] = res[m][r].cpu;
            v[1][r] = res[m][r].caller;
            v[2][r] = res[m][r].helpers;
            v[3][r] = res[m][r].kthreads;
            v[4][r] = res[m][r].vcsw;
            v[5][r] = res[m][r].p50;
            v[6][r] = res[m][r].p99;
            v[7][r] = res[m][r].rusage;
        }
        printf("| %s | %.1f (%.1f) | %.1f (%.1f) | %.1f (%.1f) | %.1f (%.1f) "
               "| %.1f (%.1f) | %.2f (%.2f) | %.0f (%.0f) | %.0f (%.0f) |\n",
               modes[m], median(v[0], rounds), worst(v[0], rounds),
               median(v[1], rounds), worst(v[1], rounds), median(v[2], rounds),
               worst(v[2], rounds), median(v[7], rounds), worst(v[7], rounds),
               median(v[3], rounds), worst(v[3], rounds), median(v[4], rounds),
               worst(v[4], rounds), median(v[5], rounds), worst(v[5], rounds),
               median(v[6], rounds), worst(v[6], rounds));
    }
    free(rec);
    free(tail);
    return 0;
}
