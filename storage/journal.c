/*
 * journal.c - the shared write-ahead journal: one fdatasync per flusher
 * round, whatever the number of partitions.
 *
 * WHY
 * ===
 * A durable produce is answered after an fdatasync covers it (flusher.c).
 * With one file per partition, a round over N dirty partitions costs N
 * fdatasyncs, each a journal commit and a device flush on ext4: measured
 * on this project's machine (bench/fsync_many.c, docs/storage.md), 1,000
 * dirty files took 2.2-3.7 s one after the other, 46-82 ms with 16
 * threads syncing concurrently, 59-92 ms through io_uring, 24-77 ms with
 * sync_file_range + syncfs, and 8-12 ms when the same bytes went to one
 * journal file fdatasynced once (10,000 files: 112 ms against 384-813 ms
 * for the parallel variants). So a round with at least
 * journal-min-partitions dirty partitions copies their new bytes here and
 * syncs this one file; the segment files get the bytes in the page cache
 * (at once, or a small append later from the partition's tail: partition.c,
 * THE TAIL; reads, sendfile and the index are unchanged) and are made
 * durable at a checkpoint, when the journal file is full. Rounds with fewer
 * partitions sync the segments themselves, as before: for one partition the
 * journal would only write every byte twice. RabbitMQ's quorum queues share one
 * WAL across queues and BookKeeper's bookies one journal across ledgers,
 * for the same reason.
 *
 * FORMAT
 * ======
 * DATA/journal/NNNNNNNNNNNNNNNNNNNN.wal, numbered by a sequence; only the
 * newest is written to. A file is a concatenation of entries, nothing
 * else; all integers little-endian:
 *
 *   off size field
 *     0    4 length   u32  bytes of the whole entry (header included)
 *     4    4 crc      u32  CRC-32C of bytes [8, length)
 *     8    8 ino      u64  inode number of the segment file
 *    16    8 igen     u64  its inode generation (FS_IOC_GETVERSION; 0 if
 *                          the file system has none)
 *    24    8 base     i64  segment base offset (its file name)
 *    32    8 pos      u64  byte position of data in the segment's .log
 *    40    2 dlen     u16  bytes of dir
 *    42    1 flags    u8   bit 0: dir is relative to the data directory
 *    43 dlen dir           the partition directory
 *    43+dlen  data         the segment's bytes [pos, pos + length-43-dlen)
 *
 * Entries hold whole batches (a range [synced, size) of a segment; both
 * are batch boundaries) split into pieces of at most SL_JR_CHUNK bytes.
 *
 * RULES
 * =====
 *  1. A round publishes the durable offsets of its journaled partitions
 *     only after sl_journal__commit returned SL_OK (the file fdatasynced):
 *     acked means in the journal or in the segment file.
 *  2. File names. A segment created since the partition's last directory
 *     fsync (a new partition, a roll) may be journaled and acked before
 *     its name is durable: the checkpoint fsyncs the directory
 *     (sl_part__sync_files) before the journal file goes, and replay
 *     recreates a segment file that is missing when its partition
 *     directory exists and holds no segment with a higher base (so a
 *     file lost in the crash comes back, while one retention deleted, or
 *     a deleted topic's, does not). Everything of such a file is in the
 *     live journal files, from position 0, because whatever synced its
 *     first bytes otherwise also fsynced the directory.
 *  3. A journal file is deleted only after every segment file written
 *     while it was current was fdatasynced (the checkpoint, flusher.c),
 *     and after the next file exists. A failed checkpoint fdatasync marks
 *     that partition failed and keeps the journal file.
 *  4. Replay (sl_journal_open, before partitions are opened) walks the
 *     files in sequence order, entry by entry, and stops a file at the
 *     first entry that is short, implausible or fails its CRC: a torn
 *     tail, never acked (rule 1). For each entry it opens the segment
 *     file (recreating it under rule 2); when the file is gone or is
 *     another file than the one journaled (inode number and generation
 *     differ: compaction renamed a rewritten copy over it, or the topic
 *     was recreated), the entry is skipped; otherwise the bytes at pos
 *     are written back when they differ or are missing (compared only
 *     when the page cache holds them). The written files are made durable
 *     together at the end (an fdatasync of each, one syncfs for many:
 *     sync_written), then the journal files deleted. Partition recovery
 *     (segment.c) then runs as always and cuts whatever unacknowledged
 *     tail follows.
 *  5. A failed journal write or fdatasync is permanent (fsyncgate: the
 *     kernel may have dropped the pages): the flusher falls back to
 *     fdatasync of the segment files, which still hold every byte.
 */
#include "storage/journal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "protocol/crc32c.h"
#include "protocol/log.h"
#include "protocol/rd.h"
#include "storage/fsutil.h"

#define SL_JR_HDR 43
#define SL_JR_CHUNK (1024u * 1024u)
#define SL_JR_BUF (2u * SL_JR_CHUNK + 65536u)
#define SL_JR_MAX_ENTRY (SL_JR_CHUNK + SL_JR_HDR + PATH_MAX)

struct sl_journal {
    char *data_dir;  /* as given */
    char *dir;       /* DATA/journal */
    size_t data_len; /* strlen(data_dir) */
    uint64_t file_bytes;
    uint64_t seq;  /* of the current file */
    int fd;        /* current file */
    uint64_t size; /* written to the current file (buffer excluded) */
    uint8_t *buf;  /* entries not yet written */
    size_t blen;
    uint8_t *pend; /* sl_journal__entry: an entry being filled */
    _Atomic int failed;
    _Atomic uint64_t entries, syncs;
};

static uint16_t get_u16(const uint8_t *b)
{
    return (uint16_t)(b[0] | b[1] << 8);
}

static void put_u16(uint8_t *b, uint16_t v)
{
    b[0] = (uint8_t)v;
    b[1] = (uint8_t)(v >> 8);
}

static void jpath(const sl_journal *j, uint64_t seq, char *b, size_t n)
{
    snprintf(b, n, "%s/%020llu.wal", j->dir, (unsigned long long)seq);
}

/* Parse "NNNNNNNNNNNNNNNNNNNN.wal"; 0 = no. */
static int parse_wal(const char *name, uint64_t *seq)
{
    uint64_t v = 0;
    if (strlen(name) != 24 || strcmp(name + 20, ".wal") != 0)
        return 0;
    for (int i = 0; i < 20; i++) {
        if (name[i] < '0' || name[i] > '9')
            return 0;
        v = v * 10 + (uint64_t)(name[i] - '0');
    }
    *seq = v;
    return 1;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

uint64_t sl_journal__igen(int fd)
{
    unsigned int g = 0; /* FS_IOC_GETVERSION takes an int-sized value */
    if (ioctl(fd, FS_IOC_GETVERSION, &g) != 0)
        return 0;
    return g;
}

/* The segment files replay touched, by path: created (replay made it, so
 * its inode is not the journaled one) and written (bytes went back: it is
 * made durable once, after every file was replayed). Hashed: a journal
 * over 10,000 partitions names that many files, and after a kill -9 each
 * has a tail to write back (partition.c, THE TAIL). */
typedef struct replay_seg {
    char *path;
    int fd; /* kept open (replay_ctx.max_open), else -1 */
    unsigned created : 1, written : 1;
    unsigned known : 1; /* ino and igen below are the file's */
    unsigned gone : 1;  /* missing and not to be created (rule 2) */
    uint64_t ino, igen;
} replay_seg;

typedef struct replay_ctx {
    replay_seg *v; /* cap slots, open addressing; path NULL = free */
    size_t n, cap; /* cap a power of two */
    size_t ndirty; /* entries written or created: to make durable */
    size_t nopen, max_open;
    uint8_t *cmp;   /* SL_JR_CHUNK bytes: what the segment holds */
    uint64_t bytes; /* written back */
} replay_ctx;

static size_t path_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    while (*s)
        h = (h ^ (uint8_t)*s++) * 1099511628211ull;
    return (size_t)h;
}

/* The entry for path; with add, made when missing (NULL: no memory). */
static replay_seg *rseg_get(replay_ctx *r, const char *path, int add)
{
    size_t i;
    if (add && (r->n + 1) * 2 > r->cap) {
        size_t nc = r->cap ? r->cap * 2 : 64;
        replay_seg *nv = calloc(nc, sizeof(*nv));
        if (!nv)
            return NULL;
        for (size_t k = 0; k < r->cap; k++) {
            if (!r->v[k].path)
                continue;
            for (i = path_hash(r->v[k].path) & (nc - 1); nv[i].path;
                 i = (i + 1) & (nc - 1))
                ;
            nv[i] = r->v[k];
        }
        free(r->v);
        r->v = nv;
        r->cap = nc;
    }
    if (!r->cap)
        return NULL;
    for (i = path_hash(path) & (r->cap - 1); r->v[i].path;
         i = (i + 1) & (r->cap - 1))
        if (strcmp(r->v[i].path, path) == 0)
            return &r->v[i];
    if (!add || !(r->v[i].path = strdup(path)))
        return NULL;
    r->v[i].fd = -1;
    r->n++;
    return &r->v[i];
}

static void rset_free(replay_ctx *r)
{
    for (size_t i = 0; i < r->cap; i++) {
        if (r->v[i].fd >= 0)
            close(r->v[i].fd);
        free(r->v[i].path);
    }
    free(r->v);
    free(r->cmp);
}

/* May replay create the missing segment file seg (base)? Only when its
 * partition directory exists (a deleted topic's does not) and holds no
 * segment with a higher base (retention deletes old segments only; the
 * active one is never deleted). */
static int may_create(const char *seg, int64_t base)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(seg, '/');
    DIR *d;
    struct dirent *de;
    int ok = 1;
    if (!slash || (size_t)(slash - seg) >= sizeof(dir))
        return 0;
    memcpy(dir, seg, (size_t)(slash - seg));
    dir[slash - seg] = 0;
    d = opendir(dir);
    if (!d)
        return 0;
    while (ok && (de = readdir(d)) != NULL) {
        long long b;
        char ext[8];
        if (strlen(de->d_name) == 24 &&
            sscanf(de->d_name, "%20lld%7s", &b, ext) == 2 &&
            strcmp(ext, ".log") == 0 && b > base)
            ok = 0;
    }
    closedir(d);
    return ok;
}

/* Replay one entry (already CRC-checked). *written = 1 when bytes were
 * written back into the segment. The segment's descriptor stays open for
 * the next entries (up to max_open of them); the bytes are compared only
 * when the page cache holds them (RWF_NOWAIT): after a reboot nothing is
 * cached and reading every journaled range back from the disk to compare
 * costs more than writing it. */
static sl_err replay_entry(const sl_journal *j, replay_ctx *r, const uint8_t *e,
                           size_t len, int *written)
{
    uint64_t ino = sl_get_u64(e + 8), igen = sl_get_u64(e + 16);
    int64_t base = (int64_t)sl_get_u64(e + 24);
    uint64_t pos = sl_get_u64(e + 32);
    uint16_t dlen = get_u16(e + 40);
    uint8_t flags = e[42];
    const uint8_t *data = e + SL_JR_HDR + dlen;
    size_t n = len - SL_JR_HDR - dlen;
    char seg[PATH_MAX + 64];
    replay_seg *rs;
    sl_err rc = SL_OK;
    int fd;

    *written = 0;
    if (flags & 1)
        snprintf(seg, sizeof(seg), "%s/%.*s/%020lld.log", j->data_dir,
                 (int)dlen, (const char *)e + SL_JR_HDR, (long long)base);
    else
        snprintf(seg, sizeof(seg), "%.*s/%020lld.log", (int)dlen,
                 (const char *)e + SL_JR_HDR, (long long)base);
    if (!(rs = rseg_get(r, seg, 1)))
        return SL_ERR_NOMEM;
    if (rs->gone)
        return SL_OK; /* deleted since (rule 2) */
    fd = rs->fd;
    if (fd < 0) {
        fd = sl_fs->open(seg, O_RDWR | O_CLOEXEC, 0);
        if (fd < 0 && errno == ENOENT && !rs->known && !rs->created &&
            may_create(seg, base)) {
            /* Rule 2: a name the crash lost, in a partition that still
             * exists and has nothing newer. */
            fd = sl_fs->open(seg, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
            if (fd >= 0) {
                rs->created = 1;
                r->ndirty++;
                sl_log(SL_WARN, "journal",
                       "replay: %s was lost in the crash; recreating it", seg);
            }
        }
        if (fd < 0) {
            if (errno == ENOENT || errno == ENOTDIR) {
                rs->gone = 1;
                return SL_OK; /* deleted since (rule 2) */
            }
            rc = SL_ESYS(errno);
            sl_log(SL_ERROR, "journal", "replay: cannot open %s: %s", seg,
                   strerror(errno));
            return rc;
        }
        if (!rs->known && !rs->created) {
            struct stat st;
            if (fstat(fd, &st) != 0) {
                rc = SL_ESYS(errno);
                close(fd);
                return rc;
            }
            rs->ino = (uint64_t)st.st_ino;
            rs->igen = sl_journal__igen(fd);
        }
        rs->known = 1;
        if (r->nopen < r->max_open) {
            rs->fd = fd;
            r->nopen++;
        }
    }
    /* another file of that name now (rule 4); one replay made is new */
    if (!rs->created && (rs->ino != ino || rs->igen != igen))
        goto out;
    if (n) {
        struct iovec iov = {r->cmp, n};
        ssize_t got = preadv2(fd, &iov, 1, (off_t)pos, RWF_NOWAIT);
        if (got == (ssize_t)n && memcmp(r->cmp, data, n) == 0)
            goto out;
    }
    rc = sl_fs_pwrite_all(fd, data, n, (off_t)pos);
    if (rc != SL_OK) {
        sl_log(SL_ERROR, "journal", "replay: cannot write %s: %s", seg,
               sl_strerror(rc));
        goto out;
    }
    /* made durable with the others at the end (sync_written) */
    if (!rs->written && !rs->created)
        r->ndirty++;
    rs->written = 1;
    r->bytes += n;
    *written = 1;
    sl_log(SL_DEBUG, "journal",
           "replay: wrote %zu bytes back into %s at position %llu", n, seg,
           (unsigned long long)pos);
out:
    if (fd != rs->fd)
        close(fd);
    return rc;
}

/* Make every segment file replay wrote durable, before the journal files
 * go (rule 4): one syncfs for SL_JR_SYNCFS_MIN files or more (after a
 * kill -9 every partition of the last journal file has a tail to write
 * back; an fdatasync of each, one per written range as before, took 30 s
 * for 10,000 partitions), else an fdatasync of each, and of the directory
 * of each file replay created. */
#define SL_JR_SYNCFS_MIN 64

static sl_err sync_written(sl_journal *j, const replay_ctx *r)
{
    if (r->ndirty == 0)
        return SL_OK;
    if (r->ndirty >= SL_JR_SYNCFS_MIN) {
        sl_err rc = sl_journal__syncfs(j);
        if (rc != SL_OK)
            sl_log(SL_ERROR, "journal", "replay: syncfs of %s: %s", j->data_dir,
                   sl_strerror(rc));
        return rc;
    }
    for (size_t i = 0; i < r->cap; i++) {
        const replay_seg *rs = &r->v[i];
        sl_err rc = SL_OK;
        int fd;
        if (!rs->path || !(rs->written || rs->created))
            continue;
        fd =
            rs->fd >= 0 ? rs->fd : sl_fs->open(rs->path, O_RDWR | O_CLOEXEC, 0);
        if (fd < 0)
            rc = SL_ESYS(errno);
        else if (sl_fs->fdatasync(fd) != 0)
            rc = SL_ESYS(errno);
        if (fd >= 0 && fd != rs->fd)
            close(fd);
        if (rc == SL_OK && rs->created)
            rc = sl_fs_fsync_dir(rs->path, 0);
        if (rc != SL_OK) {
            sl_log(SL_ERROR, "journal", "replay: fdatasync %s: %s", rs->path,
                   sl_strerror(rc));
            return rc;
        }
    }
    return SL_OK;
}

/* Replay one journal file (rule 4), read in pieces of SL_JR_READ. */
#define SL_JR_READ (4u * 1024 * 1024)

static sl_err replay_file(const sl_journal *j, replay_ctx *rctx,
                          const char *path, uint64_t *nwritten)
{
    int fd = sl_fs->open(path, O_RDONLY | O_CLOEXEC, 0);
    struct stat st;
    uint8_t *buf = NULL;
    uint64_t pos = 0, entries = 0, bpos = 0; /* file position of buf[0] */
    size_t blen = 0;
    sl_err rc = SL_OK;

    if (fd < 0) {
        sl_log(SL_ERROR, "journal", "cannot open %s: %s", path,
               strerror(errno));
        return SL_ESYS(errno);
    }
    if (fstat(fd, &st) != 0) {
        rc = SL_ESYS(errno);
        goto out;
    }
    buf = malloc(SL_JR_READ + SL_JR_MAX_ENTRY);
    if (!buf) {
        rc = SL_ERR_NOMEM;
        goto out;
    }
    while (pos + SL_JR_HDR <= (uint64_t)st.st_size) {
        int written = 0;
        const uint8_t *e;
        if (pos + SL_JR_HDR > bpos + blen ||
            pos + sl_get_u32(buf + (pos - bpos)) > bpos + blen) {
            /* refill from pos: the next entry is whole in the buffer
             * unless it is longer than SL_JR_MAX_ENTRY (the check below) */
            size_t want = SL_JR_READ + SL_JR_MAX_ENTRY, got = 0;
            if ((uint64_t)st.st_size - pos < want)
                want = (size_t)((uint64_t)st.st_size - pos);
            rc = sl_fs_pread_all(fd, buf, want, (off_t)pos, &got);
            if (rc != SL_OK && rc != SL_ERR_MALFORMED)
                goto out;
            rc = SL_OK;
            bpos = pos;
            blen = got;
            if (blen < SL_JR_HDR)
                break;
        }
        e = buf + (pos - bpos);
        uint32_t len = sl_get_u32(e);
        uint16_t dlen = get_u16(e + 40);
        if (len < SL_JR_HDR + (uint32_t)dlen || len > SL_JR_MAX_ENTRY ||
            pos + len > bpos + blen)
            break; /* torn or zeros: the end */
        if (sl_crc32c(0, e + 8, len - 8) != sl_get_u32(e + 4))
            break;
        rc = replay_entry(j, rctx, e, len, &written);
        if (rc != SL_OK)
            goto out;
        *nwritten += (uint64_t)written;
        entries++;
        pos += len;
    }
    if (pos < (uint64_t)st.st_size)
        sl_log(SL_INFO, "journal",
               "%s: %llu entries, ignoring %llu bytes after position %llu "
               "(a write never acknowledged)",
               path, (unsigned long long)entries,
               (unsigned long long)(st.st_size - (off_t)pos),
               (unsigned long long)pos);
out:
    free(buf);
    close(fd);
    return rc;
}

static sl_err new_file(sl_journal *j)
{
    char path[PATH_MAX];
    int fd;
    jpath(j, j->seq, path, sizeof(path));
    fd = sl_fs->open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        sl_log(SL_ERROR, "journal", "cannot create %s: %s", path,
               strerror(errno));
        return SL_ESYS(errno);
    }
    /* Its name must be durable before anything in it is acked. */
    sl_err rc = sl_fs_fsync_dir(j->dir, 1);
    if (rc != SL_OK) {
        close(fd);
        return rc;
    }
    j->fd = fd;
    j->size = 0;
    return SL_OK;
}

sl_err sl_journal_open(const char *data_dir, uint64_t file_bytes,
                       sl_journal **out, uint64_t *replayed)
{
    sl_journal *j = calloc(1, sizeof(*j));
    DIR *d = NULL;
    struct dirent *de;
    uint64_t *seqs = NULL, nwritten = 0;
    size_t n = 0, c = 0;
    replay_ctx rctx = {NULL, 0, 0, 0, 0, 0, NULL, 0};
    char path[PATH_MAX];
    struct stat st;
    sl_err rc;

    if (!j)
        return SL_ERR_NOMEM;
    j->fd = -1;
    j->file_bytes = file_bytes ? file_bytes : 64u * 1024 * 1024;
    j->data_dir = strdup(data_dir);
    j->data_len = strlen(data_dir);
    j->buf = malloc(SL_JR_BUF);
    if (asprintf(&j->dir, "%s/journal", data_dir) < 0)
        j->dir = NULL;
    if (!j->data_dir || !j->buf || !j->dir) {
        rc = SL_ERR_NOMEM;
        goto out;
    }
    int created = stat(j->dir, &st) != 0;
    rc = sl_fs_mkdirs(j->dir, 0755);
    if (rc == SL_OK && created)
        rc = sl_fs_fsync_dir(j->dir, 0);
    if (rc != SL_OK)
        goto out;
    d = opendir(j->dir);
    if (!d) {
        rc = SL_ESYS(errno);
        goto out;
    }
    /* Segment descriptors replay keeps open (closed before partitions
     * are opened): half of RLIMIT_NOFILE, at most 65,536. Rounds journal
     * their partitions in the same order each time, so past the bound
     * the rest are opened per entry. */
    struct rlimit rl;
    rctx.max_open = 65536;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur / 2 < rctx.max_open)
        rctx.max_open = (size_t)(rl.rlim_cur / 2);
    if (!(rctx.cmp = malloc(SL_JR_CHUNK))) {
        rc = SL_ERR_NOMEM;
        goto out;
    }
    while ((de = readdir(d)) != NULL) {
        uint64_t s;
        if (!parse_wal(de->d_name, &s))
            continue;
        if (n == c) {
            size_t nc = c ? c * 2 : 8;
            uint64_t *v = realloc(seqs, nc * sizeof(*v));
            if (!v) {
                rc = SL_ERR_NOMEM;
                goto out;
            }
            seqs = v;
            c = nc;
        }
        seqs[n++] = s;
    }
    if (n > 1)
        qsort(seqs, n, sizeof(*seqs), cmp_u64);
    for (size_t i = 0; i < n; i++) {
        jpath(j, seqs[i], path, sizeof(path));
        rc = replay_file(j, &rctx, path, &nwritten);
        if (rc != SL_OK) {
            sl_log(SL_ERROR, "journal", "cannot replay %s: %s", path,
                   sl_strerror(rc));
            goto out;
        }
    }
    rc = sync_written(j, &rctx);
    if (rc != SL_OK)
        goto out;
    /* Every written segment is durable: the files are no longer needed.
     * The new file gets a higher number first (rule 3). */
    j->seq = n ? seqs[n - 1] + 1 : 1;
    rc = new_file(j);
    if (rc != SL_OK)
        goto out;
    for (size_t i = 0; i < n; i++) {
        jpath(j, seqs[i], path, sizeof(path));
        if (unlink(path) != 0)
            sl_log(SL_WARN, "journal", "cannot delete %s: %s", path,
                   strerror(errno));
    }
    if (n)
        sl_log(SL_INFO, "journal",
               "replayed %zu journal file(s): %llu range(s), %llu bytes "
               "written back into %zu segment file(s)",
               n, (unsigned long long)nwritten, (unsigned long long)rctx.bytes,
               rctx.ndirty);
    if (replayed)
        *replayed = nwritten;
    *out = j;
    j = NULL;
out:
    if (d)
        closedir(d);
    rset_free(&rctx);
    free(seqs);
    sl_journal_free(j);
    return rc;
}

void sl_journal_free(sl_journal *j)
{
    if (!j)
        return;
    if (j->fd >= 0)
        close(j->fd);
    free(j->buf);
    free(j->dir);
    free(j->data_dir);
    free(j);
}

uint64_t sl_journal_entries(const sl_journal *j)
{
    return atomic_load(&((sl_journal *)j)->entries);
}

uint64_t sl_journal_syncs(const sl_journal *j)
{
    return atomic_load(&((sl_journal *)j)->syncs);
}

int sl_journal__failed(const sl_journal *j)
{
    return atomic_load(&((sl_journal *)j)->failed);
}

static sl_err write_buf(sl_journal *j)
{
    sl_err rc;
    if (j->blen == 0)
        return SL_OK;
    rc = sl_fs_pwrite_all(j->fd, j->buf, j->blen, (off_t)j->size);
    if (rc != SL_OK) {
        atomic_store(&j->failed, 1);
        sl_log(SL_ERROR, "journal",
               "write failed: %s; falling back to fdatasync per segment",
               sl_strerror(rc));
        return rc;
    }
    j->size += j->blen;
    j->blen = 0;
    return SL_OK;
}

/* Header and dir of an entry at e (data of n bytes follows). */
static size_t put_hdr(const sl_journal *j, uint8_t *e, const char *dir,
                      int64_t base, uint64_t ino, uint64_t igen, uint64_t pos,
                      size_t n)
{
    const char *rel = dir;
    uint8_t flags = 0;
    size_t dlen;
    if (strncmp(dir, j->data_dir, j->data_len) == 0 &&
        dir[j->data_len] == '/') {
        rel = dir + j->data_len + 1;
        flags = 1;
    }
    dlen = strlen(rel);
    sl_put_u32(e, (uint32_t)(SL_JR_HDR + dlen + n));
    sl_put_u64(e + 8, ino);
    sl_put_u64(e + 16, igen);
    sl_put_u64(e + 24, (uint64_t)base);
    sl_put_u64(e + 32, pos);
    put_u16(e + 40, (uint16_t)dlen);
    e[42] = flags;
    memcpy(e + SL_JR_HDR, rel, dlen);
    return SL_JR_HDR + dlen;
}

uint8_t *sl_journal__entry(sl_journal *j, const char *dir, int64_t base,
                           uint64_t ino, uint64_t igen, uint64_t pos, size_t n)
{
    size_t len = SL_JR_HDR + strlen(dir) + n;
    if (atomic_load(&j->failed) || n > SL_JR_CHUNK || strlen(dir) > PATH_MAX)
        return NULL;
    if (j->blen + len > SL_JR_BUF && write_buf(j) != SL_OK)
        return NULL;
    j->pend = j->buf + j->blen;
    return j->pend + put_hdr(j, j->pend, dir, base, ino, igen, pos, n);
}

void sl_journal__seal(sl_journal *j)
{
    uint8_t *e = j->pend;
    uint32_t len = sl_get_u32(e);
    sl_put_u32(e + 4, sl_crc32c(0, e + 8, len - 8));
    j->blen += len;
    j->pend = NULL;
    atomic_fetch_add(&j->entries, 1);
}

void sl_journal__abort(sl_journal *j)
{
    j->pend = NULL;
}

sl_err sl_journal__add(sl_journal *j, const char *dir, int64_t base,
                       uint64_t ino, uint64_t igen, int fd, uint64_t from,
                       uint64_t to)
{
    while (from < to) {
        size_t n = to - from > SL_JR_CHUNK ? SL_JR_CHUNK : (size_t)(to - from);
        size_t got = 0;
        uint8_t *d = sl_journal__entry(j, dir, base, ino, igen, from, n);
        if (!d)
            return SL_ERR_STORAGE;
        /* From the page cache: the bytes the loop wrote and published. */
        sl_err rc = sl_fs_pread_all(fd, d, n, (off_t)from, &got);
        if (rc != SL_OK) {
            sl_journal__abort(j);
            return rc; /* the caller syncs the file instead */
        }
        sl_journal__seal(j);
        from += n;
    }
    return SL_OK;
}

sl_err sl_journal__commit(sl_journal *j)
{
    sl_err rc;
    if (atomic_load(&j->failed))
        return SL_ERR_STORAGE;
    rc = write_buf(j);
    if (rc != SL_OK)
        return rc;
    atomic_fetch_add(&j->syncs, 1);
    if (sl_fs->fdatasync(j->fd) != 0) {
        rc = SL_ESYS(errno);
        atomic_store(&j->failed, 1);
        sl_log(SL_ERROR, "journal",
               "fdatasync failed: %s; falling back to fdatasync per segment",
               sl_strerror(rc));
        return rc;
    }
    return SL_OK;
}

int sl_journal__full(const sl_journal *j, size_t nparts)
{
    uint64_t cap = j->file_bytes * SL_JR_STRETCH, want = j->file_bytes;
    if (nparts > cap / SL_JR_BYTES_PER_PART)
        want = cap;
    else if ((uint64_t)nparts * SL_JR_BYTES_PER_PART > want)
        want = (uint64_t)nparts * SL_JR_BYTES_PER_PART;
    return j->size + j->blen >= want;
}

sl_err sl_journal__rotate(sl_journal *j, uint64_t *old_seq)
{
    int ofd = j->fd;
    uint64_t oseq = j->seq;
    sl_err rc;
    if (j->blen != 0)
        return SL_ERR_STORAGE; /* only between rounds */
    j->seq++;
    rc = new_file(j);
    if (rc != SL_OK) {
        j->seq = oseq;
        return rc; /* keep writing the old one */
    }
    close(ofd);
    *old_seq = oseq;
    return SL_OK;
}

void sl_journal__drop(sl_journal *j, uint64_t seq)
{
    char path[PATH_MAX];
    jpath(j, seq, path, sizeof(path));
    if (unlink(path) != 0)
        sl_log(SL_WARN, "journal", "cannot delete %s: %s", path,
               strerror(errno));
}

uint64_t sl_journal__seq(const sl_journal *j)
{
    return j->seq;
}

sl_err sl_journal__syncfs(sl_journal *j)
{
    sl_err rc = SL_OK;
    int fd = open(j->data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return SL_ESYS(errno);
    if (sl_fs->syncfs(fd) != 0)
        rc = SL_ESYS(errno);
    close(fd);
    return rc;
}

void sl_journal__retire(sl_journal *j)
{
    if (j->fd < 0 || atomic_load(&j->failed) || j->blen != 0)
        return;
    close(j->fd);
    j->fd = -1;
    sl_journal__drop(j, j->seq);
}
