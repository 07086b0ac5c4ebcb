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
 *     another file than the one journaled (inode number and generation differ:
 * compaction renamed a rewritten copy over it, or the topic was recreated), the
 * entry is skipped; otherwise the bytes at pos are compared and written back
 *     when they differ or are missing. The written files are fdatasynced,
 *     then the journal files deleted. Partition recovery (segment.c) then
 *     runs as always and cuts whatever unacknowledged tail follows.
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
#include <sys/stat.h>
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

/* Segment files replay created (their inode is not the journaled one). */
typedef struct replay_ctx {
    char **paths;
    size_t n, c;
} replay_ctx;

static int created_has(const replay_ctx *r, const char *path)
{
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->paths[i], path) == 0)
            return 1;
    return 0;
}

static int created_add(replay_ctx *r, const char *path)
{
    if (r->n == r->c) {
        size_t c = r->c ? r->c * 2 : 16;
        char **v = realloc(r->paths, c * sizeof(*v));
        if (!v)
            return -1;
        r->paths = v;
        r->c = c;
    }
    if (!(r->paths[r->n] = strdup(path)))
        return -1;
    r->n++;
    return 0;
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
 * written back into the segment, whose path is then left in seg. */
static sl_err replay_entry(const sl_journal *j, replay_ctx *rc_,
                           const uint8_t *e, size_t len, char *seg,
                           size_t seglen, int *written)
{
    uint64_t ino = sl_get_u64(e + 8), igen = sl_get_u64(e + 16);
    int64_t base = (int64_t)sl_get_u64(e + 24);
    uint64_t pos = sl_get_u64(e + 32);
    uint16_t dlen = get_u16(e + 40);
    uint8_t flags = e[42];
    const uint8_t *data = e + SL_JR_HDR + dlen;
    size_t n = len - SL_JR_HDR - dlen;
    struct stat st;
    uint8_t *cur = NULL;
    size_t got = 0;
    sl_err rc = SL_OK;
    int fd;

    *written = 0;
    if (flags & 1)
        snprintf(seg, seglen, "%s/%.*s/%020lld.log", j->data_dir, (int)dlen,
                 (const char *)e + SL_JR_HDR, (long long)base);
    else
        snprintf(seg, seglen, "%.*s/%020lld.log", (int)dlen,
                 (const char *)e + SL_JR_HDR, (long long)base);
    int made = created_has(rc_, seg);
    fd = sl_fs->open(seg, O_RDWR | O_CLOEXEC, 0);
    if (fd < 0 && errno == ENOENT && may_create(seg, base)) {
        /* Rule 2: a name the crash lost, in a partition that still
         * exists and has nothing newer. */
        fd = sl_fs->open(seg, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd >= 0 && created_add(rc_, seg) != 0) {
            close(fd);
            return SL_ERR_NOMEM;
        }
        if (fd >= 0)
            sl_log(SL_WARN, "journal",
                   "replay: %s was lost in the crash; recreating it", seg);
        made = 1;
    }
    if (fd < 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return SL_OK; /* deleted since (rule 2) */
        rc = SL_ESYS(errno);
        sl_log(SL_ERROR, "journal", "replay: cannot open %s: %s", seg,
               strerror(errno));
        return rc;
    }
    if (fstat(fd, &st) != 0) {
        rc = SL_ESYS(errno);
        goto out;
    }
    if (!made && ((uint64_t)st.st_ino != ino || sl_journal__igen(fd) != igen))
        goto out; /* another file of that name now (rule 4) */
    cur = malloc(n ? n : 1);
    if (!cur) {
        rc = SL_ERR_NOMEM;
        goto out;
    }
    rc = sl_fs_pread_all(fd, cur, n, (off_t)pos, &got);
    if (rc != SL_OK && rc != SL_ERR_MALFORMED)
        goto out;
    rc = SL_OK;
    if (got == n && memcmp(cur, data, n) == 0)
        goto out;
    rc = sl_fs_pwrite_all(fd, data, n, (off_t)pos);
    if (rc != SL_OK) {
        sl_log(SL_ERROR, "journal", "replay: cannot write %s: %s", seg,
               sl_strerror(rc));
        goto out;
    }
    rc = sl_fs->fdatasync(fd) == 0 ? SL_OK : SL_ESYS(errno);
    if (rc != SL_OK) {
        sl_log(SL_ERROR, "journal", "replay: fdatasync %s: %s", seg,
               sl_strerror(rc));
        goto out;
    }
    *written = 1;
    sl_log(SL_INFO, "journal",
           "replay: wrote %zu bytes back into %s at position %llu", n, seg,
           (unsigned long long)pos);
out:
    free(cur);
    close(fd);
    return rc;
}

/* Replay one journal file (rule 4). */
static sl_err replay_file(const sl_journal *j, replay_ctx *rctx,
                          const char *path, uint64_t *nwritten)
{
    int fd = sl_fs->open(path, O_RDONLY | O_CLOEXEC, 0);
    struct stat st;
    uint8_t *e = NULL;
    uint64_t pos = 0, entries = 0;
    char seg[PATH_MAX + 64];
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
    e = malloc(SL_JR_MAX_ENTRY);
    if (!e) {
        rc = SL_ERR_NOMEM;
        goto out;
    }
    while (pos + SL_JR_HDR <= (uint64_t)st.st_size) {
        size_t got = 0;
        int written = 0;
        rc = sl_fs_pread_all(fd, e, SL_JR_HDR, (off_t)pos, &got);
        if (rc != SL_OK)
            goto out;
        uint32_t len = sl_get_u32(e);
        uint16_t dlen = get_u16(e + 40);
        if (len < SL_JR_HDR + (uint32_t)dlen || len > SL_JR_MAX_ENTRY ||
            pos + len > (uint64_t)st.st_size)
            break; /* torn or zeros: the end */
        rc = sl_fs_pread_all(fd, e + SL_JR_HDR, len - SL_JR_HDR,
                             (off_t)(pos + SL_JR_HDR), NULL);
        if (rc != SL_OK)
            goto out;
        if (sl_crc32c(0, e + 8, len - 8) != sl_get_u32(e + 4))
            break;
        rc = replay_entry(j, rctx, e, len, seg, sizeof(seg), &written);
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
    free(e);
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
    replay_ctx rctx = {NULL, 0, 0};
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
    /* Every written segment was fdatasynced: the files are no longer
     * needed. The new file gets a higher number first (rule 3). */
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
               "replayed %zu journal file(s): %llu range(s) written back", n,
               (unsigned long long)nwritten);
    if (replayed)
        *replayed = nwritten;
    *out = j;
    j = NULL;
out:
    if (d)
        closedir(d);
    for (size_t i = 0; i < rctx.n; i++)
        free(rctx.paths[i]);
    free(rctx.paths);
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
