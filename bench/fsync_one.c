/*
 * sluice-fsync-one - what one small durable append costs the process that
 * makes it durable, by the way it does so.
 *
 *   sluice-fsync-one [--dir DIR] [--count N] [--bytes B]
 *                    [--prealloc none|fallocate|zeros] [--modes LIST]
 *
 * The question behind issue 20's "window of one" (a receipt per message):
 * the broker's CPU per message is bounded below by one append + one
 * durability call per message, so what is the cheapest such call? Each
 * mode appends B bytes (default 182: a 100-byte STOMP body as the broker
 * stores it) N times (default 2000) to one file, each append durable
 * before the next starts, and prints per append: the CPU of this process
 * (user + system, every thread, io_uring's workers included: getrusage
 * RUSAGE_SELF), its voluntary and involuntary context switches, and the
 * latency p50 and p99.
 *
 *   fdatasync    pwrite, then fdatasync (the broker's flusher and its
 *                inline rounds, flush-inline-us)
 *   dsync        pwritev2 with RWF_DSYNC: write and sync in one call
 *   odsync       the file opened O_DSYNC, pwrite
 *   uring-link   one io_uring: a write linked (IOSQE_IO_LINK) to an
 *                fsync with IORING_FSYNC_DATASYNC, submitted together and
 *                waited for (when built with liburing)
 *   uring-fsync  pwrite, then the fsync alone through io_uring (liburing)
 *
 * --prealloc (default fallocate): the file's space first, as fallocate
 * (unwritten extents: what segment-preallocate-bytes does), as written
 * zeros (later writes change no metadata), or none (each append grows
 * the file). DIR (default .) decides the file system measured; the file
 * is removed afterwards.
 *
 * What the CPU column leaves out: work the kernel does on its own threads
 * (block-layer kworkers, ext4's unwritten-extent conversion after a write
 * completes) is not the process's and is not counted, for any mode alike.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
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

static int count = 2000;
static size_t bytes = 182;
static int prealloc = 1; /* 0 none, 1 fallocate, 2 written zeros */
static char buf[1 << 16];

static int open_file(const char *path, int flags)
{
    size_t total = (size_t)count * bytes + 4096;
    int fd = open(path, O_CREAT | O_RDWR | O_TRUNC | flags, 0644);
    if (fd < 0)
        die(path);
    if (prealloc == 1 && fallocate(fd, 0, 0, (off_t)total) != 0)
        die("fallocate");
    if (prealloc == 2) {
        static char z[1 << 16];
        for (size_t off = 0; off < total; off += sizeof(z))
            if (pwrite(fd, z, sizeof(z), (off_t)off) != (ssize_t)sizeof(z))
                die("pwrite zeros");
    }
    if (fsync(fd) != 0)
        die("fsync");
    return fd;
}

#ifdef SL_HAVE_LIBURING
static void uring_wait(struct io_uring *ring, int n)
{
    struct io_uring_cqe *cqe;
    for (int k = 0; k < n; k++) {
        if (io_uring_wait_cqe(ring, &cqe) != 0)
            die("io_uring_wait_cqe");
        if (cqe->res < 0) {
            fprintf(stderr, "io_uring: %s\n", strerror(-cqe->res));
            exit(1);
        }
        io_uring_cqe_seen(ring, cqe);
    }
}
#endif

/* One durable append at off. */
static void append(const char *mode, int fd, off_t off, void *ring)
{
    (void)ring;
    if (!strcmp(mode, "fdatasync")) {
        if (pwrite(fd, buf, bytes, off) != (ssize_t)bytes || fdatasync(fd))
            die("pwrite+fdatasync");
    } else if (!strcmp(mode, "dsync")) {
        struct iovec v = {buf, bytes};
        if (pwritev2(fd, &v, 1, off, RWF_DSYNC) != (ssize_t)bytes)
            die("pwritev2");
    } else if (!strcmp(mode, "odsync")) {
        if (pwrite(fd, buf, bytes, off) != (ssize_t)bytes)
            die("pwrite");
#ifdef SL_HAVE_LIBURING
    } else if (!strcmp(mode, "uring-link")) {
        struct io_uring_sqe *s = io_uring_get_sqe(ring);
        io_uring_prep_write(s, fd, buf, (unsigned)bytes, (uint64_t)off);
        s->flags |= IOSQE_IO_LINK;
        s = io_uring_get_sqe(ring);
        io_uring_prep_fsync(s, fd, IORING_FSYNC_DATASYNC);
        if (io_uring_submit(ring) != 2)
            die("io_uring_submit");
        uring_wait(ring, 2);
    } else if (!strcmp(mode, "uring-fsync")) {
        struct io_uring_sqe *s;
        if (pwrite(fd, buf, bytes, off) != (ssize_t)bytes)
            die("pwrite");
        s = io_uring_get_sqe(ring);
        io_uring_prep_fsync(s, fd, IORING_FSYNC_DATASYNC);
        if (io_uring_submit(ring) != 1)
            die("io_uring_submit");
        uring_wait(ring, 1);
#endif
    } else {
        fprintf(stderr, "unknown mode %s\n", mode);
        exit(2);
    }
}

static void run(const char *dir, const char *mode)
{
    char path[4096];
    double *lat = malloc(sizeof(double) * (size_t)count);
    struct rusage a, b;
    void *ringp = NULL;
    int fd;
#ifdef SL_HAVE_LIBURING
    struct io_uring ring;
    if (!strncmp(mode, "uring", 5)) {
        if (io_uring_queue_init(8, &ring, 0) != 0)
            die("io_uring_queue_init");
        ringp = &ring;
    }
#else
    if (!strncmp(mode, "uring", 5)) {
        printf("%-12s (not built: needs liburing)\n", mode);
        free(lat);
        return;
    }
#endif
    if (!lat)
        die("malloc");
    snprintf(path, sizeof(path), "%s/sluice-fsync-one.%d", dir, (int)getpid());
    fd = open_file(path, !strcmp(mode, "odsync") ? O_DSYNC : 0);
    /* warm-up: the first appends fault in the page and the ring's worker */
    for (int i = 0; i < 20; i++)
        append(mode, fd, (off_t)i * (off_t)bytes, ringp);
    getrusage(RUSAGE_SELF, &a);
    for (int i = 0; i < count; i++) {
        double t0 = now_us();
        append(mode, fd, (off_t)(i + 20) * (off_t)bytes, ringp);
        lat[i] = now_us() - t0;
    }
    getrusage(RUSAGE_SELF, &b);
    qsort(lat, (size_t)count, sizeof(double), cmp_d);
    printf("%-12s cpu_us=%.1f (user %.1f, system %.1f) voluntary_switches=%.2f "
           "involuntary_switches=%.2f latency_p50_us=%.0f p99_us=%.0f\n",
           mode,
           (tv_us(b.ru_utime) + tv_us(b.ru_stime) - tv_us(a.ru_utime) -
            tv_us(a.ru_stime)) /
               count,
           (tv_us(b.ru_utime) - tv_us(a.ru_utime)) / count,
           (tv_us(b.ru_stime) - tv_us(a.ru_stime)) / count,
           (double)(b.ru_nvcsw - a.ru_nvcsw) / count,
           (double)(b.ru_nivcsw - a.ru_nivcsw) / count, lat[count / 2],
           lat[(size_t)count * 99 / 100]);
    fflush(stdout);
#ifdef SL_HAVE_LIBURING
    if (ringp)
        io_uring_queue_exit(&ring);
#endif
    close(fd);
    unlink(path);
    free(lat);
}

int main(int argc, char **argv)
{
    const char *dir = ".";
    char modes[512] = "fdatasync,dsync,odsync,uring-link,uring-fsync";
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--dir") && v)
            dir = argv[++i];
        else if (!strcmp(argv[i], "--count") && v)
            count = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--bytes") && v)
            bytes = (size_t)atol(argv[++i]);
        else if (!strcmp(argv[i], "--prealloc") && v) {
            i++;
            prealloc = !strcmp(v, "none")        ? 0
                       : !strcmp(v, "fallocate") ? 1
                       : !strcmp(v, "zeros")     ? 2
                                                 : -1;
        } else if (!strcmp(argv[i], "--modes") && v)
            snprintf(modes, sizeof(modes), "%s", argv[++i]);
        else {
            fprintf(stderr,
                    "usage: %s [--dir DIR] [--count N] [--bytes B] "
                    "[--prealloc none|fallocate|zeros] "
                    "[--modes LIST]\n",
                    argv[0]);
            return 2;
        }
    }
    if (count <= 0 || bytes == 0 || bytes > sizeof(buf) || prealloc < 0) {
        fprintf(stderr, "bad --count, --bytes or --prealloc\n");
        return 2;
    }
    memset(buf, 'x', sizeof(buf));
    printf("# %d appends of %zu bytes, prealloc %s, in %s\n", count, bytes,
           prealloc == 0   ? "none"
           : prealloc == 1 ? "fallocate"
                           : "zeros",
           dir);
    for (char *save = NULL, *m = strtok_r(modes, ",", &save); m;
         m = strtok_r(NULL, ",", &save))
        run(dir, m);
    return 0;
}
