/*
 * segment.c - segment files of a partition log: create, open the files,
 * append, preallocate. Their indexes are in segment_index.c, their
 * recovery (sl_seg_open) in segment_recover.c.
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
 *
 * The two index files of each segment are described in segment_index.c.
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
 * How a segment is recovered when its partition opens: the RECOVERY RULE
 * at the top of segment_recover.c.
 */
#include "storage/segment.h"

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

sl_seg *sl_seg__alloc(const char *dir, int64_t base)
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
int sl_seg__idx_acquire(sl_seg *s)
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

sl_err sl_seg__open_files(const char *dir, sl_seg *s, int log_flags)
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
    sl_seg *s = sl_seg__alloc(dir, base);
    sl_err rc;
    if (!s)
        return SL_ERR_NOMEM;
    rc = sl_seg__open_files(dir, s, O_CREAT | O_TRUNC);
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
    if (sl_seg__index_step(s, pos, h, interval, 1)) {
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
    int own = sl_seg__idx_acquire(s);
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
 * recovery scan treats as the end of the log (sl_seg_open,
 * segment_recover.c).
 *
 * Zero-filled, not only fallocated. fallocate leaves unwritten extents:
 * the fdatasync after an append into them must also write the extent
 * tree that marks the blocks written (on ext4 without a journal, one
 * more write and wait per fdatasync; with one, a journal commit). Once
 * per 4 KiB block, so appends of a few hundred bytes rarely pay it, but
 * a round of 12 KiB (a STOMP window of 100 SENDs) paid it every time:
 * 3.0 instead of 2.2 waits and 54-88 instead of 38-60 us of CPU per
 * fdatasync (sluice-fsync-one --bytes 12600, docs/benchmarks.md "Issue
 * 20: session 11"). So sl_seg_zero_ahead writes zeros over the
 * fallocated space, SL_PREALLOC_ZERO_STEP ahead of the appends, and
 * starts their write-back at once (sync_file_range WRITE, which does not
 * wait for it): the round that follows finds them written or on their
 * way and writes the extent tree once per step; the rounds after it only
 * overwrite written blocks. Left to that next round's fdatasync, the
 * 128 KiB of zeros made every tenth 12 KiB round slower and doubled the
 * receipt p99 (docs/benchmarks.md, same section). The step is 1 MiB: at
 * 128 KiB a STOMP window of 100 x 1 KiB (100 KiB per round) crossed it
 * almost every round, and the extent tree write-out (ext4_write_inode in
 * the fdatasync) came with most rounds; at 1 MiB one round in ten pays
 * it and that workload's fsync rounds went 0.29 -> 0.25 ms, 1.11x-1.23x
 * the messages per second (docs/benchmarks.md "Issue 20: the zero-ahead
 * step, session 14"). The content does not
 * change (fallocated space reads as zeros), so recovery, the trim and the
 * power-loss layer see nothing new; the zeros go through plain pwrite,
 * not the fault-injection seam, and a failed one only leaves the space
 * unwritten.
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
    if (s->zero_end > s->alloc_end) /* cut or trimmed since */
        s->zero_end = s->alloc_end;
    if (fallocate(sl_seg_fd(s), 0, (off_t)s->alloc_end,
                  (off_t)(to - s->alloc_end)) == 0)
        s->alloc_end = to;
    /* else (ENOSPC, EOPNOTSUPP): plain appends; a real lack of space shows
     * up in the append itself. */
}

void sl_seg_zero_ahead(sl_seg *s, uint64_t need)
{
    /* not const: in .bss (never written), not 1 MiB of the binary */
    static uint8_t zeros[SL_PREALLOC_ZERO_STEP];
    uint64_t from, to, start;
    if (s->zero_end > s->alloc_end)
        s->zero_end = s->alloc_end;
    if (need <= s->zero_end || need >= s->alloc_end)
        return;
    from = need; /* > zero_end */
    to = need + SL_PREALLOC_ZERO_STEP;
    if (to > s->alloc_end)
        to = s->alloc_end;
    start = from;
    while (from < to) {
        ssize_t n =
            pwrite(sl_seg_fd(s), zeros, (size_t)(to - from), (off_t)from);
        if (n <= 0)
            break; /* the space stays unwritten: slower, not wrong */
        from += (uint64_t)n;
    }
    s->zero_end = from;
    /* their write-back starts now, not in the next round's fdatasync */
    if (from > start)
        (void)sync_file_range(sl_seg_fd(s), (off_t)start, (off_t)(from - start),
                              SYNC_FILE_RANGE_WRITE);
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
