/*
 * segment.c - segment files of a partition log, their indexes, recovery.
 *
 * ON-DISK FORMAT
 * ==============
 * A partition is a directory. Its log is split into segments, each named
 * by the offset of its first record, 20 decimal digits zero padded:
 *
 *     00000000000000000000.log        the record batches
 *     00000000000000000000.index      sparse offset index
 *     00000000000000000000.timeindex  sparse time index
 *     00000000000000001234.log        next segment: starts at offset 1234
 *     ...
 *
 * Segments cover consecutive offset ranges: segment i holds offsets
 * [base_i, base_{i+1}); the last one is the active segment, the only one
 * appended to. All integers are little-endian.
 *
 * .log is a plain concatenation of record batches exactly as producers
 * encoded them (protocol/batch.h), with the base offset filled in by the
 * broker. Nothing else: no file header, no padding. One batch:
 *
 *   off size field
 *     0    8 base_offset        i64  offset of the first record
 *     8    4 length             u32  bytes after this field
 *    12    4 crc                u32  CRC-32C (Castagnoli) of [16, 12+length)
 *    16    1 magic              u8   2
 *    17    2 attributes         u16  bits 0-2 codec (0 none, 1 zstd),
 *                                    bit 5 control
 *    19    4 last_offset_delta  i32  record_count - 1
 *    23    8 first_timestamp    i64  ms since the epoch
 *    31    8 max_timestamp      i64
 *    39    8 producer_id        i64
 *    47    2 producer_epoch     i16
 *    49    4 base_sequence      i32
 *    53    4 record_count       u32
 *    57      records (varint framed; one zstd frame of them if codec 1)
 *
 * Batches in a segment have strictly increasing base offsets; within one
 * batch record i has offset base_offset + i. Offsets are contiguous across
 * batches except after compaction, which leaves gaps (never renumbers).
 *
 * .index is an array of 8-byte entries, appended while the log grows:
 *
 *     u32 rel   base offset of a batch minus the segment's base
 *     u32 pos   byte position of that batch in .log
 *
 * An entry is added for the batch that starts after at least
 * index_interval_bytes (default 4096) were appended since the previous
 * entry (the first batch, at position 0, never needs one). Both fields
 * strictly increase. To find offset X: binary search the last entry with
 * rel <= X - base, then walk batch headers from its pos (at most about
 * index_interval_bytes plus one batch).
 *
 * .timeindex is an array of 12-byte entries:
 *
 *     i64 ts    max_timestamp of every batch up to this point
 *     u32 rel   base offset (relative) of the batch holding ts
 *
 * written together with an index entry whenever the segment's max
 * timestamp grew since the last time entry. Both fields strictly increase.
 * To find the first record with timestamp >= T: skip segments whose max
 * timestamp < T, then start at the rel of the last entry with ts < T (or the
 * segment start) and scan records.
 *
 * Indexes are derived data: they can always be rebuilt from .log, so they
 * are never fsynced on the append path (only once when their segment is
 * rolled) and recovery distrusts them.
 *
 * FSYNC ORDERING
 * ==============
 * Appends write(2) to the page cache and return; durability comes from the
 * flusher (flusher.c). A sync round, per partition:
 *   1. under the partition mutex, snapshot the end offset E and the fds and
 *      sizes of every segment with unsynced bytes (a segment rolled since
 *      the last round is included, with its two index files), and whether
 *      the directory gained entries (a new segment); a .log the open-file
 *      cache closed (fdcache.c) is opened by name for the round;
 *   2. without the mutex, fdatasync each .log (and the rolled indexes),
 *      then fsync the directory if it changed, so a new segment's name is
 *      as durable as its bytes;
 *   3. publish durable_offset = E (atomic, monotonic).
 * So the durable offset never passes a byte that is not on disk, including
 * the tail of a segment rolled while a sync was pending. If an fdatasync
 * fails the partition is marked failed and E is never published: after a
 * failed fsync the kernel may have dropped the dirty pages, and retrying
 * would report data as durable that is not (the "fsyncgate" lesson).
 *
 * With the shared journal (journal.c), a round over many partitions
 * replaces step 2 by one fdatasync of the journal holding the same bytes;
 * the segment files are fdatasynced later (checkpoint), and after a crash
 * the journal is replayed into them before this recovery runs.
 *
 * Durable files that are rewritten whole (compacted segments) use the
 * recipe of fsutil.h: write FILE.tmp, fsync, rename, fsync the directory.
 *
 * RECOVERY RULE (sl_part_open)
 * ============================
 *  - Leftover *.tmp / *.cleaned files are deleted; index files without a
 *    .log are deleted; a missing index file is created empty.
 *  - For every segment the indexes are loaded and checked: sizes are
 *    multiples of the entry size, fields strictly increase, positions lie
 *    inside .log, and the last index entry points at a batch header whose
 *    base offset is base + rel. If either index fails, both are rebuilt
 *    from a full scan of that segment.
 *  - The tail of every segment, from its last index entry (or from 0 when
 *    the index was bad) to the end of the file, is scanned batch by batch:
 *    the header must decode, the batch must fit in the file, its base
 *    offset must follow the previous batch (exactly, in the last segment,
 *    which compaction never touches; at least, in closed ones, which may
 *    have compaction gaps) and its last offset lie below the next
 *    segment's base, and its CRC-32C must match (the CRC does not cover
 *    base_offset and length; the sequence and size checks do).
 *  - A batch that fails is a torn tail only if nothing intact follows it:
 *    a torn write can only be the last thing in the log. So at a bad
 *    batch the scan looks for the next intact batch (sl_seg_next_good:
 *    the bad batch's own end first, then byte by byte). If one follows in
 *    the file, or the bad batch is whole and the next segment starts
 *    intact, the bad batch is CORRUPTION of acknowledged data: it is kept,
 *    its offsets are never reused, it is logged at ERROR and listed
 *    (sl_part_bad_ranges, `sluice topic describe`), the scan goes on after
 *    it, and readers skip it (the record iterator: queue groups, STOMP
 *    topics; stream FETCH serves it as it is and the client reports its
 *    offsets). Otherwise the file is truncated there (a torn tail; also
 *    when the file ends inside the batch). An empty file is a valid empty
 *    segment.
 *  - If a segment that is not the last had its tail cut, every later
 *    segment is deleted: durability is published in offset order across
 *    segments (step 3 above), so nothing in a later segment was ever
 *    acknowledged, and keeping it would leave a hole of lost offsets.
 *  - The log end is the offset after the last good batch. The active
 *    segment and the segments modified in the last 120 s (they may hold
 *    page-cache-only data after a kill -9) are fdatasynced before the
 *    durable offset is set to the log end. In the broker's start-up one
 *    syncfs after every partition was opened does that for all of them,
 *    and after a clean stop (its marker, sl_part_shutdown_mark) nothing
 *    is synced (partition.h, docs/storage.md 3, step 5a).
 * Hence: an acknowledged (fsynced) batch is never dropped, and a torn batch
 * is never visible. Corruption before the last index entry of a segment is
 * not found at open (that would mean reading every segment); the record
 * iterator checks every batch CRC when it reads, skips a damaged batch and
 * records its range the same way.
 */
#include "storage/storage_int.h"

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
#include "storage/journal.h"

void sl_seg_path(const char *dir, int64_t base, const char *ext, char *buf,
                 size_t n)
{
    snprintf(buf, n, "%s/%020lld%s", dir, (long long)base, ext);
}

static sl_seg *seg_alloc(const char *dir, int64_t base)
{
    sl_seg *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    if (!(s->dir = strdup(dir))) {
        free(s);
        return NULL;
    }
    s->base = base;
    s->end = base;
    s->fd = s->idx_fd = s->tidx_fd = -1;
    s->max_ts = INT64_MIN;
    s->max_ts_off = base;
    s->created_ms = -1;
    return s;
}

void sl_seg_free(sl_seg *s)
{
    if (!s)
        return;
    sl_seg__fd_forget(s);
    if (s->idx_fd >= 0)
        close(s->idx_fd);
    if (s->tidx_fd >= 0)
        close(s->tidx_fd);
    free(s->idx);
    free(s->tidx);
    free(s->dir);
    free(s);
}

/*
 * The index files are open only while they are read or written (open,
 * recovery, every SL_IDX_BATCH entries, a roll, compaction, close): a
 * partition holds one descriptor (its active .log), not three per
 * segment. Returns 1 when it opened them (release with
 * sl_seg_idx_close), 0 when they were open, -1 on error (errno).
 */
static int idx_acquire(sl_seg *s)
{
    char path[PATH_MAX];
    if (s->idx_fd >= 0 && s->tidx_fd >= 0)
        return 0;
    if (s->idx_fd < 0) {
        sl_seg_path(s->dir, s->base, ".index", path, sizeof(path));
        s->idx_fd = sl_fs->open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    }
    if (s->tidx_fd < 0 && s->idx_fd >= 0) {
        sl_seg_path(s->dir, s->base, ".timeindex", path, sizeof(path));
        s->tidx_fd = sl_fs->open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    }
    if (s->idx_fd < 0 || s->tidx_fd < 0) {
        int e = errno;
        sl_seg_idx_close(s);
        errno = e;
        return -1;
    }
    return 1;
}

void sl_seg_idx_close(sl_seg *s)
{
    if (s->idx_fd >= 0)
        close(s->idx_fd);
    if (s->tidx_fd >= 0)
        close(s->tidx_fd);
    s->idx_fd = s->tidx_fd = -1;
}

void sl_seg_unlink(const char *dir, int64_t base)
{
    char path[PATH_MAX];
    static const char *const ext[] = {".log", ".index", ".timeindex"};
    for (size_t i = 0; i < 3; i++) {
        sl_seg_path(dir, base, ext[i], path, sizeof(path));
        if (unlink(path) != 0 && errno != ENOENT)
            sl_log(SL_WARN, "storage", "cannot delete %s: %s", path,
                   strerror(errno));
    }
}

void sl_seg_ident(sl_seg *s)
{
    struct stat st;
    s->ino = fstat(s->fd, &st) == 0 ? (uint64_t)st.st_ino : 0;
    s->igen = sl_journal__igen(s->fd);
}

static sl_err open_files(const char *dir, sl_seg *s, int log_flags)
{
    char path[PATH_MAX];
    sl_seg_path(dir, s->base, ".log", path, sizeof(path));
    s->fd = sl_fs->open(path, O_RDWR | O_CLOEXEC | log_flags, 0644);
    if (s->fd < 0)
        goto fail;
    sl_seg__fd_opened(s);
    sl_seg_ident(s);
    sl_seg_path(dir, s->base, ".index", path, sizeof(path));
    s->idx_fd = sl_fs->open(path, O_RDWR | O_CREAT | log_flags, 0644);
    if (s->idx_fd < 0)
        goto fail;
    sl_seg_path(dir, s->base, ".timeindex", path, sizeof(path));
    s->tidx_fd = sl_fs->open(path, O_RDWR | O_CREAT | log_flags, 0644);
    if (s->tidx_fd < 0)
        goto fail;
    return SL_OK;
fail:;
    int e = errno;
    sl_log(SL_ERROR, "storage", "cannot open %s: %s", path, strerror(e));
    return SL_ESYS(e);
}

sl_err sl_seg_create(const char *dir, int64_t base, int64_t now_ms,
                     sl_seg **out)
{
    sl_seg *s = seg_alloc(dir, base);
    sl_err rc;
    if (!s)
        return SL_ERR_NOMEM;
    rc = open_files(dir, s, O_CREAT | O_TRUNC);
    if (rc != SL_OK) {
        sl_seg_free(s);
        sl_seg_unlink(dir, base);
        return rc;
    }
    sl_seg_idx_close(s);
    s->created_ms = now_ms;
    *out = s;
    return SL_OK;
}

/* ---- in-memory index arrays ----------------------------------------- */

static int idx_push(sl_seg *s, uint32_t rel, uint32_t pos)
{
    if (s->nidx == s->cidx) {
        size_t c = s->cidx ? s->cidx * 2 : 64;
        sl_idx_ent *n = realloc(s->idx, c * sizeof(*n));
        if (!n)
            return -1;
        s->idx = n;
        s->cidx = c;
    }
    s->idx[s->nidx].rel = rel;
    s->idx[s->nidx].pos = pos;
    s->nidx++;
    return 0;
}

static int tidx_push(sl_seg *s, int64_t ts, uint32_t rel)
{
    if (s->ntidx == s->ctidx) {
        size_t c = s->ctidx ? s->ctidx * 2 : 64;
        sl_tidx_ent *n = realloc(s->tidx, c * sizeof(*n));
        if (!n)
            return -1;
        s->tidx = n;
        s->ctidx = c;
    }
    s->tidx[s->ntidx].ts = ts;
    s->tidx[s->ntidx].rel = rel;
    s->ntidx++;
    return 0;
}

static void enc_idx(uint8_t *b, const sl_idx_ent *e)
{
    sl_put_u32(b, e->rel);
    sl_put_u32(b + 4, e->pos);
}

static void enc_tidx(uint8_t *b, const sl_tidx_ent *e)
{
    sl_put_u64(b, (uint64_t)e->ts);
    sl_put_u32(b + 8, e->rel);
}

static sl_err write_index_due(sl_seg *s, int force);

/* Rewrite both index files from memory (recovery, compaction). */
static sl_err write_indexes(sl_seg *s)
{
    size_t n1 = s->nidx * SL_IDX_ENTRY, n2 = s->ntidx * SL_TIDX_ENTRY;
    uint8_t *b;
    sl_err rc;
    int own = idx_acquire(s);
    if (own < 0)
        return SL_ESYS(errno);
    b = malloc((n1 > n2 ? n1 : n2) + 1);
    if (!b) {
        if (own)
            sl_seg_idx_close(s);
        return SL_ERR_NOMEM;
    }
    for (size_t i = 0; i < s->nidx; i++)
        enc_idx(b + i * SL_IDX_ENTRY, &s->idx[i]);
    rc = sl_fs_pwrite_all(s->idx_fd, b, n1, 0);
    if (rc == SL_OK && sl_fs->ftruncate(s->idx_fd, (off_t)n1) != 0)
        rc = SL_ESYS(errno);
    if (rc != SL_OK)
        goto out;
    for (size_t i = 0; i < s->ntidx; i++)
        enc_tidx(b + i * SL_TIDX_ENTRY, &s->tidx[i]);
    rc = sl_fs_pwrite_all(s->tidx_fd, b, n2, 0);
    if (rc == SL_OK && sl_fs->ftruncate(s->tidx_fd, (off_t)n2) != 0)
        rc = SL_ESYS(errno);
    if (rc == SL_OK) {
        s->idx_disk = s->nidx;
        s->tidx_disk = s->ntidx;
    }
out:
    free(b);
    if (own)
        sl_seg_idx_close(s);
    return rc;
}

sl_err sl_seg_write_index(sl_seg *s, int force)
{
    int own;
    sl_err rc;
    if ((s->nidx <= s->idx_disk ||
         (!force && s->nidx - s->idx_disk < SL_IDX_BATCH)) &&
        (s->ntidx <= s->tidx_disk ||
         (!force && s->ntidx - s->tidx_disk < SL_IDX_BATCH)))
        return SL_OK; /* nothing due: no need to open the files */
    own = idx_acquire(s);
    if (own < 0)
        return SL_ESYS(errno);
    rc = write_index_due(s, force);
    if (own)
        sl_seg_idx_close(s);
    return rc;
}

static sl_err write_index_due(sl_seg *s, int force)
{
    uint8_t b[SL_IDX_BATCH * SL_TIDX_ENTRY];
    sl_err rc;
    while (s->nidx > s->idx_disk &&
           (force || s->nidx - s->idx_disk >= SL_IDX_BATCH)) {
        size_t n = s->nidx - s->idx_disk;
        if (n > SL_IDX_BATCH)
            n = SL_IDX_BATCH;
        for (size_t i = 0; i < n; i++)
            enc_idx(b + i * SL_IDX_ENTRY, &s->idx[s->idx_disk + i]);
        rc = sl_fs_pwrite_all(s->idx_fd, b, n * SL_IDX_ENTRY,
                              (off_t)(s->idx_disk * SL_IDX_ENTRY));
        if (rc != SL_OK)
            return rc;
        s->idx_disk += n;
    }
    while (s->ntidx > s->tidx_disk &&
           (force || s->ntidx - s->tidx_disk >= SL_IDX_BATCH)) {
        size_t n = s->ntidx - s->tidx_disk;
        if (n > SL_IDX_BATCH)
            n = SL_IDX_BATCH;
        for (size_t i = 0; i < n; i++)
            enc_tidx(b + i * SL_TIDX_ENTRY, &s->tidx[s->tidx_disk + i]);
        rc = sl_fs_pwrite_all(s->tidx_fd, b, n * SL_TIDX_ENTRY,
                              (off_t)(s->tidx_disk * SL_TIDX_ENTRY));
        if (rc != SL_OK)
            return rc;
        s->tidx_disk += n;
    }
    return SL_OK;
}

/* Read a whole small file; *buf malloc'ed (caller frees). */
static sl_err slurp(int fd, uint8_t **buf, size_t *len)
{
    struct stat st;
    uint8_t *b;
    if (fstat(fd, &st) != 0)
        return SL_ESYS(errno);
    b = malloc((size_t)st.st_size + 1);
    if (!b)
        return SL_ERR_NOMEM;
    sl_err rc = sl_fs_pread_all(fd, b, (size_t)st.st_size, 0, NULL);
    if (rc != SL_OK) {
        free(b);
        return rc;
    }
    *buf = b;
    *len = (size_t)st.st_size;
    return SL_OK;
}

/* Load .index; 0 = plausible, -1 = must be rebuilt. */
static int load_index(sl_seg *s, uint64_t fsize)
{
    uint8_t *b = NULL;
    size_t len = 0;
    int ok = -1;
    if (slurp(s->idx_fd, &b, &len) != SL_OK)
        return -1;
    if (len % SL_IDX_ENTRY)
        goto out;
    for (size_t i = 0; i < len / SL_IDX_ENTRY; i++) {
        uint32_t rel = sl_get_u32(b + i * SL_IDX_ENTRY);
        uint32_t pos = sl_get_u32(b + i * SL_IDX_ENTRY + 4);
        if (pos == 0 || pos >= fsize)
            goto out;
        if (s->nidx &&
            (rel <= s->idx[s->nidx - 1].rel || pos <= s->idx[s->nidx - 1].pos))
            goto out;
        if (idx_push(s, rel, pos) != 0)
            goto out;
    }
    ok = 0;
out:
    free(b);
    return ok;
}

static int load_tindex(sl_seg *s)
{
    uint8_t *b = NULL;
    size_t len = 0;
    int ok = -1;
    if (slurp(s->tidx_fd, &b, &len) != SL_OK)
        return -1;
    if (len % SL_TIDX_ENTRY)
        goto out;
    for (size_t i = 0; i < len / SL_TIDX_ENTRY; i++) {
        int64_t ts = (int64_t)sl_get_u64(b + i * SL_TIDX_ENTRY);
        uint32_t rel = sl_get_u32(b + i * SL_TIDX_ENTRY + 8);
        if (s->ntidx && (ts <= s->tidx[s->ntidx - 1].ts ||
                         rel <= s->tidx[s->ntidx - 1].rel))
            goto out;
        if (tidx_push(s, ts, rel) != 0)
            goto out;
    }
    ok = 0;
out:
    free(b);
    return ok;
}

/* Does the batch header at pos carry base offset `want`? */
static int hdr_matches(sl_seg *s, uint64_t pos, int64_t want,
                       uint64_t fsize)
{
    uint8_t h[SL_BATCH_HDR_SIZE];
    sl_batch_hdr bh;
    if (pos + SL_BATCH_HDR_SIZE > fsize)
        return 0;
    if (sl_fs_pread_all(sl_seg_fd(s), h, sizeof(h), (off_t)pos, NULL) != SL_OK)
        return 0;
    if (sl_batch_hdr_decode(h, sizeof(h), &bh) != SL_OK)
        return 0;
    return bh.base_offset == want;
}

/* Index bookkeeping shared by append and scan: before adding the batch at
 * pos (base offset boff, header h), add index/time entries if due.
 * Returns 1 when entries were added to memory. */
static int index_step(sl_seg *s, uint64_t pos, const sl_batch_hdr *h,
                      uint32_t interval, int allow_entry)
{
    int added = 0;
    if (h->max_timestamp > s->max_ts) {
        s->max_ts = h->max_timestamp;
        s->max_ts_off = h->base_offset;
    }
    if (allow_entry && pos > 0 && s->idx_bytes >= interval) {
        if (idx_push(s, (uint32_t)(h->base_offset - s->base), (uint32_t)pos) ==
            0)
            added = 1;
        if (s->max_ts != INT64_MIN &&
            (s->ntidx == 0 || s->max_ts > s->tidx[s->ntidx - 1].ts))
            if (tidx_push(s, s->max_ts, (uint32_t)(s->max_ts_off - s->base)) ==
                0)
                added = 1;
        s->idx_bytes = 0;
    }
    s->idx_bytes += sl_batch_size(h);
    return added;
}

/* 1 if [from, to) of fd reads as zeros: space preallocated by
 * sl_seg_prealloc and never written, i.e. a clean end rather than a torn
 * tail. */
static int zero_from(int fd, uint64_t from, uint64_t to)
{
    static const uint8_t zeros[4096];
    uint8_t b[4096];
    while (from < to) {
        size_t n = to - from < sizeof(b) ? (size_t)(to - from) : sizeof(b);
        size_t got = 0;
        if (sl_fs_pread_all(fd, b, n, (off_t)from, &got) != SL_OK || got != n ||
            memcmp(b, zeros, n) != 0)
            return 0;
        from += n;
    }
    return 1;
}

/*
 * Scan [from, fsize) batch by batch. check: verify CRCs (else headers
 * only). min_base: lowest acceptable base offset of the first batch.
 * strict: offsets must be contiguous (the active segment is never
 * compacted, so a gap there means a damaged base_offset, which the CRC
 * does not cover).
 * Fills indexes/end/max_ts. *good = position of the first bad batch
 * (fsize if none); *zero (may be NULL) = 1 when everything from there on
 * reads as zeros (preallocated space, not a torn tail).
 */
/* Remember a damaged range kept by recovery (reported by sl_part_open). */
static void note_hole(sl_seg *s, int64_t first, int64_t last, uint64_t pos)
{
    if (s->nholes < SL_SEG_HOLES_MAX) {
        s->holes[s->nholes].first = first;
        s->holes[s->nholes].last = last;
        s->holes[s->nholes].pos = pos;
    }
    s->nholes++;
}

static sl_err scan(sl_seg *s, uint64_t from, int64_t min_base,
                   int64_t next_base, uint64_t fsize, int check, int strict,
                   uint32_t interval, int later_valid, uint64_t *good,
                   int *zero)
{
    int z = 0;
    uint8_t hb[SL_BATCH_HDR_SIZE];
    uint8_t *buf = NULL;
    size_t cap = 0;
    uint64_t pos = from;
    sl_err rc = SL_OK;
    const char *why = NULL;

    s->idx_bytes = 0;
    while (pos < fsize) {
        sl_batch_hdr h;
        size_t sz;
        if (fsize - pos < SL_BATCH_HDR_SIZE) {
            why = "torn header";
            break;
        }
        rc = sl_fs_pread_all(sl_seg_fd(s), hb, sizeof(hb), (off_t)pos, NULL);
        if (rc != SL_OK)
            goto out;
        if (sl_batch_hdr_decode(hb, sizeof(hb), &h) != SL_OK) {
            why = "bad header";
            goto bad;
        }
        sz = sl_batch_size(&h);
        if (sz > fsize - pos) {
            why = "torn batch";
            goto bad;
        }
        if (h.base_offset < min_base || (strict && h.base_offset != min_base) ||
            sl_batch_last_offset(&h) >= next_base ||
            sl_batch_last_offset(&h) - s->base > (int64_t)UINT32_MAX) {
            why = "offset out of sequence";
            goto bad;
        }
        if (check) {
            if (sz > cap) {
                uint8_t *n = realloc(buf, sz);
                if (!n) {
                    rc = SL_ERR_NOMEM;
                    goto out;
                }
                buf = n;
                cap = sz;
            }
            rc = sl_fs_pread_all(sl_seg_fd(s), buf, sz, (off_t)pos, NULL);
            if (rc != SL_OK)
                goto out;
            if (sl_batch_verify(buf, sz, NULL) != SL_OK) {
                why = "CRC mismatch";
                goto bad;
            }
        }
        index_step(s, pos, &h, interval, pos != from);
        min_base = sl_batch_last_offset(&h) + 1;
        s->end = min_base;
        pos += sz;
        continue;
    bad:
        /* A torn write can only be the last thing in the log: an intact
         * batch after this one (or an intact later segment) proves it is
         * corruption of acknowledged data. Keep everything; readers skip
         * the damaged range and its offsets are never reused. */
        if (!check || zero_from(sl_seg_fd(s), pos, fsize))
            break;
        {
            sl_batch_hdr bh;
            int hok = sl_batch_hdr_decode(hb, sizeof(hb), &bh) == SL_OK &&
                      bh.base_offset == min_base &&
                      sl_batch_size(&bh) <= fsize - pos;
            int64_t nb, first = min_base, last;
            uint64_t np =
                sl_seg_next_good(s, pos, hok ? pos + sl_batch_size(&bh) : 0,
                                 min_base, next_base, &nb);
            /* Nothing intact follows in this file: a torn tail, unless
             * the batch is whole (the file does not end inside it) and a
             * later segment starts intact. A file that ends inside a batch
             * was cut short by a crash before its roll was synced, and
             * nothing later was ever acknowledged (see the rule above). */
            if (np >= fsize && (!later_valid || !hok))
                break;
            if (np >= fsize)
                nb = next_base; /* the next segment carries on */
            last = hok ? sl_batch_last_offset(&bh) : nb - 1;
            if (last >= nb)
                last = nb - 1;
            sl_log(SL_ERROR, "storage",
                   "segment %020lld position %llu: CORRUPT batch (%s), "
                   "offsets %lld..%lld: kept, readers skip it (intact data "
                   "follows, so it is not a torn write)",
                   (long long)s->base, (unsigned long long)pos, why,
                   (long long)first, (long long)last);
            note_hole(s, first, last, pos);
            why = NULL;
            if (np >= fsize) {
                pos = fsize;
                s->end = next_base;
                break;
            }
            pos = np;
            min_base = nb;
            s->end = nb;
            s->idx_bytes = interval; /* index the batch after the hole */
        }
    }
    if (why)
        z = zero_from(sl_seg_fd(s), pos, fsize);
    if (why && !z)
        sl_log(SL_WARN, "storage",
               "segment %020lld: %s at position %llu, cutting %llu bytes",
               (long long)s->base, why, (unsigned long long)pos,
               (unsigned long long)(fsize - pos));
    *good = pos;
    if (zero)
        *zero = z;
out:
    free(buf);
    return rc;
}

sl_err sl_seg_open(const char *dir, int64_t base, int is_last,
                   int64_t next_base, uint32_t interval, int later_valid,
                   sl_seg **out, int *torn)
{
    sl_seg *s = seg_alloc(dir, base);
    struct stat st;
    uint64_t fsize, from = 0, good;
    int zero = 0;
    int64_t min_base = base;
    int rewrite = 0;
    sl_err rc;

    if (!s)
        return SL_ERR_NOMEM;
    rc = open_files(dir, s, 0);
    if (rc != SL_OK)
        goto out;
    if (fstat(s->fd, &st) != 0) {
        rc = SL_ESYS(errno);
        goto out;
    }
    fsize = (uint64_t)st.st_size;

    if (load_index(s, fsize) != 0 || load_tindex(s) != 0 ||
        (s->nidx && !hdr_matches(s, s->idx[s->nidx - 1].pos,
                                 base + s->idx[s->nidx - 1].rel, fsize))) {
        sl_log(SL_WARN, "storage",
               "%s/%020lld: index files invalid, rebuilding", dir,
               (long long)base);
        s->nidx = s->ntidx = 0;
        rewrite = 1;
    } else if (s->nidx) {
        /* Resume from the last index entry: drop time entries the tail
         * scan will recompute. */
        uint32_t rel = s->idx[s->nidx - 1].rel;
        from = s->idx[s->nidx - 1].pos;
        min_base = base + rel;
        while (s->ntidx && s->tidx[s->ntidx - 1].rel >= rel) {
            s->ntidx--;
            rewrite = 1;
        }
        if (s->ntidx) {
            s->max_ts = s->tidx[s->ntidx - 1].ts;
            s->max_ts_off = base + s->tidx[s->ntidx - 1].rel;
        }
    } else if (s->ntidx) {
        s->ntidx = 0; /* time entries without index entries: stale */
        rewrite = 1;
    }
    /* Indexes of a non-last segment that pass the checks are trusted up to
     * their last entry; the tail after it is checked like the last
     * segment's (a roll may have happened just before a crash). */
    {
        size_t before = s->nidx + s->ntidx;
        s->end = min_base; /* everything before `from` ends there */
        s->size = fsize;   /* for sl_seg_next_good during the scan */
        rc = scan(s, from, min_base, next_base, fsize, 1, is_last, interval,
                  later_valid, &good, &zero);
        if (rc != SL_OK)
            goto out;
        if (s->nidx + s->ntidx != before)
            rewrite = 1;
    }
    /* Entries at or past a cut are gone with the bytes they pointed at. */
    while (s->nidx && s->idx[s->nidx - 1].pos >= good) {
        s->nidx--;
        rewrite = 1;
    }
    while (s->ntidx && base + s->tidx[s->ntidx - 1].rel >= s->end) {
        s->ntidx--;
        rewrite = 1;
    }
    if (good < fsize) {
        /* Zeros after the last batch (zero, from the scan): preallocated
         * space, not a torn write (nothing after it is suspect). */
        if (sl_fs->ftruncate(sl_seg_fd(s), (off_t)good) != 0 ||
            sl_fs->fdatasync(sl_seg_fd(s)) != 0) {
            rc = SL_ESYS(errno);
            goto out;
        }
        sl_log(zero ? SL_DEBUG : SL_WARN, "storage",
               "%s/%020lld.log: truncated from %llu to %llu bytes%s", dir,
               (long long)base, (unsigned long long)fsize,
               (unsigned long long)good,
               zero ? " (unused preallocated space)" : "");
        *torn = !zero;
    } else {
        *torn = 0;
    }
    s->size = s->synced_size = s->file_synced = good;
    if (rewrite) {
        rc = write_indexes(s);
        if (rc != SL_OK)
            goto out;
    }
    /* The age of a recovered active segment counts from now (the first
     * batch's timestamp is the producer's and may be anything). */
    s->created_ms = is_last && good > 0 ? (int64_t)sl_fs_now_ms() : -1;
    sl_seg_idx_close(s); /* reopened when written (idx_acquire) */
    *out = s;
    s = NULL;
out:
    sl_seg_free(s);
    return rc;
}

sl_err sl_seg_reindex(sl_seg *s, uint32_t interval)
{
    uint64_t good;
    sl_err rc;
    s->nidx = s->ntidx = 0;
    s->max_ts = INT64_MIN;
    s->max_ts_off = s->base;
    s->end = s->base;
    rc = scan(s, 0, s->base, INT64_MAX, s->size, 0, 0, interval, 0, &good,
              NULL);
    if (rc != SL_OK)
        return rc;
    if (good != s->size)
        return SL_ERR_CORRUPT;
    return write_indexes(s);
}

sl_err sl_seg_append(sl_seg *s, const uint8_t *batch, size_t len,
                     const sl_batch_hdr *h, uint32_t interval, int *fatal)
{
    uint64_t pos = s->size;
    size_t nidx0 = s->nidx, ntidx0 = s->ntidx;
    uint64_t ib0 = s->idx_bytes;
    int64_t mts0 = s->max_ts, mto0 = s->max_ts_off;
    sl_err rc;

    *fatal = 0;
    rc = sl_fs_pwrite_all(sl_seg_fd(s), batch, len, (off_t)pos);
    if (rc != SL_OK)
        goto undo;
    if (index_step(s, pos, h, interval, 1)) {
        rc = sl_seg_write_index(s, 0);
        if (rc != SL_OK)
            goto undo;
    }
    s->end = sl_batch_last_offset(h) + 1;
    return SL_OK;

undo:
    /* Cut the partial write off again so the file ends with a whole batch
     * and a later, smaller append does not leave garbage behind it. */
    s->nidx = nidx0;
    s->ntidx = ntidx0;
    s->idx_bytes = ib0;
    s->max_ts = mts0;
    s->max_ts_off = mto0;
    s->alloc_end = pos; /* the cut drops any preallocated space too */
    if (s->idx_disk > nidx0)
        s->idx_disk = nidx0;
    if (s->tidx_disk > ntidx0)
        s->tidx_disk = ntidx0;
    int own = idx_acquire(s);
    if (own < 0 || sl_fs->ftruncate(sl_seg_fd(s), (off_t)pos) != 0 ||
        sl_fs->ftruncate(s->idx_fd, (off_t)(s->idx_disk * SL_IDX_ENTRY)) != 0 ||
        sl_fs->ftruncate(s->tidx_fd, (off_t)(s->tidx_disk * SL_TIDX_ENTRY)) !=
            0)
        *fatal = 1;
    if (own > 0)
        sl_seg_idx_close(s);
    return rc;
}

/*
 * Preallocation. An fdatasync after an append that grew the file must
 * also commit the new file size (on ext4 a journal commit), which costs
 * about a third of a small fdatasync; overwriting space the file already
 * has does not (measured on this project's test machine: 0.20 ms vs
 * 0.14 ms per 100-byte append + fdatasync, docs/benchmarks.md). So the
 * active segment is extended with fallocate() in steps, ahead of its
 * appends, and the unused tail is cut off again when the segment rolls or
 * the partition closes. After a crash the tail reads as zeros, which the
 * recovery scan treats as the end of the log (see sl_seg_open).
 */
void sl_seg_prealloc(sl_seg *s, uint64_t need, uint64_t step, uint64_t max)
{
    uint64_t to;
    if (need <= s->alloc_end || step == 0)
        return;
    to = need + step;
    if (to > max)
        to = max > need ? max : need;
    if (to <= s->alloc_end)
        return;
    if (s->alloc_end < s->size)
        s->alloc_end = s->size;
    if (fallocate(sl_seg_fd(s), 0, (off_t)s->alloc_end,
                  (off_t)(to - s->alloc_end)) == 0)
        s->alloc_end = to;
    /* else (ENOSPC, EOPNOTSUPP): plain appends; a real lack of space shows
     * up in the append itself. */
}

sl_err sl_seg_trim(sl_seg *s)
{
    if (s->alloc_end <= s->size)
        return SL_OK;
    if (sl_fs->ftruncate(sl_seg_fd(s), (off_t)s->size) != 0)
        return SL_ESYS(errno);
    s->alloc_end = s->size;
    return SL_OK;
}

uint64_t sl_seg_lookup(const sl_seg *s, int64_t offset)
{
    size_t lo = 0, hi = s->nidx;
    if (offset <= s->base || s->nidx == 0)
        return 0;
    if (offset - s->base > (int64_t)UINT32_MAX)
        return s->idx[s->nidx - 1].pos;
    uint32_t rel = (uint32_t)(offset - s->base);
    /* last entry with idx.rel <= rel */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (s->idx[mid].rel <= rel)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo ? s->idx[lo - 1].pos : 0;
}

void sl_walker_init(sl_walker *w, sl_seg *s, uint8_t *buf, size_t cap)
{
    w->s = s;
    w->buf = buf;
    w->cap = cap;
    w->wpos = 0;
    w->wlen = 0;
}

sl_err sl_walker_hdr(sl_walker *w, uint64_t pos, int64_t *base, uint32_t *size,
                     int64_t *last)
{
    const uint8_t *h;
    uint64_t sz;
    if (pos + SL_WALK_HDR > w->s->size)
        return SL_ERR_CORRUPT;
    if (pos < w->wpos || pos + SL_WALK_HDR > w->wpos + w->wlen) {
        size_t want = w->cap;
        size_t got = 0;
        sl_err rc;
        if (w->s->size - pos < want)
            want = (size_t)(w->s->size - pos);
        rc = sl_fs_pread_all(sl_seg_fd(w->s), w->buf, want, (off_t)pos, &got);
        if (rc != SL_OK && rc != SL_ERR_MALFORMED)
            return rc;
        w->wpos = pos;
        w->wlen = got;
        if (got < SL_WALK_HDR)
            return SL_ERR_CORRUPT;
    }
    h = w->buf + (pos - w->wpos);
    sz = 12 + (uint64_t)sl_get_u32(h + SL_BATCH_LEN_OFF);
    if (h[16] != SL_BATCH_MAGIC || sz < SL_BATCH_HDR_SIZE ||
        sz > w->s->size - pos)
        return SL_ERR_CORRUPT;
    int32_t lod;
    memcpy(&lod, h + 19, 4);
    *base = (int64_t)sl_get_u64(h);
    *size = (uint32_t)sz;
    *last = *base + lod;
    return SL_OK;
}

/* Is the batch at pos whole, its CRC right and its base >= min_base?
 * (buf: scratch of at least SL_BATCH_MAX_SIZE bytes is not needed: the
 * batch is read into a malloc'ed buffer.) */
static int intact_at(sl_seg *s, uint64_t pos, int64_t min_base,
                     int64_t next_base, sl_batch_hdr *out)
{
    uint8_t hb[SL_BATCH_HDR_SIZE];
    sl_batch_hdr h;
    uint8_t *b;
    size_t sz;
    int ok = 0;
    if (pos + SL_BATCH_HDR_SIZE > s->size ||
        sl_fs_pread_all(sl_seg_fd(s), hb, sizeof(hb), (off_t)pos, NULL) !=
            SL_OK ||
        sl_batch_hdr_decode(hb, sizeof(hb), &h) != SL_OK ||
        h.base_offset < min_base || sl_batch_size(&h) > s->size - pos ||
        sl_batch_last_offset(&h) >= next_base ||
        sl_batch_last_offset(&h) - s->base > (int64_t)UINT32_MAX)
        return 0;
    sz = sl_batch_size(&h);
    b = malloc(sz);
    if (b && sl_fs_pread_all(sl_seg_fd(s), b, sz, (off_t)pos, NULL) == SL_OK &&
        sl_batch_verify(b, sz, NULL) == SL_OK)
        ok = 1;
    free(b);
    if (ok && out)
        *out = h;
    return ok;
}

uint64_t sl_seg_next_good(sl_seg *s, uint64_t pos, uint64_t hint,
                          int64_t min_base, int64_t next_base,
                          int64_t *base_out)
{
    uint8_t buf[64 * 1024];
    sl_batch_hdr h;
    uint64_t q;

    if (hint > pos && hint <= s->size) {
        if (hint == s->size) {
            *base_out = -1;
            return hint;
        }
        if (intact_at(s, hint, min_base, next_base, &h)) {
            *base_out = h.base_offset;
            return hint;
        }
    }
    /* Resynchronise: the first position after pos holding an intact batch
     * (magic byte, sane header, whole CRC) with a plausible base offset. */
    for (q = pos + 1; q + SL_BATCH_HDR_SIZE <= s->size;) {
        size_t want = sizeof(buf), got = 0;
        if (want > s->size - q)
            want = (size_t)(s->size - q);
        if (sl_fs_pread_all(sl_seg_fd(s), buf, want, (off_t)q, &got) != SL_OK &&
            got == 0)
            break;
        if (got < SL_BATCH_HDR_SIZE)
            break;
        for (size_t i = 0; i + SL_BATCH_HDR_SIZE <= got; i++) {
            if (buf[i + 16] != SL_BATCH_MAGIC)
                continue;
            if (intact_at(s, q + i, min_base, next_base, &h)) {
                *base_out = h.base_offset;
                return q + i;
            }
        }
        q += got - SL_BATCH_HDR_SIZE + 1;
    }
    *base_out = -1;
    return s->size;
}

sl_err sl_seg_find(sl_seg *s, int64_t offset, uint8_t *scratch,
                   uint64_t *pos_out)
{
    sl_walker w;
    uint64_t pos = sl_seg_lookup(s, offset), prev = pos;
    int resynced = 0;
    sl_walker_init(&w, s, scratch, SL_SCRATCH_SIZE);
    while (pos < s->size) {
        int64_t b, l;
        uint32_t sz;
        sl_err rc = sl_walker_hdr(&w, pos, &b, &sz, &l);
        /* A header whose offsets cannot belong here (below the segment's
         * base, or a negative record count) is damaged: its length is not
         * to be trusted either (the fuzz input regress-find-negative-base:
         * it jumped over the intact batches after it). */
        if (rc == SL_OK && (b < s->base || l < b))
            rc = SL_ERR_CORRUPT;
        if (rc == SL_ERR_CORRUPT && !resynced) {
            /* A damaged header here, or a damaged length in the one
             * before that sent us here: walk on from the first intact
             * batch after the previous one (the reader of the damaged
             * range reports it). Once per lookup. */
            int64_t nb;
            uint64_t np =
                sl_seg_next_good(s, prev, 0, s->base, INT64_MAX, &nb);
            resynced = 1;
            if (nb >= 0 && nb <= offset) {
                pos = prev = np;
                w.wlen = 0;
                continue;
            }
            pos = prev; /* offset is in the damaged range: stop at it */
            break;
        }
        if (rc != SL_OK)
            return rc;
        if (l >= offset)
            break;
        prev = pos;
        pos += sz;
    }
    *pos_out = pos;
    return SL_OK;
}
