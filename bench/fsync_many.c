/*
 * sluice-fsync-many - how to make N dirty files durable at once.
 *
 *   sluice-fsync-many [--dir DIR] [--files N] [--rounds R] [--bytes B]
 *                     [--threads K] [--modes LIST]
 *
 * The question behind issue 20: one producer spreads its records over N
 * partitions, so every flusher round has N dirty segment files. Each mode
 * below appends B bytes (default 100) to each of N files (pwrite, page
 * cache), then makes all of them durable, R times; it prints the median
 * and worst round and the records per second that gives (N per round).
 *
 *   seq       fdatasync each file, one after the other (the flusher as of
 *             af5709b)
 *   threads   K threads take files from a shared counter and fdatasync
 *             them concurrently (ext4's jbd2 folds concurrent commits into
 *             one transaction)
 *   uring     one io_uring, IORING_OP_FSYNC with IORING_FSYNC_DATASYNC for
 *             every file, submitted together (when built with liburing)
 *   sfr       sync_file_range(SYNC_FILE_RANGE_WRITE) on every file, then
 *             one syncfs (flushes every dirty inode of the file system,
 *             other processes' included)
 *   journal   the N appends also go to one journal file (one pwrite of
 *             N*B bytes plus an 8-byte header per record) and only the
 *             journal is fdatasynced: the floor a shared write-ahead log
 *             would pay per round (segments written behind it)
 *   --prealloc fallocate|zeros: give every file (and the journal) its
 *   space first, as fallocate (unwritten extents, what the broker's
 *   segment-preallocate-bytes does) or as written zeros (a recycled
 *   file: later writes change no metadata)
 *   one       the baseline: one file, one pwrite of N*B bytes, one
 *             fdatasync (one partition receiving the same bytes)
 *
 * DIR (default ./sluice-fsync-many.XXXXXX, removed afterwards) decides the
 * file system measured.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#ifdef SL_HAVE_LIBURING
#include <liburing.h>
#endif

static int nfiles = 1000, rounds = 10, nthreads = 16;
static size_t bytes = 100;
static int prealloc; /* 0 none, 1 fallocate, 2 written zeros */
static int *fds;
static off_t *ends;
static int jfd = -1;
static off_t jend;
static char buf[1 << 16];

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static void append_all(void)
{
    for (int i = 0; i < nfiles; i++) {
        if (pwrite(fds[i], buf, bytes, ends[i]) != (ssize_t)bytes)
            die("pwrite");
        ends[i] += (off_t)bytes;
    }
}

static _Atomic int next_file;

static void *sync_worker(void *arg)
{
    (void)arg;
    for (;;) {
        int i = atomic_fetch_add(&next_file, 1);
        if (i >= nfiles)
            return NULL;
        if (fdatasync(fds[i]) != 0)
            die("fdatasync");
    }
}

static void sync_threads(void)
{
    pthread_t th[256];
    int k = nthreads < 256 ? nthreads : 256;
    atomic_store(&next_file, 0);
    for (int t = 0; t < k; t++)
        if (pthread_create(&th[t], NULL, sync_worker, NULL) != 0)
            die("pthread_create");
    for (int t = 0; t < k; t++)
        pthread_join(th[t], NULL);
}

#ifdef SL_HAVE_LIBURING
static struct io_uring ring;
static int ring_ok;

static void sync_uring(void)
{
    int sub = 0, done = 0, depth = 1024;
    while (done < nfiles) {
        while (sub < nfiles && sub - done < depth) {
            struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
            if (!sqe)
                break;
            io_uring_prep_fsync(sqe, fds[sub], IORING_FSYNC_DATASYNC);
            sub++;
        }
        if (io_uring_submit(&ring) < 0)
            die("io_uring_submit");
        struct io_uring_cqe *cqe;
        if (io_uring_wait_cqe(&ring, &cqe) != 0)
            die("io_uring_wait_cqe");
        unsigned head, n = 0;
        io_uring_for_each_cqe(&ring, head, cqe)
        {
            if (cqe->res < 0) {
                errno = -cqe->res;
                die("uring fsync");
            }
            n++;
        }
        io_uring_cq_advance(&ring, n);
        done += (int)n;
    }
}
#endif

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void run(const char *mode)
{
    double *t = calloc((size_t)rounds, sizeof(double));
    for (int r = 0; r < rounds; r++) {
        double t0;
        if (strcmp(mode, "one") == 0) {
            size_t n = (size_t)nfiles * bytes;
            char *b = calloc(1, n);
            t0 = now_s();
            if (pwrite(fds[0], b, n, ends[0]) != (ssize_t)n)
                die("pwrite");
            ends[0] += (off_t)n;
            if (fdatasync(fds[0]) != 0)
                die("fdatasync");
            t[r] = now_s() - t0;
            free(b);
            continue;
        }
        t0 = now_s();
        append_all();
        if (strcmp(mode, "seq") == 0) {
            for (int i = 0; i < nfiles; i++)
                if (fdatasync(fds[i]) != 0)
                    die("fdatasync");
        } else if (strcmp(mode, "threads") == 0) {
            sync_threads();
        } else if (strcmp(mode, "sfr") == 0) {
            for (int i = 0; i < nfiles; i++)
                if (sync_file_range(fds[i], ends[i] - (off_t)bytes,
                                    (off_t)bytes, SYNC_FILE_RANGE_WRITE) != 0)
                    die("sync_file_range");
            if (syncfs(fds[0]) != 0)
                die("syncfs");
        } else if (strcmp(mode, "journal") == 0) {
            size_t n = (size_t)nfiles * (bytes + 8);
            char *b = calloc(1, n);
            if (pwrite(jfd, b, n, jend) != (ssize_t)n)
                die("pwrite journal");
            jend += (off_t)n;
            if (fdatasync(jfd) != 0)
                die("fdatasync journal");
            free(b);
#ifdef SL_HAVE_LIBURING
        } else if (strcmp(mode, "uring") == 0 && ring_ok) {
            sync_uring();
#endif
        } else {
            printf("| %s | not available |\n", mode);
            free(t);
            return;
        }
        t[r] = now_s() - t0;
    }
    qsort(t, (size_t)rounds, sizeof(double), cmp_d);
    double med = t[rounds / 2], worst = t[rounds - 1];
    char what[32];
    if (strcmp(mode, "threads") == 0)
        snprintf(what, sizeof(what), "threads(%d)", nthreads);
    else
        snprintf(what, sizeof(what), "%s", mode);
    printf("| %s | %d | %.2f | %.2f | %.0f | %.0f |\n", what, nfiles, med * 1e3,
           worst * 1e3, nfiles / med, nfiles / worst);
    fflush(stdout);
    free(t);
}

int main(int argc, char **argv)
{
    char dir[1024] = "", path[1200];
    const char *modes = "one,journal,seq,threads,uring,sfr";
    int own = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            goto usage;
        if (strcmp(a, "--dir") == 0)
            snprintf(dir, sizeof(dir), "%s", v);
        else if (strcmp(a, "--files") == 0)
            nfiles = atoi(v);
        else if (strcmp(a, "--rounds") == 0)
            rounds = atoi(v);
        else if (strcmp(a, "--bytes") == 0)
            bytes = (size_t)atol(v);
        else if (strcmp(a, "--threads") == 0)
            nthreads = atoi(v);
        else if (strcmp(a, "--prealloc") == 0)
            prealloc = strcmp(v, "fallocate") == 0 ? 1
                       : strcmp(v, "zeros") == 0   ? 2
                                                   : -1;
        else if (strcmp(a, "--modes") == 0)
            modes = v;
        else
            goto usage;
        i++;
    }
    if (prealloc < 0 || nfiles < 1 || rounds < 1 || bytes < 1 ||
        bytes > sizeof(buf) || nthreads < 1)
        goto usage;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (!dir[0]) {
        snprintf(dir, sizeof(dir), "./sluice-fsync-many.XXXXXX");
        if (!mkdtemp(dir))
            die("mkdtemp");
        own = 1;
    }
    fds = calloc((size_t)nfiles, sizeof(int));
    ends = calloc((size_t)nfiles, sizeof(off_t));
    for (int i = 0; i < nfiles; i++) {
        snprintf(path, sizeof(path), "%s/f%06d", dir, i);
        fds[i] = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fds[i] < 0)
            die(path);
    }
    snprintf(path, sizeof(path), "%s/journal", dir);
    jfd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (jfd < 0)
        die(path);
    if (prealloc) {
        /* enough for every round of every mode */
        off_t each = (off_t)bytes * rounds * 8 + 4096;
        off_t jsize = (off_t)nfiles * (off_t)(bytes + 8) * rounds * 2 + 4096;
        for (int i = 0; i <= nfiles; i++) {
            int fd = i < nfiles ? fds[i] : jfd;
            off_t n = i < nfiles ? each : jsize;
            if (i == 0 && n < jsize)
                n = jsize; /* mode one writes N*B per round to file 0 */
            if (prealloc == 1) {
                if (fallocate(fd, 0, 0, n) != 0)
                    die("fallocate");
            } else {
                char *z = calloc(1, (size_t)n);
                if (pwrite(fd, z, (size_t)n, 0) != n)
                    die("pwrite zeros");
                free(z);
            }
        }
    }
    sync();
#ifdef SL_HAVE_LIBURING
    ring_ok = io_uring_queue_init(1024, &ring, 0) == 0;
#endif
    printf("| mode | files | round median ms | round worst ms | "
           "records/s median | records/s worst |\n|---|---:|---:|---:|---:|"
           "---:|\n");
    char *m = strdup(modes), *save = NULL;
    for (char *tok = strtok_r(m, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save))
        run(tok);
    free(m);
    for (int i = 0; i < nfiles; i++)
        close(fds[i]);
    close(jfd);
    if (own) {
        snprintf(path, sizeof(path), "rm -rf '%s'", dir);
        if (system(path) != 0)
            fprintf(stderr, "could not remove %s\n", dir);
    }
    return 0;
usage:
    fprintf(stderr, "usage: sluice-fsync-many [--dir DIR] [--files N] "
                    "[--rounds R] [--bytes B] [--threads K] [--modes LIST]\n");
    return 2;
}
