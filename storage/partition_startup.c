/*
 * partition_startup.c - start-up and clean stop of the partitions of a
 * data directory: the clean-stop marker and the one syncfs of a start
 * (sl_part_startup_begin/end, sl_part_shutdown_mark, partition.h), and
 * the list of partitions a run changed, so that a start after a crash
 * recovers only those (issue 20):
 *
 * A clean stop writes every partition's summary (broker/topic.c,
 * DATA/partitions.summary, under a token) and the next start opens each
 * partition from its line without touching its directory (LAZY
 * PARTITIONS, partition.c). After a kill -9 there was no clean stop, and
 * every partition used to be opened and recovered at start: 28-51 s for
 * 100,000. But a partition the crashed run never changed is still exactly
 * what the summary says. So each run keeps DATA/partitions.touched:
 *
 *   "sluice-touched 1 TOKEN\n"        the summary file it amends
 *   "topics/NAME/PART\n" ...          one line per partition changed
 *
 * A partition's line is written (write(2), O_APPEND) before its first
 * change of the run reaches its files: the first append, roll, retention
 * deletion, compaction, truncation or removal (sl_part__touch). Order
 * against a kill -9: the line's write(2) returns before the change's
 * write(2) or unlink(2) is issued, and the page cache keeps both. Order
 * against a power loss: the line is fdatasynced before anything the change
 * made is called durable: sl_part__sync_files and the journal's round
 * call sl_part__touched_sync before they publish a durable offset, and
 * compaction, truncation and removal sync it before they start (a
 * created partition's line is synced once per created topic). Retention
 * does not (its unlinks are not synced either): after a power loss that
 * kept a deletion but not its line, the summary's start offset is too low
 * until the partition loads (a read there loads it and finds the real
 * start). A change that was never acknowledged may survive a power loss
 * without its line; the summary then hides it until the partition loads
 * (a produce, a read below its end), when recovery finds it, as after
 * any crash.
 *
 * Start (broker/topic.c): after a clean stop the file is started afresh
 * under the marker's token. After a crash, when the file's token is the
 * summary file's, partitions listed in it are opened and recovered at
 * start, every other one from its summary line (lazily); the file is kept
 * and this run appends to it (the summary is still its base). Any other
 * case (no file, another token, a line cut short, a partition outside the
 * data directory) recovers every partition at start, as before.
 *
 * @thread loop (begin, has, touch); the flusher calls sl_part__touched_sync
 */
#include "storage/partition_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "protocol/log.h"
#include "storage/fsutil.h"

/* Start-up state (sl_part_startup_begin/end): 0 = none (every open
 * fdatasyncs what it recovered, as a storage test expects), 1 = the
 * broker is opening its partitions (one syncfs at the end instead). */
static _Atomic int startup_deferred;
static int startup_clean; /* the marker was there: nothing to syncfs */

int sl_part__startup_deferred(void)
{
    return atomic_load(&startup_deferred);
}

/* ---- start-up and clean stop ----------------------------------------- */

static sl_err syncfs_dir(const char *data_dir)
{
    sl_err rc = SL_OK;
    int fd = open(data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return SL_ESYS(errno);
    if (sl_fs->syncfs(fd) != 0)
        rc = SL_ESYS(errno);
    close(fd);
    return rc;
}

/* The marker's first line; a note follows on the second. */
#define SL_MARK_NOTE_MAX 200

/* The note of the marker the last sl_part_startup_begin removed. */
static char startup_note[SL_MARK_NOTE_MAX + 1];

const char *sl_part_startup_note(void)
{
    return startup_note;
}

/* Read the marker's note (its second line) into startup_note. */
static void read_note(const char *path)
{
    char buf[128 + SL_MARK_NOTE_MAX];
    ssize_t n;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    startup_note[0] = 0;
    if (fd < 0)
        return;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return;
    buf[n] = 0;
    char *nl = strchr(buf, '\n');
    if (!nl)
        return;
    char *end = strchr(nl + 1, '\n');
    if (end)
        *end = 0;
    snprintf(startup_note, sizeof(startup_note), "%s", nl + 1);
}

sl_err sl_part_startup_begin(const char *data_dir, int *clean)
{
    char path[PATH_MAX];
    sl_err rc = SL_OK;
    *clean = 0;
    snprintf(path, sizeof(path), "%s/%s", data_dir, SL_PART_CLEAN_MARKER);
    read_note(path);
    if (unlink(path) == 0) {
        /* Durably gone before anything is appended: a crash of this run
         * must not find a marker that vouches for data it left only in
         * the page cache. */
        rc = sl_fs_fsync_dir(data_dir, 1);
        if (rc != SL_OK)
            return rc;
        *clean = 1;
    } else if (errno != ENOENT) {
        return SL_ESYS(errno);
    } else {
        startup_note[0] = 0;
    }
    startup_clean = *clean;
    atomic_store(&startup_deferred, 1);
    return SL_OK;
}

sl_err sl_part_startup_end(const char *data_dir)
{
    atomic_store(&startup_deferred, 0);
    return startup_clean ? SL_OK : syncfs_dir(data_dir);
}

sl_err sl_part_shutdown_mark(const char *data_dir)
{
    return sl_part_shutdown_mark_note(data_dir, "");
}

sl_err sl_part_shutdown_mark_note(const char *data_dir, const char *note)
{
    char path[PATH_MAX], text[96 + SL_MARK_NOTE_MAX];
    int n;
    sl_err rc = syncfs_dir(data_dir);
    if (rc != SL_OK)
        return rc;
    snprintf(path, sizeof(path), "%s/%s", data_dir, SL_PART_CLEAN_MARKER);
    n = snprintf(text, sizeof(text),
                 "sluiced clean stop, pid %ld, %lld ms\n%.*s\n", (long)getpid(),
                 sl_fs_now_ms(), SL_MARK_NOTE_MAX, note);
    return sl_fs_write_durable(path, text, (size_t)n);
}

/* ---- partitions.touched ---------------------------------------------- */

#define TOUCHED_HDR "sluice-touched 1 "
#define TOUCHED_TOKEN_MAX 128

static struct {
    int fd;         /* -1: not tracking */
    char *data_dir; /* prefix of every tracked partition directory */
    char **seen;    /* sorted: listed by earlier runs (has, dedup) */
    size_t nseen;
    uint64_t written;        /* loop: lines written */
    _Atomic uint64_t synced; /* lines covered by an fdatasync */
    pthread_mutex_t mu;      /* one fdatasync at a time */
} T = {.fd = -1, .mu = PTHREAD_MUTEX_INITIALIZER};

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void touched_path(const char *data_dir, char *buf, size_t n)
{
    snprintf(buf, n, "%s/%s", data_dir, SL_PART_TOUCHED_FILE);
}

/* p's directory relative to the data directory, or NULL. */
static const char *rel_dir(const char *dir)
{
    size_t n = T.data_dir ? strlen(T.data_dir) : 0;
    if (!n || strncmp(dir, T.data_dir, n) != 0 || dir[n] != '/')
        return NULL;
    return dir + n + 1;
}

static void seen_free(void)
{
    for (size_t i = 0; i < T.nseen; i++)
        free(T.seen[i]);
    free(T.seen);
    T.seen = NULL;
    T.nseen = 0;
}

void sl_part_touched_end(void)
{
    pthread_mutex_lock(&T.mu); /* (a flusher's sl_part__touched_sync) */
    if (T.fd >= 0)
        close(T.fd);
    T.fd = -1;
    pthread_mutex_unlock(&T.mu);
    free(T.data_dir);
    T.data_dir = NULL;
    seen_free();
    T.written = 0;
    atomic_store(&T.synced, 0);
}

/* Parse the file: its token into tok, its lines into T.seen. 0 when it is
 * whole (header, every line ended, none "*"). */
static int parse(char *buf, size_t len, char *tok, size_t toklen)
{
    char *q, *nl;
    size_t cap = 0;
    if (len == 0 || buf[len - 1] != '\n' || memchr(buf, 0, len))
        return -1; /* empty, a line cut short, zeros (a power loss) */
    nl = strchr(buf, '\n');
    if (strncmp(buf, TOUCHED_HDR, strlen(TOUCHED_HDR)) != 0 ||
        (size_t)(nl - buf) - strlen(TOUCHED_HDR) >= toklen)
        return -1;
    *nl = 0;
    snprintf(tok, toklen, "%s", buf + strlen(TOUCHED_HDR));
    for (q = nl + 1; q < buf + len; q = nl + 1) {
        nl = strchr(q, '\n');
        *nl = 0;
        if (!q[0] || strcmp(q, "*") == 0)
            return -1; /* a change outside the data directory */
        if (T.nseen == cap) {
            size_t nc = cap ? cap * 2 : 64;
            char **nv = realloc(T.seen, nc * sizeof(*nv));
            if (!nv)
                return -1;
            T.seen = nv;
            cap = nc;
        }
        if (!(T.seen[T.nseen] = strdup(q)))
            return -1;
        T.nseen++;
    }
    if (T.nseen > 1)
        qsort(T.seen, T.nseen, sizeof(*T.seen), cmp_str);
    return 0;
}

sl_err sl_part_touched_read(const char *data_dir, char *token, size_t toklen)
{
    char path[PATH_MAX];
    struct stat st;
    char *buf = NULL;
    int fd, ok = -1;

    token[0] = 0;
    sl_part_touched_end();
    touched_path(data_dir, path, sizeof(path));
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? SL_OK : SL_ESYS(errno);
    if (fstat(fd, &st) == 0 && st.st_size > 0 &&
        (buf = malloc((size_t)st.st_size + 1)) != NULL &&
        sl_fs_pread_all(fd, buf, (size_t)st.st_size, 0, NULL) == SL_OK) {
        buf[st.st_size] = 0;
        ok = parse(buf, (size_t)st.st_size, token, toklen);
    }
    close(fd);
    free(buf);
    if (ok != 0) {
        token[0] = 0;
        seen_free();
        sl_log(SL_WARN, "storage",
               "%s is incomplete: every partition is recovered at start", path);
    }
    return SL_OK;
}

int sl_part_touched_has(const char *dir)
{
    const char *rel = rel_dir(dir);
    if (!rel)
        return 1; /* not known: recover it */
    return T.nseen &&
           bsearch(&rel, T.seen, T.nseen, sizeof(*T.seen), cmp_str) != NULL;
}

sl_err sl_part_touched_begin(const char *data_dir, const char *token, int keep)
{
    char path[PATH_MAX], hdr[sizeof(TOUCHED_HDR) + TOUCHED_TOKEN_MAX + 1];
    sl_err rc;
    int n, fd;

    if (!keep)
        seen_free();
    if (!token[0] || strlen(token) >= TOUCHED_TOKEN_MAX ||
        strchr(token, '\n')) {
        sl_part_touched_stop(data_dir);
        return SL_OK;
    }
    touched_path(data_dir, path, sizeof(path));
    if (!keep) {
        n = snprintf(hdr, sizeof(hdr), "%s%s\n", TOUCHED_HDR, token);
        rc = sl_fs_write_durable(path, hdr, (size_t)n);
        if (rc != SL_OK)
            return rc;
    }
    fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0)
        return SL_ESYS(errno);
    if (T.fd >= 0)
        close(T.fd);
    T.fd = fd;
    free(T.data_dir);
    T.data_dir = strdup(data_dir);
    if (!T.data_dir) {
        sl_part_touched_stop(data_dir);
        return SL_ERR_NOMEM;
    }
    T.written = 0;
    atomic_store(&T.synced, 0);
    return SL_OK;
}

void sl_part_touched_stop(const char *data_dir)
{
    char path[PATH_MAX];
    sl_part_touched_end();
    touched_path(data_dir, path, sizeof(path));
    if (unlink(path) == 0)
        (void)sl_fs_fsync_dir(data_dir, 1);
}

sl_err sl_part__touch(sl_part *p, int durable)
{
    if (!p->touch_seq) {
        const char *rel;
        char line[PATH_MAX + 2];
        int n;
        if (T.fd < 0) {
            p->touch_seq = UINT64_MAX; /* not tracking: nothing to sync */
            return SL_OK;
        }
        rel = rel_dir(p->dir);
        if (rel && T.nseen &&
            bsearch(&rel, T.seen, T.nseen, sizeof(*T.seen), cmp_str)) {
            p->touch_seq = UINT64_MAX; /* listed by an earlier run */
            return SL_OK;
        }
        n = snprintf(line, sizeof(line), "%s\n", rel ? rel : "*");
        if (n <= 0 || (size_t)n >= sizeof(line) ||
            write(T.fd, line, (size_t)n) != n) {
            sl_log(SL_ERROR, "storage", "%s: cannot write %s: %s", p->dir,
                   SL_PART_TOUCHED_FILE, strerror(errno));
            return SL_ERR_STORAGE;
        }
        p->touch_seq = ++T.written;
    }
    return durable ? sl_part__touched_sync(p) : SL_OK;
}

sl_err sl_part_touch(sl_part *p)
{
    return sl_part__touch(p, 0);
}

sl_err sl_part_touched_flush(void)
{
    sl_part probe;
    probe.touch_seq = T.written; /* everything written so far */
    return T.written ? sl_part__touched_sync(&probe) : SL_OK;
}

sl_err sl_part__touched_sync(const sl_part *p)
{
    uint64_t want = p->touch_seq;
    sl_err rc = SL_OK;
    if (want == 0 || want == UINT64_MAX || atomic_load(&T.synced) >= want)
        return SL_OK;
    pthread_mutex_lock(&T.mu);
    if (atomic_load(&T.synced) < want) {
        /* Everything written so far: T.written may grow meanwhile (loop),
         * but want is covered by any fdatasync started after it. */
        if (T.fd < 0 || sl_fs->fdatasync(T.fd) != 0) {
            rc = T.fd < 0 ? SL_OK : SL_ESYS(errno);
            if (rc != SL_OK)
                sl_log(SL_ERROR, "storage", "fdatasync of %s: %s",
                       SL_PART_TOUCHED_FILE, strerror(errno));
        } else {
            atomic_store(&T.synced, want);
        }
    }
    pthread_mutex_unlock(&T.mu);
    return rc;
}
