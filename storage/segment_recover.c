/*
 * segment_recover.c - recovering a segment when its partition opens
 * (sl_seg_open), rebuilding its indexes (sl_seg_reindex) and finding the
 * next intact batch after a damaged one (sl_seg_next_good). The formats
 * are at the top of segment.c and segment_index.c.
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
 *    batch the scan looks for the next intact batch (sl_seg_next_good,
 *    byte by byte: the bad batch's own length is not trusted, it may be
 *    the damaged part). If one follows in
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
 *    segments (FSYNC ORDERING step 3, segment.c), so nothing in a later
 *    segment was ever acknowledged, and keeping it would leave a hole of
 *    lost offsets.
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
        sl_seg__index_step(s, pos, &h, interval, pos != from);
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
            uint64_t np = sl_seg_next_good(s, pos, min_base, next_base, &nb);
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
    sl_seg *s = sl_seg__alloc(dir, base);
    struct stat st;
    uint64_t fsize, from = 0, good;
    int zero = 0;
    int64_t min_base = base;
    int rewrite = 0;
    sl_err rc;

    if (!s)
        return SL_ERR_NOMEM;
    rc = sl_seg__open_files(dir, s, 0);
    if (rc != SL_OK)
        goto out;
    if (fstat(s->fd, &st) != 0) {
        rc = SL_ESYS(errno);
        goto out;
    }
    fsize = (uint64_t)st.st_size;

    if (sl_seg__load_index(s, fsize) != 0 || sl_seg__load_tindex(s) != 0 ||
        (s->nidx &&
         !sl_seg__hdr_matches(s, s->idx[s->nidx - 1].pos,
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
        rc = sl_seg__write_indexes(s);
        if (rc != SL_OK)
            goto out;
    }
    /* The age of a recovered active segment counts from now (the first
     * batch's timestamp is the producer's and may be anything). */
    s->created_ms = is_last && good > 0 ? (int64_t)sl_fs_now_ms() : -1;
    sl_seg_idx_close(s); /* reopened when written (sl_seg__idx_acquire) */
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
    rc =
        scan(s, 0, s->base, INT64_MAX, s->size, 0, 0, interval, 0, &good, NULL);
    if (rc != SL_OK)
        return rc;
    if (good != s->size)
        return SL_ERR_CORRUPT;
    return sl_seg__write_indexes(s);
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

uint64_t sl_seg_next_good(sl_seg *s, uint64_t pos, int64_t min_base,
                          int64_t next_base, int64_t *base_out)
{
    uint8_t buf[64 * 1024];
    sl_batch_hdr h;
    uint64_t q;

    /* Resynchronise: the first position after pos holding an intact batch
     * (magic byte, sane header, whole CRC) with a plausible base offset.
     * Not the bad batch's end by its own length first: the CRC does not
     * cover the length, and a damaged one that ended exactly at the end of
     * the file (after an append made it so) or on a later batch made
     * readers and recovery jump over the intact batches in between (the
     * segment fuzz target, session 17: an append after recovery was never
     * read). */
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
